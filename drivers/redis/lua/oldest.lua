-- The push time (ms) of the waiting job pushed first, as a string, or false when none
-- waits. Within one priority the waiting set holds ids in push order, so the first id of
-- each priority is the oldest of that priority: the script visits the first of each (up
-- to $OLDEST_CLASSES priorities), and the first due delayed jobs not yet moved to waiting.
-- KEYS: waiting, delayed. ARGV: prefix.
local oldest = nil
local function consider(id)
  local pushed = number(redis.call('HGET', ARGV[1] .. 'j:' .. id, 'pushed'))
  if pushed and (oldest == nil or pushed < oldest) then oldest = pushed end
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local classes = 0
while head[1] and classes < $OLDEST_CLASSES do
  consider(head[1])
  classes = classes + 1
  head = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. head[2], '+inf', 'WITHSCORES',
                    'LIMIT', 0, 1)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms(), 'LIMIT', 0,
                               $OLDEST_CLASSES)) do
  consider(id)
end
if oldest == nil then return false end
return string.format('%d', oldest)
