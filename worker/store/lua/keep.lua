-- keep: write what handlers keep, many entries per hash (see ``worker.store.memory``).
-- KEYS: none: every key derives from ARGV (a single Redis, as with the record keys elsewhere).
-- ARGV: now (ms), bucket (its name: the ms it expires at), per_shard, growth, then for each
--       entry: its kind's base ('shiphub:kept:<integration>:<store>:<kind>'), name, the
--       name's hash (a whole number), value.
-- A bucket is a meta hash '<base>:<bucket>' (n: the names it holds, w: writes) and its shards
-- '<base>:<bucket>:<level>:<shard>'; level l has growth^l shards and is written once levels
-- 0..l-1 hold per_shard entries per shard, so no hash outgrows per_shard by much and none is
-- ever split. '<base>' itself lists the buckets (field: bucket, value: 1), pruned as they expire.
local now, bucket = tonumber(ARGV[1]), ARGV[2]
local per_shard, growth = tonumber(ARGV[3]), tonumber(ARGV[4])
local at = tonumber(bucket)

local function level_of(n)
  local level, shards, room = 0, 1, per_shard
  while n >= room do
    level = level + 1
    shards = shards * growth
    room = room + per_shard * shards
  end
  return level, shards
end

local listed = {}
for i = 5, #ARGV, 4 do
  local base, name, hash, value = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local meta = base .. ':' .. bucket
  local level, shards = level_of(tonumber(redis.call('HGET', meta, 'n') or '0'))
  local shard = meta .. ':' .. level .. ':' .. (hash % shards)
  if redis.call('HSET', shard, name, value) == 1 then
    redis.call('HINCRBY', meta, 'n', 1)
  end
  redis.call('HINCRBY', meta, 'w', 1)
  redis.call('PEXPIREAT', shard, at)
  redis.call('PEXPIREAT', meta, at)
  if not listed[base] then
    listed[base] = true
    if redis.call('HSET', base, bucket, 1) == 1 then
      for _, other in ipairs(redis.call('HKEYS', base)) do
        if tonumber(other) <= now then redis.call('HDEL', base, other) end
      end
    end
    if redis.call('PTTL', base) < at - now then redis.call('PEXPIREAT', base, at) end
  end
end
return 1
