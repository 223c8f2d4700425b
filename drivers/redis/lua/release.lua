local now = now_ms()
local key = ARGV[1] .. 'j:' .. ARGV[2]
if redis.pcall('HGET', key, 'tok') ~= ARGV[3] or redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then
  return 0
end
redis.call('HDEL', key, 'tok')
if ARGV[6] ~= '1' then redis.call('HSET', key, 'run', 0) end
if ARGV[5] ~= '' then redis.call('HSET', key, 'err', ARGV[5]) end
local delay = tonumber(ARGV[4])
if delay > 0 then
  redis.call('ZADD', KEYS[3], now + delay, ARGV[2])
else
  -- A priority that is not a number queues the job anyway; RESERVE then fails it.
  redis.call('ZADD', KEYS[2], number(redis.call('HGET', key, 'pri')) or DEFAULT_PRIORITY,
             ARGV[2])
end
notify(KEYS[4], 1)
return 1
