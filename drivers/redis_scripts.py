"""The Lua scripts of the Redis driver: every state change is one script, so no crash
between two commands can lose or duplicate a job.

Keys (``P`` = ``qc:{<channel>}:``, one hash tag per channel, so Redis Cluster keeps them on
one slot; each key and field name is a constant below):

- ``P id``        counter for job ids
- ``P j:<id>``    hash: p payload, ttr, pri, pushed, att (runs started; missing: 0), run
                  (1 while a run is going on; missing: 0), st started, fin finished, err,
                  res, tok token of the reservation; a job's state is the set it is in
- ``P w``         sorted set of waiting ids, score = priority; ids are zero-padded, so equal
                  priorities come out in push order
- ``P d``         delayed ids, score = ready time (ms)
- ``P r``         reserved ids, score = lease end (ms)
- ``P done``, ``P f``   kept completed and failed ids, score = finish time (ms)
- ``P n``         a list pushed on every push, so idle workers blocked on it wake up

Times come from the server (``TIME``), so workers on several hosts agree.

A job's fields are checked wherever a script reads them (tonumber, never a Lua error: an
error aborts a script after its earlier writes, and the same record would make every
later reserve of the queue fail). A record that cannot be used goes to ``P f`` with an
``err`` of type DamagedJobRecord naming the field, instead of vanishing or being handed
to a worker.
"""

from __future__ import annotations

from queue_core.model import DEFAULT_PRIORITY, UNREADABLE

# The stored names, short because every job carries them. Stored data of earlier versions
# uses them, so they are never renamed; the Lua below spells them as written here.
ID_COUNTER = "id"
WAITING = "w"
DELAYED = "d"
RESERVED = "r"
DONE = "done"
FAILED = "f"
NOTIFY = "n"
JOB = "j:"
"""A job's hash is ``P j:<id>``."""
SET_KEYS = (WAITING, DELAYED, RESERVED, DONE, FAILED)
"""The sorted sets, one per state, in the order the scripts take them as KEYS."""

PAYLOAD = "p"
TTR = "ttr"
PRIORITY = "pri"
PUSHED = "pushed"
ATTEMPTS = "att"
RUNNING = "run"
STARTED = "st"
FINISHED = "fin"
ERROR = "err"
RESULT = "res"
TOKEN = "tok"
FIELDS = (PAYLOAD, TTR, PRIORITY, PUSHED, ATTEMPTS, RUNNING, STARTED, FINISHED, ERROR, RESULT,
          TOKEN)
"""Every field of a job's hash."""

_PRELUDE = """
local DEFAULT_PRIORITY = """ + str(DEFAULT_PRIORITY) + """
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
"""

_DAMAGE = """
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
  local err = cjson.encode({type = '""" + UNREADABLE + """',
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
"""

# KEYS: id, w, d, n.  ARGV: prefix, then either '1', ttr, priority, delay_ms and one
# payload per job (a batch whose jobs share those), or '0' and (payload, ttr, priority,
# delay_ms) per job. Ids are consecutive: returns the last one.
PUSH = _PRELUDE + """
local now = now_ms()
local prefix = ARGV[1]
local same = ARGV[2] == '1'
local first, step = 3, 4
if same then first, step = 6, 1 end
local count = math.floor((#ARGV - first + 1) / step)
local last = redis.call('INCRBY', KEYS[1], count)
local number = last - count
local ready, later = {}, {}
for i = first, #ARGV, step do
  number = number + 1
  local id = string.format('%012d', number)
  local ttr, pri, delay = ARGV[3], ARGV[4], ARGV[5]
  if not same then ttr, pri, delay = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] end
  delay = tonumber(delay)
  -- att and run are written by the first start; missing means 0. The state is the sorted
  -- set the id is in.
  redis.call('HSET', prefix .. 'j:' .. id, 'p', ARGV[i], 'ttr', ttr, 'pri', pri, 'pushed', now)
  if delay > 0 then
    later[#later + 1] = now + delay
    later[#later + 1] = id
  else
    ready[#ready + 1] = pri
    ready[#ready + 1] = id
  end
end
if #ready > 0 then redis.call('ZADD', KEYS[2], unpack(ready)) end
if #later > 0 then redis.call('ZADD', KEYS[3], unpack(later)) end
notify(KEYS[4], count)
return last
"""

# KEYS: w, d, r, f.  ARGV: prefix, max jobs, token, prefetch lease (ms).
# Moves due delayed jobs and expired leases back to waiting (no separate sweeper, no lock),
# then reserves up to ``max`` jobs WITHOUT starting them: a reserved job only counts as a
# run once START marks it, so jobs a crashed worker had fetched but not begun come back
# uncharged. A damaged record met on the way goes to the failed set, and the pop goes on
# for the jobs it leaves unfilled. Returns {now, jobs, next due time or -1, damaged ids and
# reasons (id, reason, ...)}.
RESERVE = _PRELUDE + _DAMAGE + """
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
"""

