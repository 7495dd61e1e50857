-- book: take room for one call from a leaky bucket, or book the moment it may go.
-- KEYS: the bucket hash, its bookings hash (holder -> the booked moment).
-- ARGV: now, capacity, per_second, the holder (one run of a message), the longest wait worth
--       sleeping (seconds).
-- Returns the seconds to wait (a string). At most the longest wait: the room is taken, the call
-- goes after that wait. More: the call is booked for then, and the holder comes back to take it
-- (a booking the provider's pause overtook is dropped and booked again after the pause).
local now, capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local holder, bound = ARGV[4], tonumber(ARGV[5])
local held = tonumber(redis.call('HGET', KEYS[1], {{bucket.held}}) or '0')
local at = tonumber(redis.call('HGET', KEYS[2], holder) or '0')
if at > 0 and held > at then at = 0 end
if at == 0 then
  local level = tonumber(redis.call('HGET', KEYS[1], {{bucket.level}}) or '0')
  local last = tonumber(redis.call('HGET', KEYS[1], {{bucket.at}}) or ARGV[1])
  level = math.max(0, level - (now - last) * rate)
  at = math.max(now, held) + math.max(0, level + 1 - capacity) / rate
  redis.call('HSET', KEYS[1], {{bucket.level}}, tostring(level + 1), {{bucket.at}}, ARGV[1])
  redis.call('EXPIRE', KEYS[1], math.ceil((level + 1) / rate) + 60)
end
if at - now <= bound then
  redis.call('HDEL', KEYS[2], holder)
  return tostring(math.max(0, at - now))
end
redis.call('HSET', KEYS[2], holder, tostring(at))
redis.call('EXPIRE', KEYS[2], math.ceil(at - now) + 3600)
return tostring(at - now)
