-- batch_requeue: put a run's entry back on its queue, under the message's lease, when the
-- leader that took it no longer holds the leader's lock (it died during the call).
-- KEYS: the run's batch state, the queue, the leader's lock, the message's lease.
-- ARGV: the entry, the TTL (seconds) of the state and the queue, the holder's token.
-- Returns 1 when put back; 0 when it need not be; -1 (nothing written) when the lease is not
-- the token's.
if redis.call('GET', KEYS[4]) ~= ARGV[3] then return -1 end
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local st = cjson.decode(raw)
if st.state ~= {{batch.sending}} then return 0 end
if redis.call('GET', KEYS[3]) == st.leader then return 0 end
redis.call('SET', KEYS[1], {{BATCH_QUEUED}}, 'EX', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
