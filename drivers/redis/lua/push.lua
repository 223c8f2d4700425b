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
