-- prune_state: a state's index entries that may be stale (scored before ARGV[2]) and whose
-- record is gone or in another state, taken off all of that state's indexes.
-- KEYS: the state's index of every message.
-- ARGV: the state, the score, the record key prefix, how many to look at.
-- Returns how many entries left.
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])
local gone = 0
for _, m in ipairs(old) do
  local integration, store, id = string.match(m, '^([^:]*):([^:]*):(.*)$')
  if redis.call('HGET', ARGV[3] .. integration .. ':' .. id, {{field.status}}) ~= ARGV[1] then
    local base = {{STATE_PREFIX}} .. ARGV[1] .. ':'
    for _, key in ipairs({base .. ':', base .. integration .. ':', base .. ':' .. store,
                          base .. integration .. ':' .. store}) do
      redis.call('ZREM', key, m)
    end
    gone = gone + 1
  end
end
return gone
