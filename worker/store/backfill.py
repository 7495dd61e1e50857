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

from worker.store.schema import (
    BACKFILL_DONE,
    LISTED_STATES,
    RECORD_PREFIX,
    STATES_BACKFILLED,
)
from worker.store.scripts import scripts

DONE = BACKFILL_DONE
BATCH = 1000  # record keys looked at per step (SCAN's COUNT)


class StateBackfill:
    """The backfill as one process takes part in it, a step at a time."""

    def __init__(self, client: redis.Redis, batch: int = BATCH) -> None:
        self.redis = client
        self.batch = batch
        self.done = False
        self._lua = scripts(client)

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
        filled = self._lua.fill(
            marker=STATES_BACKFILLED,
            records=keys,
            at=at,
            after=str(after),
            prefix=RECORD_PREFIX,
            listed=LISTED_STATES,
        )
        self.done = after == 0 and filled >= 0  # else the marker says, at the next step
        return self.done
