-- Prove, on the server about to be fenced, that it holds the claims about to be
-- committed as they were read, and write the fence key: the WAIT / WAITAOF that
-- follows on the same connection then covers these very claims on this very
-- server. O(1) per key (GET, HLEN): a batch is split over several calls.
--
-- A date's key layout comes in the arguments, so one script serves any family.
-- KEYS: per date its claim id key, then its claim hashes; last, the fence key
-- ARGV[1]  n, the number of dates
-- ARGV[2]  fence token (the run id)
-- ARGV[3]  fence key TTL in milliseconds
-- then per date: the claim id read, k (its claim hashes), then k lengths: the
--   distinct fields read from each claim hash, in KEYS order
--
-- Reply: per date, in order:
--   {1}                   proven: same claim id, every hash as long as what was read
--   {0, id}               not this claim: the id found instead ("" when none)
--   {2, len_1 .. len_k}   same claim, other lengths: the read was incomplete

local n = tonumber(ARGV[1])
local key, arg = 1, 4
local replies = {}
for i = 1, n do
  local expected, k = ARGV[arg], tonumber(ARGV[arg + 1])
  local found = redis.call('GET', KEYS[key])
  local reply
  if found ~= expected then
    reply = {0, found or ''}
  else
    local lengths, same = {2}, true
    for j = 1, k do
      local len = redis.call('HLEN', KEYS[key + j])
      lengths[#lengths + 1] = len
      if len ~= tonumber(ARGV[arg + 1 + j]) then same = false end
    end
    if same then reply = {1} else reply = lengths end
  end
  replies[i] = reply
  key, arg = key + 1 + k, arg + 2 + k
end
redis.call('SET', KEYS[#KEYS], ARGV[2], 'PX', ARGV[3])
return replies
