local key = ARGV[1] .. 'j:' .. ARGV[2]
local found = redis.call('DEL', key)
for i = 1, 5 do found = found + redis.call('ZREM', KEYS[i], ARGV[2]) end
return found > 0 and 1 or 0
