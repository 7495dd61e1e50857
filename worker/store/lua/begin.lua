-- begin (with listing): a worker starts on a message: not finished, not a stray copy of a retry
-- that is not due yet, lease free.
-- KEYS: the record, its lease, the watch zset, the due zset.
-- ARGV: now, the lease token, the lease's milliseconds, the watch deadline, the member, how
--       early a retry may start (seconds).
-- Returns {outcome} ('missing', 'finished', 'early', 'busy') or {'started', attempts, body,
-- store, retry_since, sealed parameters, replays}.
local st = redis.call('HGET', KEYS[1], {{field.status}})
if not st then return {'missing'} end
if {{FINISHED}}[st] then return {'finished'} end
local now = tonumber(ARGV[1])
-- a retry, or a message waiting for its pace (queued, with its next attempt's time)
local at = tonumber(redis.call('HGET', KEYS[1], {{field.next_attempt_at}}) or '0')
if at > now + tonumber(ARGV[6]) then return {'early'} end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return {'busy'} end
if st == {{status.retrying}} then listing('rem', {{status.retrying}}, KEYS[1], ARGV[5]) end
local n = redis.call('HINCRBY', KEYS[1], {{field.attempts}}, 1)
redis.call('HSET', KEYS[1], {{field.status}}, {{status.processing}}, {{field.started_at}}, ARGV[1],
           {{field.updated_at}}, ARGV[1])
redis.call('HSETNX', KEYS[1], {{field.retry_since}}, ARGV[1])
redis.call('HDEL', KEYS[1], {{field.next_attempt_at}})
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('ZREM', KEYS[4], ARGV[5])
local f = redis.call('HMGET', KEYS[1], {{field.body}}, {{field.store}}, {{field.retry_since}},
                     {{field.parameters}}, {{field.replays}})
return {'started', tostring(n), f[1], f[2], f[3], f[4] or '', f[5] or '0'}
