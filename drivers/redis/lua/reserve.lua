local now = now_ms()
local prefix = ARGV[1]
local damaged = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  local pri = priority_or_fail(prefix .. 'j:' .. id, id, KEYS[4], now, damaged)
  if pri then redis.call('ZADD', KEYS[1], pri, id) end
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  local key = prefix .. 'j:' .. id
  local pri = priority_or_fail(key, id, KEYS[4], now, damaged)
  if pri then
    -- 'run' stays as it was: 1 if a run was going on, which the next run reports.
    redis.call('ZADD', KEYS[1], pri, id)
    redis.call('HDEL', key, 'tok')
  end
end
local jobs = {}
local want = tonumber(ARGV[2])
local lease = now + tonumber(ARGV[4])
repeat
  local bad = 0
  local popped = redis.call('ZPOPMIN', KEYS[1], want - #jobs)
  for i = 1, #popped, 2 do
    local id = popped[i]
    local key = prefix .. 'j:' .. id
    local f = redis.pcall('HMGET', key, 'p', 'ttr', 'pri', 'pushed', 'att', 'run')
    local problem
    if f['err'] then
      problem = key_problem(key) or 'its hash cannot be read'
    else
      problem = job_problem(f)
      if problem and not f[1] and not f[2] and not f[3] then
        problem = key_problem(key) or problem
      end
    end
    if problem then
      fail_damaged(key, id, problem, KEYS[4], now, damaged)
      bad = bad + 1
    else
      redis.call('HSET', key, 'tok', ARGV[3])
      redis.call('ZADD', KEYS[3], lease, id)
      jobs[#jobs + 1] = {id, f[1], f[2], f[3], f[4], f[5] or '0', f[6] or '0'}
    end
  end
until bad == 0 or #damaged >= 2000
local next_due = -1
if #jobs == 0 then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if first[2] then next_due = first[2] end
end
return {now, jobs, next_due, damaged}
