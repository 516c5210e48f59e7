-- Give a claim back to the live keys: add every claimed count into the live
-- twin hash with HINCRBY, delete the claim, and lower `earliest` to the date so
-- the next run sees it again.
--
-- Never half-applied: everything it will touch is validated before the first
-- write (live twins are hashes or absent, every value involved is a canonical
-- integer, no sum comes near the 64-bit limit); otherwise it returns why and
-- changes nothing.
--
-- Never races a pick-up: a run that picked this claim up as pending marked it
-- (KEYS[17], set by claim.lua) and may be committing it; a strict give-back
-- (ARGV[3] = "strict") then refuses, and the claim is left to that run. A claim
-- whose data no run can parse (ARGV[3] = "unparsable") cannot be committed by
-- anyone, so it is given back whoever marked it.
--
-- KEYS[1..7]   claim counts hash, claim breakdown hashes
-- KEYS[8]      claim id string
-- KEYS[9..15]  live counts hash, live breakdown hashes
-- KEYS[16]     earliest
-- KEYS[17]     pick-up marker of the claim
-- ARGV[1]      the claim id this run read
-- ARGV[2]      the date
-- ARGV[3]      "strict" or "unparsable"
-- Reply: {1} restored; {0} the claim is not the expected one; {-1} picked up by
-- another run; {-2, key, field, value, expected} invalid: nothing changed

if redis.call('GET', KEYS[8]) ~= ARGV[1] then return {0} end
if ARGV[3] == 'strict' and redis.call('EXISTS', KEYS[17]) == 1 then return {-1} end

for j = 1, 7 do
  local t = key_type(KEYS[8 + j])
  if t ~= 'hash' and t ~= 'none' then
    return {-2, KEYS[8 + j], '', t, 'a hash (or no key)'}
  end
  local flat = redis.call('HGETALL', KEYS[j])
  for f = 1, #flat, 2 do
    if not small_integer(flat[f + 1]) then
      return {-2, KEYS[j], flat[f], flat[f + 1], 'an integer of at most 18 digits to give back'}
    end
    local live = redis.call('HGET', KEYS[8 + j], flat[f])
    if not small_integer(live) then
      return {-2, KEYS[8 + j], flat[f], live, 'an integer of at most 18 digits to add the claim to'}
    end
  end
end

for j = 1, 7 do
  local flat = redis.call('HGETALL', KEYS[j])
  for f = 1, #flat, 2 do redis.call('HINCRBY', KEYS[8 + j], flat[f], flat[f + 1]) end
  redis.call('DEL', KEYS[j])
end
redis.call('DEL', KEYS[8], KEYS[17])
local raw = redis.call('GET', KEYS[16])
local current = nil
if raw then current = tonumber(raw) end
if raw == false or (current ~= nil and current > tonumber(ARGV[2])) then
  redis.call('SET', KEYS[16], ARGV[2])
end
return {1}
