local key = ARGV[1] .. 'j:' .. ARGV[2]
-- Free the unique key the job holds for its life (KEYS[6]: the unique hash).
local uk = redis.pcall('HGET', key, 'uk')
if type(uk) == 'string' and redis.call('HGET', KEYS[6], uk) == ARGV[2] then
  redis.call('HDEL', KEYS[6], uk)
end
local found = redis.call('DEL', key)
for i = 1, 5 do found = found + redis.call('ZREM', KEYS[i], ARGV[2]) end
return found > 0 and 1 or 0
