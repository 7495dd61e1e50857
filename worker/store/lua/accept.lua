-- accept: record messages arriving together, each recorded and queued in one step.
-- KEYS: watch zset, the messages counter hash, the recent zset, then per message its record,
--       its queue list and the index of the number it names (the bare prefix: none).
-- ARGV per message: fingerprint, now, deadline, member, accepted counter field, duplicate
--       counter field ('' for none), broker message, the fingerprint also matched
--       ('' for none), the sealed parameters ('' for none), the number of field names and values
--       that follow, those; after every message's: how long a number's index lives (seconds).
-- Returns per message {created} | {exists, field, value, ...} | {conflict, field, value, ...}.
--
-- For each message: create its record unless it exists, and in the same step queue its task:
-- LPUSH its broker message (built by worker.tasks.enqueue exactly as kombu's Redis transport
-- would) onto its queue's list, so a message is never recorded without being queued nor queued
-- without being recorded. The broker's Redis must be this one (both are REDIS_URL). Count it
-- accepted, watch it (by when it must have started), list it among the recent ones. An existing
-- record is counted a duplicate (if a counter field is given) and returned with the outcome, so
-- a duplicate also costs one round trip. The push comes first: a script that fails midway keeps
-- the writes made before the error (Redis does not roll back), so the one write that can fail on
-- a key we do not own (the broker's list) must precede the record; a caller told of the failure
-- sends the message again and finds it recorded. Counters and the recent list's cap are written
-- once per run.
--
-- A message already recorded is the same message when its fingerprint is the record's (or, for
-- a record written before fingerprints were versioned, the one it was written with: also). The
-- copy that came last says what parameters the message carries (a hub resend with rotated
-- credentials or a newer cursor): they replace those kept, for any run still to come (a retry, a
-- replay); none carried, none kept; a message that succeeded is never run again and keeps none.
-- Another message under the same id is a conflict, and changes nothing.
local replies, counts, created, a = {}, {}, 0, 1
for i = 1, (#KEYS - 3) / 3 do
  local record, queue, n = KEYS[1 + 3 * i], KEYS[2 + 3 * i], tonumber(ARGV[a + 9])
  local numbered = KEYS[3 + 3 * i]
  local fp = redis.call('HGET', record, {{field.fingerprint}})
  if not fp then
    redis.call('LPUSH', queue, ARGV[a + 6])
    local now = ARGV[a + 1]
    redis.call('HSET', record, {{field.fingerprint}}, ARGV[a], {{field.received_at}}, now,
               {{field.updated_at}}, now, {{field.queued_at}}, now,
               {{field.status}}, {{status.queued}}, {{field.attempts}}, '0',
               unpack(ARGV, a + 10, a + 9 + n))
    redis.call('ZADD', KEYS[1], ARGV[a + 2], ARGV[a + 3])
    redis.call('ZADD', KEYS[3], now, ARGV[a + 3])
    if numbered ~= {{NUMBER_PREFIX}} then  -- searched by its number, for a while (bounded)
      redis.call('ZADD', numbered, now, ARGV[a + 3])
      redis.call('ZREMRANGEBYRANK', numbered, 0, -{{NUMBER_KEPT}} - 1)
      redis.call('EXPIRE', numbered, ARGV[#ARGV])
      redis.call('HSET', record, {{field.numbered}}, numbered)  -- expired with the record
    end
    counts[ARGV[a + 4]] = (counts[ARGV[a + 4]] or 0) + 1
    created = created + 1
    replies[i] = {'created'}
  elseif fp ~= ARGV[a] and (ARGV[a + 7] == '' or fp ~= ARGV[a + 7]) then
    local found = redis.call('HGETALL', record)
    table.insert(found, 1, 'conflict')
    replies[i] = found
  else
    if redis.call('HGET', record, {{field.status}}) == {{status.succeeded}} then
      -- never run again: nothing to keep them for
    elseif ARGV[a + 8] ~= '' then
      redis.call('HSET', record, {{field.parameters}}, ARGV[a + 8])
    else
      redis.call('HDEL', record, {{field.parameters}})
    end
    if ARGV[a + 5] ~= '' then counts[ARGV[a + 5]] = (counts[ARGV[a + 5]] or 0) + 1 end
    local found = redis.call('HGETALL', record)
    table.insert(found, 1, 'exists')
    replies[i] = found
  end
  a = a + 10 + n
end
for field, count in pairs(counts) do redis.call('HINCRBY', KEYS[2], field, count) end
if created > 0 then
  local over = redis.call('ZCARD', KEYS[3]) - {{RECENT_KEPT}}
  if over > 0 then redis.call('ZPOPMIN', KEYS[3], over) end
end
return replies
