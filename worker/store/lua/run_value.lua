-- run_value: keep a value about one run of a message (a poll's progress), under its lease.
-- KEYS: the value, the message's lease.
-- ARGV: the holder's token, the value (JSON), its TTL (seconds).
-- Returns 1 when kept; 0 (nothing written) when the lease is not the token's.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
