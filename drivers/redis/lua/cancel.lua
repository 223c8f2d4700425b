-- Cancel: a waiting or delayed job fails now (kept or deleted), its attempt count as it
-- was; a reserved one gets the mark 'cx' (the request time), which its worker looks up.
-- Returns 1 (failed), 2 (marked) or 0 (unknown or finished). A failed job's unique key
-- (KEYS[5]) is freed, as fail.lua frees it.
local now = now_ms()
local key = ARGV[1] .. 'j:' .. ARGV[2]
if redis.call('ZSCORE', KEYS[3], ARGV[2]) then
  if redis.call('TYPE', key)['ok'] ~= 'hash' then return 0 end
  redis.call('HSETNX', key, 'cx', now)
  return 2
end
if redis.call('ZREM', KEYS[1], ARGV[2]) + redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then
  return 0
end
local is_hash = redis.call('TYPE', key)['ok'] == 'hash'
if is_hash then unhold(KEYS[5], key, ARGV[2]) end
if ARGV[3] == '1' and is_hash then
  redis.call('HSET', key, 'err', ARGV[4], 'fin', now, 'run', 0)
  redis.call('HDEL', key, 'tok', 'uk')
  redis.call('ZADD', KEYS[4], now, ARGV[2])
  trim_kept(KEYS[4], ARGV[1], now, ARGV[5], ARGV[6])
else
  redis.call('DEL', key)
end
return 1
