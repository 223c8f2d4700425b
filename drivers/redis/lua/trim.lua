-- Retention: drop the oldest ids of a kept set (done or failed, score = finish time in
-- ms) beyond max_count, and those that finished more than max_age ms before now ('' for
-- no such limit), with their hashes. At most TRIM_BATCH per call, so that no call runs
-- long after the limits are lowered on a large set: each later call goes on from there.
local TRIM_BATCH = $TRIM_BATCH
local function trim_kept(set, prefix, now, max_count, max_age)
  local budget = TRIM_BATCH
  local count = tonumber(max_count)
  if count then
    local over = math.min(redis.call('ZCARD', set) - count, budget)
    if over > 0 then
      local ids = redis.call('ZRANGE', set, 0, over - 1)
      for i = 1, #ids do redis.call('DEL', prefix .. 'j:' .. ids[i]) end
      redis.call('ZREMRANGEBYRANK', set, 0, over - 1)
      budget = budget - over
    end
  end
  local age = tonumber(max_age)
  if age and budget > 0 then
    local ids = redis.call('ZRANGEBYSCORE', set, '-inf', '(' .. string.format('%d', now - age),
                           'LIMIT', 0, budget)
    if #ids > 0 then
      for i = 1, #ids do redis.call('DEL', prefix .. 'j:' .. ids[i]) end
      redis.call('ZREM', set, unpack(ids))
    end
  end
end
