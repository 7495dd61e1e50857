-- count_up: one more in a count kept about one run of a message, under the message's lease.
-- KEYS: the count, the message's lease.
-- ARGV: the holder's token, the count's TTL (seconds).
-- Returns the new count; false (nothing written) when the lease is not the token's.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return count
