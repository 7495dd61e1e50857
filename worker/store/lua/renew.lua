-- renew: renew a lease only while we still hold it; move the watchdog's deadline along.
-- KEYS: the lease, the watch zset (the lease again when nothing is watched).
-- ARGV: the holder's token, the lease's milliseconds, the new watch deadline ('' for none), the
--       member watched.
-- Returns 1, or 0 when the lease is another holder's or gone.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[4]) end
return 1
