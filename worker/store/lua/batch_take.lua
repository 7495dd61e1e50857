-- batch_take: a batch's leader takes entries off the queue, each still queued one marked as
-- being sent under the leader's token (an entry already sent or answered is dropped).
-- KEYS: the queue.
-- ARGV: how many at most, the leader's token, the TTL (seconds) of the states, the prefix of
--       the runs' state keys (an entry's key is that prefix and its message_id).
-- Returns the entries taken, in queue order.
local out = {}
while #out < tonumber(ARGV[1]) do
  local entry = redis.call('LPOP', KEYS[1])
  if not entry then break end
  local key = ARGV[4] .. cjson.decode(entry).message_id
  local raw = redis.call('GET', key)
  local st = raw and cjson.decode(raw) or nil
  if st == nil or st.state == {{batch.queued}} then
    redis.call('SET', key, cjson.encode({state = {{batch.sending}}, leader = ARGV[2]}), 'EX', ARGV[3])
    table.insert(out, entry)
  end
end
return out
