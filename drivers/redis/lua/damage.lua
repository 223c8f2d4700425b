local function shown(raw)
  local text = string.gsub(string.sub(raw, 1, 40), '[^%w%p ]', '?')
  if #raw > 40 then text = text .. '...' end
  return "'" .. text .. "'"
end
local function field_problem(name, what, raw)
  if not raw then return 'its hash has no ' .. what .. " field '" .. name .. "'" end
  return 'its ' .. what .. " field '" .. name .. "' holds " .. shown(raw) .. ', not a number'
end
-- Why a job's fields {p, ttr, pri, pushed, att} cannot be used, or nil.
local function job_problem(f)
  if not f[1] then return "its hash has no payload field 'p'" end
  if not number(f[2]) then return field_problem('ttr', 'ttr', f[2]) end
  if not number(f[3]) then return field_problem('pri', 'priority', f[3]) end
  if not number(f[4]) then return field_problem('pushed', 'push time', f[4]) end
  if f[5] and not number(f[5]) then return field_problem('att', 'attempt count', f[5]) end
  return nil
end
-- The problem of a key whose read failed or found nothing: not a hash, or gone.
local function key_problem(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then return 'its hash is missing (no payload, ttr or priority)' end
  if kind ~= 'hash' then return 'its key holds a ' .. kind .. ', not a hash' end
  return nil
end
-- To the failed set with the reason, never to a worker. A key of another type is
-- replaced: nothing in it can be read as a job, and the error must be stored somewhere.
local function fail_damaged(key, id, reason, failed, now, damaged)
  if redis.call('TYPE', key)['ok'] ~= 'hash' then redis.call('DEL', key) end
  local err = cjson.encode({type = '$UNREADABLE',
    message = 'job ' .. id .. ' is damaged in the store: ' .. reason, traceback = ''})
  redis.call('HSET', key, 'err', err, 'fin', now, 'run', 0)
  redis.call('HDEL', key, 'tok')
  redis.call('ZADD', failed, now, id)
  damaged[#damaged + 1] = id
  damaged[#damaged + 1] = reason
end
-- The priority to queue a job under, or nil after failing it as damaged.
local function priority_or_fail(key, id, failed, now, damaged)
  local pri = redis.pcall('HGET', key, 'pri')
  if type(pri) == 'table' then
    fail_damaged(key, id, key_problem(key) or 'its hash cannot be read', failed, now, damaged)
    return nil
  end
  local n = number(pri)
  if n then return n end
  local reason = (not pri and key_problem(key)) or field_problem('pri', 'priority', pri)
  fail_damaged(key, id, reason, failed, now, damaged)
  return nil
end
