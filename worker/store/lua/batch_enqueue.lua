-- batch_enqueue: queue a run's entry on a batch queue, under the message's lease, unless it is
-- queued, being sent or answered (an answer to retry is queued again).
-- KEYS: the run's batch state, the queue, the message's lease.
-- ARGV: the entry, the TTL (seconds) of the state and the queue, the holder's token.
-- Returns 'queued', 'there', or 'stale' (nothing written) when the lease is not the token's.
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return {{enqueued.stale}} end
local raw = redis.call('GET', KEYS[1])
if raw then
  local st = cjson.decode(raw)
  if st.state ~= {{batch.done}} or st.outcome.kind ~= {{BATCH_OUTCOME_RETRY}} then
    return {{enqueued.there}}
  end
end
redis.call('SET', KEYS[1], {{BATCH_QUEUED}}, 'EX', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {{enqueued.queued}}
