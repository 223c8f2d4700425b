local now = now_ms()
local prefix = ARGV[1]
local acked, started = 0, 0
if ARGV[3] ~= '' then
  local key = prefix .. 'j:' .. ARGV[3]
  if redis.pcall('HGET', key, 'tok') == ARGV[4] and redis.call('ZREM', KEYS[1], ARGV[3]) == 1 then
    unhold(KEYS[3], key, ARGV[3])
    if ARGV[5] == '1' then
      redis.call('HSET', key, 'fin', now, 'res', ARGV[6], 'run', 0)
      redis.call('HDEL', key, 'tok', 'err', 'uk')
      redis.call('ZADD', KEYS[2], now, ARGV[3])
      trim_kept(KEYS[2], prefix, now, ARGV[10], ARGV[11])
    else
      redis.call('DEL', key)
    end
    acked = 1
  end
end
if ARGV[7] ~= '' then
  local key = prefix .. 'j:' .. ARGV[7]
  local f = redis.pcall('HMGET', key, 'tok', 'att', 'ttr')
  local att = f[2] or '0'
  if f[1] == ARGV[8] then
    -- RESERVE checked these fields; a record changed since then must not abort the ack
    -- above (a bad ttr gives a lease that is already over, and the worker fails the job).
    local before = number(ARGV[9])
    if att == ARGV[9] then
      redis.call('HSET', key, 'att', (number(att) or 0) + 1, 'run', 1, 'st', now)
      redis.call('ZADD', KEYS[1], now + math.floor((number(f[3]) or 0) * 1000
                 + tonumber(ARGV[2])), ARGV[7])
      started = 1
    elseif before and number(att) == before + 1 then
      started = 1
    end
  end
end
return {acked, started}
