-- Every unique key of the channel goes with its jobs, windows included (KEYS[7], [8]).
redis.call('DEL', KEYS[7], KEYS[8])
local left = 0
for i = 1, 5 do
  local ids = redis.call('ZRANGE', KEYS[i], 0, 999)
  for _, id in ipairs(ids) do redis.call('DEL', ARGV[1] .. 'j:' .. id) end
  if #ids > 0 then redis.call('ZREM', KEYS[i], unpack(ids)) end
  left = left + redis.call('ZCARD', KEYS[i])
end
if left == 0 then redis.call('DEL', KEYS[6]) end
return left
