"""The one-off backfill of the state indexes (``state:<status>:<integration>:<store>``).

Records written before the indexes existed (a deployment upgrading) are failed, dead or retrying
without an index entry, so no listing would show them. Every worker's scheduler thread (never a
task's thread) takes one step a tick until the backfill is done in its Redis: SCAN one batch of
record keys from the cursor kept in ``backfill:states``, then one script that, for each record
of the batch in a listed state, adds its entries (NX: an entry the live path wrote stays as it
is), scored by when it entered the state as the live path scores it (``finished_at`` for failed
and dead, ``updated_at`` for retrying), and moves the cursor on (``done`` after the last batch).

The status is read by the same script that writes the entries, so they agree with the record at
that moment: a record that leaves the state later leaves its entries through the live path. The
script moves the cursor only from where its batch was scanned: two processes starting at once
may both fill a batch (adding nothing twice), and never move the cursor back. A record created
or changed meanwhile is indexed by the live path. Once done, it never runs again in that Redis.
"""

from __future__ import annotations

import redis

from worker.store.records import LISTED_STATES, RECORD_PREFIX, STATE_PREFIX, STATES_BACKFILLED
from worker.store.scripts import Scripts

DONE = "done"
BATCH = 1000  # record keys looked at per step (SCAN's COUNT)

# KEYS[1]: the marker; KEYS[2..]: the batch's records. ARGV: the cursor the batch was scanned
# from, the cursor after it, the record key prefix, the listed states. Returns how many entries
# were added (-1: the cursor had moved on; nothing written).
_FILL = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return -1 end
local listed = {}
for i = 4, #ARGV do listed[ARGV[i]] = true end
local added = 0
for i = 2, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'status', 'store', 'finished_at', 'updated_at',
                       'received_at')
  local status = f[1]
  if status and listed[status] then
    local at = (status ~= 'retrying' and f[3]) or f[4] or f[5] or '0'
    local integration, id = string.match(string.sub(KEYS[i], #ARGV[3] + 1), '^([^:]*):(.*)$')
    local store = f[2] or 'default'
    local entry = integration .. ':' .. store .. ':' .. id
    local base = '%s' .. status .. ':'
    for _, key in ipairs({base .. ':', base .. integration .. ':', base .. ':' .. store,
                          base .. integration .. ':' .. store}) do
      added = added + redis.call('ZADD', key, 'NX', at, entry)
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2] == '0' and '%d' or ARGV[2])
return added
""".replace("%s", STATE_PREFIX).replace("%d", DONE)


class StateBackfill:
    """The backfill as one process takes part in it, a step at a time."""

    def __init__(self, client: redis.Redis, batch: int = BATCH) -> None:
        self.redis = client
        self.batch = batch
        self.done = False
        self._scripts = Scripts(client, fill=_FILL)

    def step(self) -> bool:
        """Fill the indexes from one batch of records; True once the backfill is done (by this
        process or another), after which a step costs nothing."""
        if self.done:
            return True
        at = self.redis.get(STATES_BACKFILLED) or "0"
        if at == DONE:
            self.done = True
            return True
        after, keys = self.redis.scan(
            int(at), match=RECORD_PREFIX + "*", count=self.batch, _type="hash"
        )
        filled = self._scripts.run(
            "fill",
            [STATES_BACKFILLED, *keys],
            [at, str(after), RECORD_PREFIX, *LISTED_STATES],
        )
        self.done = after == 0 and filled >= 0  # else the marker says, at the next step
        return self.done
