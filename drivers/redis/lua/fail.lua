local now = now_ms()
local key = ARGV[1] .. 'j:' .. ARGV[2]
if redis.pcall('HGET', key, 'tok') ~= ARGV[3] or redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then
  return 0
end
unhold(KEYS[3], key, ARGV[2])
if ARGV[4] == '1' then
  redis.call('HSET', key, 'err', ARGV[5], 'fin', now, 'run', 0)
  redis.call('HDEL', key, 'tok', 'uk')
  redis.call('ZADD', KEYS[2], now, ARGV[2])
  trim_kept(KEYS[2], ARGV[1], now, ARGV[6], ARGV[7])
else
  redis.call('DEL', key)
end
return 1
