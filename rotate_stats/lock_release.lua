-- Delete the lock if this run still holds it (compare-and-delete).
-- KEYS[1] lock; ARGV[1] token
-- Reply: 1 deleted, 0 the lock is gone or held by another run
local key, token = KEYS[1], ARGV[1]
if redis.call('GET', key) == token then
  return redis.call('DEL', key)
end
return 0
