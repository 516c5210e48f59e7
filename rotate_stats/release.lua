-- Release a committed batch: delete each date's claim keys if the claim is
-- still the one this run committed, then move `earliest` past the batch unless
-- a batch date has live keys or someone else's claim again (then to the
-- smallest such date), or a writer lowered it below the batch (then leave it).
--
-- KEYS: 16 per date, dates in ascending order, then the earliest key:
--   +1..+7   claim counts hash, claim breakdown hashes
--   +8       claim id string
--   +9..+15  live counts hash, live breakdown hashes
--   +16      the claim's pick-up marker (deleted with the claim)
--   KEYS[16n + 1]  earliest
-- ARGV[1]            n, the number of dates (contiguous, ascending)
-- ARGV[2 .. 1+n]     the claim id committed per date ("" when it had none)
-- ARGV[2+n .. 1+2n]  the dates
--
-- Reply: {released, earliest_after}
--   released        array of 1 (claim deleted) / 0 (nothing of ours to delete) per date
--   earliest_after  the value of earliest after this call ("" if absent or left as non-integer)

local n = tonumber(ARGV[1])
local earliest_key = KEYS[16 * n + 1]
local released = {}
local blocked = nil
for i = 1, n do
  local base = (i - 1) * 16
  local expected = ARGV[1 + i]
  local date = tonumber(ARGV[1 + n + i])
  released[i] = 0
  if expected ~= '' and redis.call('GET', KEYS[base + 8]) == expected then
    -- UNLINK: a wide hash is freed off Redis's main thread
    for j = 1, 8 do redis.call('UNLINK', KEYS[base + j]) end
    redis.call('UNLINK', KEYS[base + 16])
    released[i] = 1
  end
  if blocked == nil then
    if redis.call('EXISTS', KEYS[base + 8]) == 1 then blocked = date end
    for j = 9, 15 do
      if redis.call('EXISTS', KEYS[base + j]) == 1 then blocked = date end
    end
  end
end

local first = tonumber(ARGV[2 + n])
local target = blocked or (tonumber(ARGV[1 + 2 * n]) + 1)
local raw = redis.call('GET', earliest_key)
local current = nil
if raw then current = tonumber(raw) end
if raw == false then
  redis.call('SET', earliest_key, target)
elseif current == nil or current < first then
  -- garbage is reported by the run, and a writer's lower value must stand
elseif blocked ~= nil then
  -- every batch date before `blocked` is done; `blocked` itself still has keys
  redis.call('SET', earliest_key, blocked)
elseif current < target then
  redis.call('SET', earliest_key, target)
end
return {released, redis.call('GET', earliest_key) or ''}
