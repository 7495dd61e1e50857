-- claim: claim the due deliveries (all due ones up to a limit, or one named member if it is
-- due): each gets a fresh claim number, stamped with when it was claimed (its push task carries
-- the stamp), and its score moves to the reclaim time. A due delivery whose claim's push task
-- was sent and not yet taken is not claimed again: it is returned apart, with its claim and
-- stamp, for the caller to ask the broker whether that task still waits (``recheck``).
-- KEYS: the outbox zset, the claim numbers' sequence.
-- ARGV: now, the reclaim time, how many at most, the record key prefix, the one member ('' for
--       all due ones).
-- Returns two lists: the claimed {member, claim, member, claim, ...} and the sent
-- {member, claim, claimed at, ...}.
local members
if ARGV[5] and ARGV[5] ~= '' then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[5])
  if not score or tonumber(score) > tonumber(ARGV[1]) then return { {}, {} } end
  members = {ARGV[5]}
else
  members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
end
local claimed, sent = {}, {}
for _, m in ipairs(members) do
  local key = ARGV[4] .. m
  local found = redis.call('HMGET', key, {{field.delivery}}, {{field.push_claim}},
                           {{field.push_claimed_at}})
  if found[1] ~= {{delivery.pending}} then
    redis.call('ZREM', KEYS[1], m)
  elseif found[3] then
    sent[#sent + 1] = m
    sent[#sent + 1] = found[2]
    sent[#sent + 1] = found[3]
  else
    local claim = tostring(redis.call('INCR', KEYS[2]))
    redis.call('HSET', key, {{field.push_claim}}, claim, {{field.push_claimed_at}}, ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[2], m)
    claimed[#claimed + 1] = m
    claimed[#claimed + 1] = claim
  end
end
return {claimed, sent}
