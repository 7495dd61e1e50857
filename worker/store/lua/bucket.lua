-- bucket: take room for one call from a leaky bucket.
-- KEYS: the bucket hash.
-- ARGV: now, capacity, per_second.
-- Returns the seconds to wait (a string; '0': taken).
local level = tonumber(redis.call('HGET', KEYS[1], {{bucket.level}}) or '0')
local at = tonumber(redis.call('HGET', KEYS[1], {{bucket.at}}) or ARGV[1])
local held = tonumber(redis.call('HGET', KEYS[1], {{bucket.held}}) or '0')
local now, capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if held > now then return tostring(held - now) end
level = math.max(0, level - (now - at) * rate)
if level + 1 > capacity then
  redis.call('HSET', KEYS[1], {{bucket.level}}, tostring(level), {{bucket.at}}, ARGV[1])
  return tostring((level + 1 - capacity) / rate)
end
redis.call('HSET', KEYS[1], {{bucket.level}}, tostring(level + 1), {{bucket.at}}, ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return '0'
