-- recall: what handlers kept under names of one kind (see keep.lua), newest first; a name
-- absent from every bucket is read from its key of the earlier format, until that expires.
-- KEYS: none (as keep.lua).
-- ARGV: now (ms), the kind's base, the earlier format's key prefix, per_shard, growth, then
--       name and hash for each name.
-- Returns one value per name (nil where absent).
local now, base, earlier = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local per_shard, growth = tonumber(ARGV[4]), tonumber(ARGV[5])

local function level_of(n)
  local level, shards, room = 0, 1, per_shard
  while n >= room do
    level = level + 1
    shards = shards * growth
    room = room + per_shard * shards
  end
  return level, shards
end

local buckets = {}
for _, bucket in ipairs(redis.call('HKEYS', base)) do
  if tonumber(bucket) > now then table.insert(buckets, bucket) end
end
table.sort(buckets, function(a, b) return tonumber(a) > tonumber(b) end)
-- Each bucket's levels, highest first, with their shard counts.
local levels = {}
for i, bucket in ipairs(buckets) do
  local meta = base .. ':' .. bucket
  local n = tonumber(redis.call('HGET', meta, 'n') or '0')
  levels[i] = {}
  if n > 0 then
    local top = level_of(n - 1)
    local shards = 1
    for level = 0, top do
      table.insert(levels[i], 1, {meta .. ':' .. level .. ':', shards})
      shards = shards * growth
    end
  end
end

local found = {}
for i = 6, #ARGV, 2 do
  local name, hash = ARGV[i], tonumber(ARGV[i + 1])
  local value = false
  for b = 1, #buckets do
    for _, level in ipairs(levels[b]) do
      value = redis.call('HGET', level[1] .. (hash % level[2]), name)
      if value then break end
    end
    if value then break end
  end
  if not value then value = redis.call('GET', earlier .. name) end
  table.insert(found, value)
end
return found
