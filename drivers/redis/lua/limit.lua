-- Rate limits (queue_core/limits.py, take_tokens): token buckets in 'P lim:<name>'
-- (t tokens, a when, in ms) and slots of max_concurrent in 'P slot:<name>' (token, score
-- = lease end in ms). ARGV: prefix, limit count, per limit (name, rate per second or '',
-- bucket size, max running or ''), want count, per want (slot token, lease ms, limit
-- count, limit positions 1-based). Returns {grants as '1'/'0' per want, ms to wait or -1}.
local now = now_ms()
local prefix = ARGV[1]
local pos = 3
local limits = {}
for i = 1, tonumber(ARGV[2]) do
  local lim = {rate = number(ARGV[pos + 1]), burst = number(ARGV[pos + 2]) or 1,
               most = number(ARGV[pos + 3]),
               bucket = prefix .. 'lim:' .. ARGV[pos], slots = prefix .. 'slot:' .. ARGV[pos]}
  pos = pos + 4
  if lim.rate then
    local state = redis.call('HMGET', lim.bucket, 't', 'a')
    local t, a = number(state[1]), number(state[2])
    if not t or not a then
      t = lim.burst  -- new or expired: a bucket left alone is full
    elseif now > a then
      t = math.min(lim.burst, t + (now - a) * lim.rate / 1000)
    end
    lim.tokens = t
  end
  if lim.most then
    redis.call('ZREMRANGEBYSCORE', lim.slots, '-inf', now)
    lim.used = redis.call('ZCARD', lim.slots)
  end
  limits[i] = lim
end
local granted = {}
local wait = -1
local function wait_at_most(ms)
  if wait < 0 or ms < wait then wait = ms end
end
local wants = tonumber(ARGV[pos])
pos = pos + 1
for w = 1, wants do
  local slot, lease, count = ARGV[pos], tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
  pos = pos + 3
  local ok = true
  for j = 0, count - 1 do
    local lim = limits[tonumber(ARGV[pos + j])]
    if lim.rate and lim.tokens < 1 then
      ok = false
      wait_at_most((1 - lim.tokens) * 1000 / lim.rate)
    end
    if lim.most and lim.used >= lim.most then
      ok = false
      local first = redis.call('ZRANGE', lim.slots, 0, 0, 'WITHSCORES')
      wait_at_most(math.min($SLOT_POLL_MS, math.max(0, (tonumber(first[2]) or now) - now)))
    end
  end
  if ok then
    for j = 0, count - 1 do
      local lim = limits[tonumber(ARGV[pos + j])]
      if lim.rate then lim.tokens = lim.tokens - 1 end
      if lim.most then
        redis.call('ZADD', lim.slots, now + lease, slot)
        lim.used = lim.used + 1
        if redis.call('PTTL', lim.slots) < lease + 1000 then
          redis.call('PEXPIRE', lim.slots, lease + 1000)
        end
      end
    end
  end
  granted[w] = ok and '1' or '0'
  pos = pos + count
end
for _, lim in ipairs(limits) do
  if lim.rate then
    redis.call('HSET', lim.bucket, 't', tostring(lim.tokens), 'a', now)
    -- A bucket left alone refills: once full it is the same as none.
    redis.call('PEXPIRE', lim.bucket, math.ceil(lim.burst * 1000 / lim.rate) + 1000)
  end
end
return {table.concat(granted), tostring(wait)}
