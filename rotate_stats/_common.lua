-- Helpers shared by claim.lua, restore.lua and record.lua: redis_side prepends this
-- file to each of them, so one definition of a hash value's validity serves all.

-- the type of a key as a string ('hash', 'none', ...), whatever the reply shape
local function key_type(key)
  local t = redis.call('TYPE', key)
  if type(t) == 'table' then t = t['ok'] end
  return t
end

-- nil when v is a canonical signed 64-bit decimal integer (as Redis writes
-- them: no "-0", no leading zeros), else what was expected
local function integer_problem(v)
  local digits, limit = v, '9223372036854775807'
  if string.sub(v, 1, 1) == '-' then
    digits, limit = string.sub(v, 2), '9223372036854775808'
  end
  if digits == '' or string.find(digits, '^%d+$') == nil then
    return 'a decimal integer'
  end
  if (#digits > 1 and string.sub(digits, 1, 1) == '0') or v == '-0' then
    return 'a decimal integer without leading zeros'
  end
  if #digits > 19 or (#digits == 19 and digits > limit) then
    return 'an integer that fits in 64 bits'
  end
  return nil
end

-- true for an absent value (nil/false) or a canonical integer of at most 18
-- digits: two of them always sum within 64 bits, so a HINCRBY cannot fail
local function small_integer(v)
  if v == nil or v == false then return true end
  return integer_problem(v) == nil and #(string.gsub(v, '^-', '')) <= 18
end
