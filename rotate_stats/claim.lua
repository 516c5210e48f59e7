-- Claim dates: RENAME each date's live hashes to claim keys, so that writes
-- arriving afterwards land in fresh live keys. O(1) per key whatever a hash
-- holds: nothing is read or validated here (Redis must never stall on a wide
-- hash). The caller reads the claim in bounded chunks, validates it, and gives
-- back (give_back.lua) a date it cannot use. Only key types are checked here,
-- also O(1).
-- A claim left by an earlier run (crashed or overlapping) is returned as is.
--
-- KEYS: 16 per date, dates in ARGV order, then the claim sequence counter:
--   +1..+7   live counts hash, then live breakdown hashes in event order
--   +8..+14  claim counts hash, then claim breakdown hashes (same order)
--   +15      claim id string
--   +16      pick-up marker: set to ARGV[2] when this call returns a pending claim,
--            so that its owner's strict give-back refuses from now on
--   KEYS[16n + 1]  claim sequence counter
-- ARGV[1]            n, the number of dates
-- ARGV[2]            claim id prefix, unique per call; a new claim's id is
--                    "<prefix>/<date>/<sequence>", the sequence drawn here, so a
--                    resent call (same prefix) can never cut a claim under an id
--                    that named another claim
-- ARGV[3]            floor: the sequence counter is first raised to at least this
--                    (the highest sequence the database knows; a counter moved back
--                    by a restart from an old snapshot must not draw it again)
-- ARGV[4 .. 3+n]     the dates
--
-- Reply: one entry per date, in order:
--   {"pending", id, len1 .. len7}   an earlier claim, not yet released
--   {"claimed", id, len1 .. len7}   a new claim cut by this call
--   {"empty", ""}                   no live keys and no claim
--   {"invalid", key, field, value, expected}   left untouched; later dates go on
-- len1 .. len7 are the HLENs of the claim hashes (0: absent).

local n = tonumber(ARGV[1])
local prefix = ARGV[2]
local floor = ARGV[3]

-- a < b for canonical non-negative decimal strings, compared as text: Lua numbers
-- are doubles, exact only to 2^53 and printed as 1e+17 from there
local function less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

local function lengths(base)
  local reply = {}
  for j = 0, 6 do reply[#reply + 1] = redis.call('HLEN', KEYS[base + j]) end
  return reply
end

-- nil when the keys from KEYS[base] (count of them) are hashes or absent
local function not_hashes(base, count, expected)
  for j = 0, count - 1 do
    local t = key_type(KEYS[base + j])
    if t ~= 'hash' and t ~= 'none' then
      return {'invalid', KEYS[base + j], '', t, expected}
    end
  end
  return nil
end

local replies = {}
for i = 1, n do
  local base = (i - 1) * 16
  local live, claim, id_key, picked = base + 1, base + 8, KEYS[base + 15], KEYS[base + 16]
  local date = ARGV[3 + i]
  local id_type = key_type(id_key)
  local reply
  if id_type ~= 'string' and id_type ~= 'none' then
    reply = {'invalid', id_key, '', id_type, 'a string holding a claim id'}
  elseif id_type == 'string' then
    reply = not_hashes(claim, 7, 'a hash')
    if reply == nil then
      redis.call('SET', picked, prefix)
      reply = {'pending', redis.call('GET', id_key)}
      for _, len in ipairs(lengths(claim)) do reply[#reply + 1] = len end
    end
  else
    -- claim hashes without an id would be overwritten by RENAME: refuse to guess
    for j = 0, 6 do
      if reply == nil and redis.call('EXISTS', KEYS[claim + j]) == 1 then
        reply = {'invalid', KEYS[claim + j], '', 'a claim hash without claim id',
          'no claim hash unless ' .. id_key .. ' exists'}
      end
    end
    reply = reply or not_hashes(live, 7, 'a hash')
    if reply == nil then
      local any = false
      for j = 0, 6 do
        if redis.call('EXISTS', KEYS[live + j]) == 1 then
          redis.call('RENAME', KEYS[live + j], KEYS[claim + j])
          -- a writer's TTL travels with RENAME: a claim must never expire or be
          -- evicted under volatile-* policies before it is committed
          redis.call('PERSIST', KEYS[claim + j])
          any = true
        end
      end
      if any then
        local counter = KEYS[16 * n + 1]
        if less(redis.call('GET', counter) or '0', floor) then redis.call('SET', counter, floor) end
        redis.call('INCR', counter)
        -- the counter read back as text: its digits in full, whatever its size
        local id = prefix .. '/' .. date .. '/' .. redis.call('GET', counter)
        redis.call('SET', id_key, id)
        redis.call('DEL', picked)
        reply = {'claimed', id}
        for _, len in ipairs(lengths(claim)) do reply[#reply + 1] = len end
      else
        reply = {'empty', ''}
      end
    end
  end
  replies[#replies + 1] = reply
end
return replies
