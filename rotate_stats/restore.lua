-- Give a claim back (strict mode stops before a violating date): add every
-- claimed count into the live twin hash with HINCRBY, delete the claim, and
-- lower `earliest` to the date so the next run sees it again.
--
-- KEYS[1..7]   claim counts hash, claim breakdown hashes
-- KEYS[8]      claim id string
-- KEYS[9..15]  live counts hash, live breakdown hashes
-- KEYS[16]     earliest
-- ARGV[1]      the claim id this run read
-- ARGV[2]      the date
-- Reply: 1 restored, 0 the claim was not the expected one (nothing changed)

if redis.call('GET', KEYS[8]) ~= ARGV[1] then return 0 end
for j = 1, 7 do
  local flat = redis.call('HGETALL', KEYS[j])
  for f = 1, #flat, 2 do redis.call('HINCRBY', KEYS[8 + j], flat[f], flat[f + 1]) end
  redis.call('DEL', KEYS[j])
end
redis.call('DEL', KEYS[8])
local raw = redis.call('GET', KEYS[16])
local current = nil
if raw then current = tonumber(raw) end
if raw == false or (current ~= nil and current > tonumber(ARGV[2])) then
  redis.call('SET', KEYS[16], ARGV[2])
end
return 1
