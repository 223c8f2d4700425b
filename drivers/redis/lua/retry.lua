local key = ARGV[1] .. 'j:' .. ARGV[2]
local kind = redis.call('TYPE', key)['ok']
if kind == 'none' then return -1 end
if kind ~= 'hash' then return {kind} end
local names = {'waiting', 'delayed', 'reserved', 'done', 'failed'}
local source = 4
if ARGV[3] == 'failed' then source = 5 end
if not redis.call('ZSCORE', KEYS[source], ARGV[2]) then
  for i = 1, 5 do
    if redis.call('ZSCORE', KEYS[i], ARGV[2]) then return names[i] end
  end
  return 'unknown'
end
redis.call('ZREM', KEYS[source], ARGV[2])
redis.call('HDEL', key, 'err', 'res', 'fin', 'st', 'tok', 'cx', 'pg')
redis.call('HSET', key, 'run', 0)
if ARGV[4] == '1' then redis.call('HSET', key, 'att', 0) end
-- A priority that is not a number queues the job anyway; RESERVE then fails it again.
redis.call('ZADD', KEYS[1], number(redis.call('HGET', key, 'pri')) or DEFAULT_PRIORITY,
           ARGV[2])
notify(KEYS[6], 1)
return 1
