-- count_clear: forget a count kept about one run of a message, under the message's lease.
-- KEYS: the count, the message's lease.
-- ARGV: the holder's token.
-- Returns 1 when cleared; 0 (nothing done) when the lease is not the token's.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
