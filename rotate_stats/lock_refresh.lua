-- Extend the lock's expiry if this run still holds it.
-- KEYS[1] lock; ARGV[1] token; ARGV[2] ttl in milliseconds
-- Reply: 1 extended, 0 the lock is gone or held by another run
local key, token, ttl = KEYS[1], ARGV[1], ARGV[2]
if redis.call('GET', key) == token then
  redis.call('PEXPIRE', key, ttl)
  return 1
end
return 0
