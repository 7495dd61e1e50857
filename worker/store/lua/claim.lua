-- claim: claim the due deliveries (all due ones up to a limit, or one named member if it is
-- due): each gets a fresh claim number and its score moves to the reclaim time.
-- KEYS: the outbox zset, the claim numbers' sequence.
-- ARGV: now, the reclaim time, how many at most, the record key prefix, the one member ('' for
--       all due ones).
-- Returns {member, claim, member, claim, ...}.
local members
if ARGV[5] and ARGV[5] ~= '' then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[5])
  if not score or tonumber(score) > tonumber(ARGV[1]) then return {} end
  members = {ARGV[5]}
else
  members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
end
local out = {}
for _, m in ipairs(members) do
  local key = ARGV[4] .. m
  if redis.call('HGET', key, {{field.delivery}}) == {{delivery.pending}} then
    local claim = tostring(redis.call('INCR', KEYS[2]))
    redis.call('HSET', key, {{field.push_claim}}, claim)
    redis.call('ZADD', KEYS[1], ARGV[2], m)
    out[#out + 1] = m
    out[#out + 1] = claim
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
