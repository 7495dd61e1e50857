-- fill: the state indexes' backfill, one batch of records.
-- KEYS: the backfill's marker, then the batch's records.
-- ARGV: the cursor the batch was scanned from, the cursor after it, the record key prefix, the
--       listed states.
-- Returns how many entries were added (-1: the cursor had moved on; nothing written).
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return -1 end
local listed = {}
for i = 4, #ARGV do listed[ARGV[i]] = true end
local added = 0
for i = 2, #KEYS do
  local f = redis.call('HMGET', KEYS[i], {{field.status}}, {{field.store}}, {{field.finished_at}},
                       {{field.updated_at}}, {{field.received_at}})
  local status = f[1]
  if status and listed[status] then
    local at = (status ~= {{status.retrying}} and f[3]) or f[4] or f[5] or '0'
    local integration, id = string.match(string.sub(KEYS[i], #ARGV[3] + 1), '^([^:]*):(.*)$')
    local store = f[2] or 'default'
    local entry = integration .. ':' .. store .. ':' .. id
    local base = {{STATE_PREFIX}} .. status .. ':'
    for _, key in ipairs({base .. ':', base .. integration .. ':', base .. ':' .. store,
                          base .. integration .. ':' .. store}) do
      added = added + redis.call('ZADD', key, 'NX', at, entry)
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2] == '0' and {{BACKFILL_DONE}} or ARGV[2])
return added
