-- Claim a batch of dates: validate each date's live hashes, then RENAME them to
-- claim keys so that writes arriving afterwards land in fresh live keys.
-- A claim left by an earlier run (crashed or overlapping) is returned as is.
--
-- KEYS: 16 per date, dates in ARGV order, then the claim sequence counter:
--   +1..+7   live counts hash, then live breakdown hashes in event order
--   +8..+14  claim counts hash, then claim breakdown hashes (same order)
--   +15      claim id string
--   +16      pick-up marker: set to ARGV[2] when this call returns a pending claim,
--            so that its owner's strict give-back (restore.lua) refuses from now on
--   KEYS[16n + 1]  claim sequence counter
-- ARGV[1]            n, the number of dates
-- ARGV[2]            claim id prefix, unique per call; a new claim's id is
--                    "<prefix>/<date>/<sequence>", the sequence drawn here, so a
--                    resent call (same prefix) can never cut a claim under an id
--                    that named another claim
-- ARGV[3 .. 2+n]     the dates
-- ARGV[3+n .. ]      the event names allowed as fields of a counts hash
--
-- Reply: one entry per date handled, in order; handling stops at the first
-- invalid date, which is reported and left untouched (as are later dates).
--   {"pending", id, h1 .. h7}   an earlier claim, not yet released
--   {"claimed", id, h1 .. h7}   a new claim cut by this call
--   {"empty", ""}               no live keys and no claim
--   {"invalid", key, field, value, expected}
-- h1 .. h7 are HGETALL replies (flat field/value arrays) of the claim hashes.

local n = tonumber(ARGV[1])
local run_id = ARGV[2]
-- SQLite's JSON functions cut text at NUL, so such a key could not be stored verbatim
local NUL_EXPECTED = 'a field name without NUL characters'
local allowed = {}
for i = 3 + n, #ARGV do allowed[ARGV[i]] = true end

-- nil when the 7 hashes starting at KEYS[base] are valid, else an invalid reply
local function validate(base)
  for j = 0, 6 do
    local key = KEYS[base + j]
    local t = key_type(key)
    if t ~= 'hash' and t ~= 'none' then
      return {'invalid', key, '', t, 'a hash'}
    end
    if t == 'hash' then
      local flat = redis.call('HGETALL', key)
      for f = 1, #flat, 2 do
        if j == 0 and not allowed[flat[f]] then
          return {'invalid', key, flat[f], flat[f + 1], 'a field named after an event'}
        end
        if string.find(flat[f], '\0', 1, true) then
          return {'invalid', key, flat[f], flat[f + 1], NUL_EXPECTED}
        end
        local problem = integer_problem(flat[f + 1])
        if problem then return {'invalid', key, flat[f], flat[f + 1], problem} end
      end
    end
  end
  return nil
end

local function contents(base)
  local reply = {}
  for j = 0, 6 do reply[#reply + 1] = redis.call('HGETALL', KEYS[base + j]) end
  return reply
end

local replies = {}
for i = 1, n do
  local base = (i - 1) * 16
  local live, claim, id_key, picked = base + 1, base + 8, KEYS[base + 15], KEYS[base + 16]
  local date = ARGV[2 + i]
  local id_type = key_type(id_key)
  if id_type ~= 'string' and id_type ~= 'none' then
    replies[#replies + 1] = {'invalid', id_key, '', id_type, 'a string holding a claim id'}
    return replies
  end
  if id_type == 'string' then
    redis.call('SET', picked, run_id)
    local id = redis.call('GET', id_key)
    local reply = {'pending', id}
    for _, h in ipairs(contents(claim)) do reply[#reply + 1] = h end
    replies[#replies + 1] = reply
  else
    -- claim hashes without an id would be overwritten by RENAME: refuse to guess
    for j = 0, 6 do
      if redis.call('EXISTS', KEYS[claim + j]) == 1 then
        replies[#replies + 1] = {'invalid', KEYS[claim + j], '', 'a claim hash without claim id',
          'no claim hash unless ' .. id_key .. ' exists'}
        return replies
      end
    end
    local problem = validate(live)
    if problem then
      replies[#replies + 1] = problem
      return replies
    end
    local any = false
    for j = 0, 6 do
      if redis.call('EXISTS', KEYS[live + j]) == 1 then
        redis.call('RENAME', KEYS[live + j], KEYS[claim + j])
        -- a writer's TTL travels with RENAME: a claim must never expire or be evicted
        -- under volatile-* policies before it is committed
        redis.call('PERSIST', KEYS[claim + j])
        any = true
      end
    end
    if any then
      local id = run_id .. '/' .. date .. '/' .. redis.call('INCR', KEYS[16 * n + 1])
      redis.call('SET', id_key, id)
      redis.call('DEL', picked)
      local reply = {'claimed', id}
      for _, h in ipairs(contents(claim)) do reply[#reply + 1] = h end
      replies[#replies + 1] = reply
    else
      replies[#replies + 1] = {'empty', ''}
    end
  end
end
return replies
