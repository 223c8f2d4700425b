-- Push with unique keys. KEYS: id counter, waiting, delayed, notify, failed, the unique
-- hash (key -> holder id), the unique windows (sorted set: key -> end of its unique_for,
-- ms). ARGV: prefix, then per job (payload, ttr, pri, delay_ms, unique key ('' for none),
-- unique_for in ms ('' for the job's life)). Returns one id per job: the new job's, or
-- the holder's when the key is held (nothing is stored for that job).
local now = now_ms()
local prefix = ARGV[1]
local ids, ready, later = {}, {}, {}
local pushed, sweep = 0, false
for i = 2, #ARGV, 6 do
  local ukey, ufor = ARGV[i + 4], ARGV[i + 5]
  local holder, window = nil, nil
  if ukey ~= '' then
    holder = redis.call('HGET', KEYS[6], ukey)
    if holder then
      window = number(redis.call('ZSCORE', KEYS[7], ukey))
      if window then
        if window <= now then holder = nil end
      elseif redis.pcall('HGET', prefix .. 'j:' .. holder, 'uk') ~= ukey
          or redis.call('ZSCORE', KEYS[5], holder) then
        -- Gone, finished or failed without freeing it (a damaged record): free.
        holder = nil
      end
    end
  end
  if holder then
    ids[#ids + 1] = holder
  else
    local number_ = redis.call('INCR', KEYS[1])
    local id = string.format('%012d', number_)
    local key = prefix .. 'j:' .. id
    local pri, delay = ARGV[i + 2], tonumber(ARGV[i + 3])
    if ukey ~= '' and ufor == '' then
      redis.call('HSET', key, 'p', ARGV[i], 'ttr', ARGV[i + 1], 'pri', pri, 'pushed', now,
                 'uk', ukey)
      -- A window that ended still had its entry: the key is the job's now.
      if window then redis.call('ZREM', KEYS[7], ukey) end
    else
      redis.call('HSET', key, 'p', ARGV[i], 'ttr', ARGV[i + 1], 'pri', pri, 'pushed', now)
    end
    if ukey ~= '' then
      redis.call('HSET', KEYS[6], ukey, id)
      if ufor ~= '' then
        redis.call('ZADD', KEYS[7], now + tonumber(ufor), ukey)
        sweep = sweep or number_ % 16 == 0
      end
    end
    if delay > 0 then
      later[#later + 1] = now + delay
      later[#later + 1] = id
    else
      ready[#ready + 1] = pri
      ready[#ready + 1] = id
    end
    ids[#ids + 1] = id
    pushed = pushed + 1
  end
end
if #ready > 0 then redis.call('ZADD', KEYS[2], unpack(ready)) end
if #later > 0 then redis.call('ZADD', KEYS[3], unpack(later)) end
notify(KEYS[4], pushed)
if sweep then
  -- Windows that ended, a few now and then: the hash does not grow with keys nobody
  -- pushes again.
  local old = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now, 'LIMIT', 0, 64)
  if #old > 0 then
    redis.call('HDEL', KEYS[6], unpack(old))
    redis.call('ZREM', KEYS[7], unpack(old))
  end
end
return ids
