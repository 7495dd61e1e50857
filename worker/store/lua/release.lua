-- release: delete a lock key only if we still hold it.
-- KEYS: the lock.
-- ARGV: the holder's token.
-- Returns 1 when deleted, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
