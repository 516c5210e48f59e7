-- Record one event for a date, honouring the earliest protocol: refuse (and
-- count the refusal) when the date was already rotated, i.e. is below
-- `earliest`; otherwise increment the count and its breakdown, and set
-- `earliest` to the date when it is absent.
--
-- Never half-applied: the two hashes and the fields it will increment are
-- checked before the first write (a hash or no key; a canonical integer of at
-- most 18 digits or no field), so both increments happen or neither does.
--
-- KEYS[1] counts hash   KEYS[2] breakdown hash   KEYS[3] earliest   KEYS[4] refusals hash
-- ARGV[1] date   ARGV[2] event   ARGV[3] breakdown key   ARGV[4] amount   ARGV[5] refusal field
-- Reply: 1 recorded, 0 refused; an error naming the key and field, nothing changed
local counts, breakdown, earliest, refused = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local date, event, bkey, amount, rfield = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local raw = redis.call('GET', earliest)
local current = nil
if raw then current = tonumber(raw) end
if current ~= nil and tonumber(date) < current then
  redis.call('HINCRBY', refused, rfield, amount)
  return 0
end

for _, target in ipairs({{counts, event}, {breakdown, bkey}}) do
  local key, field = target[1], target[2]
  local t = key_type(key)
  if t ~= 'hash' and t ~= 'none' then
    return redis.error_reply('rotate_stats: ' .. key .. ' is a ' .. t .. ', expected a hash')
  end
  local v = redis.call('HGET', key, field)
  if not small_integer(v) then
    return redis.error_reply('rotate_stats: ' .. key .. ' field ' .. field .. ' holds '
      .. v .. ', expected an integer of at most 18 digits')
  end
end
redis.call('HINCRBY', counts, event, amount)
redis.call('HINCRBY', breakdown, bkey, amount)
if raw == false then redis.call('SET', earliest, date) end
return 1
