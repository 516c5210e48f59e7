-- One step of giving a claim back to the live keys, within a budget of field
-- operations, so that Redis never stalls on a wide hash. The caller repeats it
-- while it answers "more".
--
-- Per claim hash (counts, then breakdowns), cheapest first:
--   * live twin absent: RENAME the claim hash to it (O(1), any content);
--   * live twin within the budget: add the live fields into the claim hash,
--     then RENAME it over the live twin (the twin holds only writes that
--     arrived since the claim);
--   * otherwise move up to the budget of fields (HRANDFIELD: distinct, O(count)):
--     HINCRBY (or HSET when the live twin lacks the field) into the live twin,
--     HDEL from the claim.
-- Every field is moved exactly once: a step that stops (budget, a crash, a
-- refusal) leaves each count either in the claim or in the live keys, never in
-- both. A step validates everything it will write before its first write; it
-- refuses a field both sides hold unless both values are integers of at most
-- 18 digits (their sum then fits in 64 bits). The first step lowers `earliest`
-- to the date, so the next run visits it; the last deletes the claim id.
--
-- Never races a pick-up: a run that picked this claim up as pending marked it
-- (KEYS[17], set by claim.lua to its call's prefix) and may be reading or
-- committing it. A give-back is refused unless the marker is absent or is the
-- caller's own (ARGV[3]): only the last run to take the claim may give it back,
-- whatever the reason (strict mode, a row it cannot merge into, a value no run
-- can parse).
--
-- KEYS[1..7]   claim counts hash, claim breakdown hashes
-- KEYS[8]      claim id string
-- KEYS[9..15]  live counts hash, live breakdown hashes
-- KEYS[16]     earliest
-- KEYS[17]     pick-up marker of the claim
-- ARGV[1]      the claim id this run read
-- ARGV[2]      the date
-- ARGV[3]      the prefix of the claim call that gave the caller this claim
-- ARGV[4]      budget: field operations this step may do (at least 1)
-- Reply: {1} done: claim gone; {2} more: call again; {0} the claim is not the
-- expected one; {-1} picked up by another run; {-2, key, field, value, expected}
-- refused: this step changed nothing

if redis.call('GET', KEYS[8]) ~= ARGV[1] then return {0} end
local marker = redis.call('GET', KEYS[17])
if marker and marker ~= ARGV[3] then return {-1} end
local budget = tonumber(ARGV[4])

for j = 1, 7 do
  local t = key_type(KEYS[8 + j])
  if t ~= 'hash' and t ~= 'none' then
    return {-2, KEYS[8 + j], '', t, 'a hash (or no key)'}
  end
end

-- plan and validate: {kind, j, flat}
local plan = {}
for j = 1, 7 do
  if budget <= 0 then break end
  local claim, live = KEYS[j], KEYS[8 + j]
  if redis.call('EXISTS', claim) == 1 then
    if redis.call('EXISTS', live) == 0 then
      plan[#plan + 1] = {'rename', j}
      budget = budget - 1
    elseif redis.call('HLEN', live) <= budget then
      local flat = redis.call('HGETALL', live)
      for f = 1, #flat, 2 do
        local mine = redis.call('HGET', claim, flat[f])
        if not small_integer(flat[f + 1]) then
          return {-2, live, flat[f], flat[f + 1], 'an integer of at most 18 digits to add the claim to'}
        end
        if not small_integer(mine) then
          return {-2, claim, flat[f], mine, 'an integer of at most 18 digits to give back'}
        end
      end
      plan[#plan + 1] = {'merge', j, flat}
      budget = budget - #flat / 2 - 1
    else
      local flat = redis.call('HRANDFIELD', claim, budget, 'WITHVALUES')
      for f = 1, #flat, 2 do
        local theirs = redis.call('HGET', live, flat[f])
        if theirs and not small_integer(flat[f + 1]) then
          return {-2, claim, flat[f], flat[f + 1], 'an integer of at most 18 digits to give back'}
        end
        if not small_integer(theirs) then
          return {-2, live, flat[f], theirs, 'an integer of at most 18 digits to add the claim to'}
        end
      end
      plan[#plan + 1] = {'move', j, flat}
      budget = 0
    end
  end
end

for _, step in ipairs(plan) do
  local kind, j, flat = step[1], step[2], step[3]
  local claim, live = KEYS[j], KEYS[8 + j]
  if kind == 'rename' then
    redis.call('RENAME', claim, live)
  elseif kind == 'merge' then
    for f = 1, #flat, 2 do redis.call('HINCRBY', claim, flat[f], flat[f + 1]) end
    redis.call('RENAME', claim, live)
  else
    for f = 1, #flat, 2 do
      if redis.call('HEXISTS', live, flat[f]) == 1 then
        redis.call('HINCRBY', live, flat[f], flat[f + 1])
      else
        redis.call('HSET', live, flat[f], flat[f + 1])
      end
      redis.call('HDEL', claim, flat[f])
    end
  end
end

local raw = redis.call('GET', KEYS[16])
local current = nil
if raw then current = tonumber(raw) end
if raw == false or (current ~= nil and current > tonumber(ARGV[2])) then
  redis.call('SET', KEYS[16], ARGV[2])
end
for j = 1, 7 do
  if redis.call('EXISTS', KEYS[j]) == 1 then return {2} end
end
redis.call('DEL', KEYS[8], KEYS[17])
return {1}