# The token checks below use pcall: a job key that is not a hash reads as not ours, and
# RESERVE fails the job when its lease ends.
#
# KEYS: r, done.  ARGV: prefix, grace (ms),
#   ack id ('' for none), ack token, keep ('1'/'0'), result,
#   start id ('' for none), start token, attempts before this start.
# The ack of the finished job and the start of the next one, in one call. Both check the
# reservation token, and the start the attempt count, so a resend is harmless.
FINISH_START = _PRELUDE + """
local now = now_ms()
local prefix = ARGV[1]
local acked, started = 0, 0
if ARGV[3] ~= '' then
  local key = prefix .. 'j:' .. ARGV[3]
  if redis.pcall('HGET', key, 'tok') == ARGV[4] and redis.call('ZREM', KEYS[1], ARGV[3]) == 1 then
    if ARGV[5] == '1' then
      redis.call('HSET', key, 'fin', now, 'res', ARGV[6], 'run', 0)
      redis.call('HDEL', key, 'tok', 'err')
      redis.call('ZADD', KEYS[2], now, ARGV[3])
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
"""

# KEYS: r, w, d, n.  ARGV: prefix, id, token, delay (ms), error json ('' keeps),
# '1' to leave 'run' as it is (a job given back before it started).
RELEASE = _PRELUDE + """
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
"""

# KEYS: r, f.  ARGV: prefix, id, token, keep ('1'/'0'), error json.
FAIL = _PRELUDE + """
local now = now_ms()
local key = ARGV[1] .. 'j:' .. ARGV[2]
if redis.pcall('HGET', key, 'tok') ~= ARGV[3] or redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then
  return 0
end
if ARGV[4] == '1' then
  redis.call('HSET', key, 'err', ARGV[5], 'fin', now, 'run', 0)
  redis.call('HDEL', key, 'tok')
  redis.call('ZADD', KEYS[2], now, ARGV[2])
else
  redis.call('DEL', key)
end
return 1
"""

# KEYS: w, d, r, done, f.  ARGV: prefix, id.
REMOVE = """
local key = ARGV[1] .. 'j:' .. ARGV[2]
local found = redis.call('DEL', key)
for i = 1, 5 do found = found + redis.call('ZREM', KEYS[i], ARGV[2]) end
return found > 0 and 1 or 0
"""

# KEYS: w, d, r, done, f, n.  ARGV: prefix, id, expected state ('done' or 'failed'),
# '1' to reset attempts.  Returns 1, -1 (no such job), the state the job is in, or {type}
# when the job's key is not a hash (nothing is changed).
RETRY = _PRELUDE + """
local key = ARGV[1] .. 'j:' .. ARGV[2]
local kind = redis.call('TYPE', key)['ok']
if kind == 'none' then return -1 end
if kind ~= 'hash' then return {kind} end
local names = {'waiting', 'delayed', 'reserved', 'done', 'failed'}
local source = 4
if ARGV[3] == 'failed' then source = 5 end
if not redis.call('ZSCORE', KEYS[source], ARGV[2]) then
  for i = 1, 5 do
    if redis.call('ZSCORE', KEYS[i], ARGV[2]) then return names[i] end
  end
  return 'unknown'
end
redis.call('ZREM', KEYS[source], ARGV[2])
redis.call('HDEL', key, 'err', 'res', 'fin', 'st', 'tok')
redis.call('HSET', key, 'run', 0)
if ARGV[4] == '1' then redis.call('HSET', key, 'att', 0) end
-- A priority that is not a number queues the job anyway; RESERVE then fails it again.
redis.call('ZADD', KEYS[1], number(redis.call('HGET', key, 'pri')) or DEFAULT_PRIORITY,
           ARGV[2])
notify(KEYS[6], 1)
return 1
"""

# KEYS: w, d, r, done, f, n.  ARGV: prefix.  Deletes up to 1000 jobs per call; returns
# how many are left, so the caller calls again until 0 (no long-running script).
CLEAR = """
local left = 0
for i = 1, 5 do
  local ids = redis.call('ZRANGE', KEYS[i], 0, 999)
  for _, id in ipairs(ids) do redis.call('DEL', ARGV[1] .. 'j:' .. id) end
  if #ids > 0 then redis.call('ZREM', KEYS[i], unpack(ids)) end
  left = left + redis.call('ZCARD', KEYS[i])
end
if left == 0 then redis.call('DEL', KEYS[6]) end
return left
"""
