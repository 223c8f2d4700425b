local DEFAULT_PRIORITY = $DEFAULT_PRIORITY
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function notify(key, count)
  if count > 0 then
    local tokens = {}
    for i = 1, math.min(count, 16) do tokens[i] = '1' end
    redis.call('LPUSH', key, unpack(tokens))
    redis.call('LTRIM', key, 0, 63)
  end
end
-- A finite number, or nil (tonumber alone lets 'nan' and 'inf' through, which ZADD
-- and the lease arithmetic refuse or carry along).
local function number(raw)
  local n = tonumber(raw)
  if n and n == n and n ~= math.huge and n ~= -math.huge then return n end
  return nil
end
-- Free the unique key job ``id`` holds for its life, if it still holds it (KEYS[held] is
-- the unique hash). Called in the step that ends the job.
local function unhold(held, key, id)
  local uk = redis.call('HGET', key, 'uk')
  if uk and redis.call('HGET', held, uk) == id then redis.call('HDEL', held, uk) end
end
