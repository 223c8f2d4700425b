-- A running job's progress, stored only while the job is reserved: a late write never
-- brings back the hash of a job that ended or was removed.
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.pcall('HSET', ARGV[1] .. 'j:' .. ARGV[2], 'pg', ARGV[3])
  return 1
end
return 0
