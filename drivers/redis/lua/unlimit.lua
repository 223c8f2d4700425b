-- Frees max_concurrent slots: ARGV prefix, then (limit name, slot token) pairs.
for i = 2, #ARGV, 2 do
  redis.call('ZREM', ARGV[1] .. 'slot:' .. ARGV[i], ARGV[i + 1])
end
return 1
