-- listing (put before the scripts that call it; no KEYS or ARGV of its own): a message, named by
-- its record's key and its member <integration>:<message_id>, enters a state's indexes ('add',
-- scored at) or leaves them (any other op).
local function listing(op, status, record, who, at)
  local integration, id = string.match(who, '^([^:]*):(.*)$')
  local store = redis.call('HGET', record, {{field.store}}) or 'default'
  local entry = integration .. ':' .. store .. ':' .. id
  local base = {{STATE_PREFIX}} .. status .. ':'
  for _, key in ipairs({base .. ':', base .. integration .. ':', base .. ':' .. store,
                        base .. integration .. ':' .. store}) do
    if op == 'add' then redis.call('ZADD', key, at, entry) else redis.call('ZREM', key, entry) end
  end
end
