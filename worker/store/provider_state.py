"""What a provider's handlers keep in Redis besides the message records: counts kept about one run
of a message (Spectrum's 403s) and batch queues (ecomdash's confirmations, gathered across worker
processes into one call). Handlers never reach Redis themselves: ``Job`` hands these out
(``Job.count_up``, ``Job.batch``), bound to the message and its lease; pacing is
``worker.store.pacing``.

Two kinds of write, fenced differently:

* **A run's own state** (a count of its refusals, how far its poll got, its own entry on a
  batch queue) belongs to one
  run of one message, and is fenced by the message's lease like every other write a handler
  makes after it begins (``worker.store.attempts``): the script checks the lease holds the
  holder's token in the same atomic step, and a holder that has lost it writes nothing
  (``LeaseLost``, a TransientError: the attempt ends, its retry is refused as well, and the
  live holder goes on).
* **What a batch's leader writes** (taking records off the queue, each record's outcome, the
  account's "delivered" marks) is about every message of the batch, not the leader's own, and is
  not fenced by a message's lease. Taking records is fenced by the leader's lock (the batch's
  own lease); an outcome is a fact about the provider (a call was made, this is its answer) and
  is written whoever holds the leases, like ``Job.once``'s marks: hiding a completed call would
  only repeat it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from worker.basics.errors import TransientError
from worker.store.schema import (
    BATCH_QUEUED,
    DUE,
    RECORD_PREFIX,
    BatchState,
    Enqueued,
    batch_leader_key,
    batch_queue_key,
    batch_state_key,
    batch_state_prefix,
    delivered_key,
    member,
)
from worker.store.scripts import scripts

# The keys (``count_key``, ``batch_queue_key``, ...) are declared in ``worker.store.schema``,
# the scripts in ``worker/store/lua`` (``count_up``, ``count_clear``, ``batch_*``).

# -- the fence -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fence:
    """A message's lease (``schema.lease_key``) and the token its current holder took it with."""

    lease_key: str
    token: str


class LeaseLost(TransientError):
    """The holder's lease on its message is gone (it ran out, another worker holds it): its
    write was refused, and nothing else it writes will be applied."""

    def __init__(self, what: str) -> None:
        super().__init__(
            "This attempt lost its message's lease",
            [f"its write of {what} was refused; the worker holding the message now goes on"],
        )


# -- counts of one run ---------------------------------------------------------------------------


def count_up(client: redis.Redis, fence: Fence, key: str, ttl_seconds: int) -> int:
    """One more in the count at ``key``, under the fence's lease; LeaseLost without it."""
    count = scripts(client).count_up(
        count=key, lease=fence.lease_key, token=fence.token, ttl=ttl_seconds
    )
    if count is None:
        raise LeaseLost(f"a count ({key})")
    return int(count)


def clear_count(client: redis.Redis, fence: Fence, key: str) -> bool:
    """Forget the count at ``key``, under the fence's lease; False (nothing done) without it."""
    return bool(scripts(client).count_clear(count=key, lease=fence.lease_key, token=fence.token))


# -- values kept about one run -------------------------------------------------------------------


def keep_value(client: redis.Redis, fence: Fence, key: str, value: Any, ttl_seconds: int) -> None:
    """Keep ``value`` (JSON) at ``key`` under the fence's lease, for ``ttl_seconds``; LeaseLost
    (nothing written) without it."""
    data = json.dumps(value, separators=(",", ":"))
    kept = scripts(client).run_value(
        value=key, lease=fence.lease_key, token=fence.token, data=data, ttl=ttl_seconds
    )
    if not kept:
        raise LeaseLost(f"a value ({key})")


def read_value(client: redis.Redis, key: str) -> Any:
    """The value kept at ``key`` (``keep_value``), None if none."""
    raw = client.get(key)
    return None if raw is None else json.loads(raw)


# -- batch queues ----------------------------------------------------------------------------------


@dataclass
class BatchQueue:
    """A queue of entries gathered into batches across worker processes, as seen by one
    message's handler (``Job.batch``): its own entry's writes are fenced by its lease; what it
    writes as the batch's leader is not (see the module's docstring). An entry is JSON with the
    ``message_id`` of its run (``Job.run_key``); its state is JSON: ``{"state": "queued"}``,
    ``{"state": "sending", "leader": <token>}`` or ``{"state": "done", "outcome": ...}``."""

    client: redis.Redis
    integration: str
    name: str  # the queue's name: a digest, never a credential in clear
    ttl_seconds: int  # how long states, the queue and the delivered marks are kept
    fence: Fence  # the lease of the message whose handler holds this

    @property
    def queue_key(self) -> str:
        return batch_queue_key(self.integration, self.name)

    @property
    def leader_key(self) -> str:
        return batch_leader_key(self.integration, self.name)

    def _state_key(self, run: str) -> str:
        return batch_state_key(self.integration, run)

    # -- the handler's own entry (fenced by its lease) -------------------------------------------
    def enqueue(self, run: str, entry: str) -> None:
        """Queue this run's ``entry`` unless it is queued, being sent or answered (an answer to
        retry is queued again); LeaseLost, nothing written, without the lease."""
        done = scripts(self.client).batch_enqueue(
            state=self._state_key(run),
            queue=self.queue_key,
            lease=self.fence.lease_key,
            entry=entry,
            ttl=self.ttl_seconds,
            token=self.fence.token,
        )
        if done == Enqueued.STALE:
            raise LeaseLost(f"its entry on the batch queue ({self.queue_key})")

    def requeue_if_lost(self, run: str, entry: str) -> bool:
        """Put this run's entry back on the queue if a leader took it and no longer holds its
        lock (it died during the call); LeaseLost, nothing written, without the lease."""
        done = scripts(self.client).batch_requeue(
            state=self._state_key(run),
            queue=self.queue_key,
            leader=self.leader_key,
            lease=self.fence.lease_key,
            entry=entry,
            ttl=self.ttl_seconds,
            token=self.fence.token,
        )
        if done < 0:
            raise LeaseLost(f"its entry on the batch queue ({self.queue_key})")
        return done == 1

    # -- reads -----------------------------------------------------------------------------------
    def look(self, run: str) -> tuple[dict[str, Any] | None, bool, int]:
        """In one round trip: the run's state, whether a leader holds the lock, and how many
        entries are queued."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self._state_key(run))
        pipe.exists(self.leader_key)
        pipe.llen(self.queue_key)
        raw, led, queued = pipe.execute()
        return (json.loads(raw) if raw else None), bool(led), int(queued)

    def state(self, run: str) -> dict[str, Any] | None:
        raw = self.client.get(self._state_key(run))
        return json.loads(raw) if raw else None

    def ends(self) -> tuple[str | None, str | None, int]:
        """In one round trip: the first and the last entry queued (None: empty), and how many."""
        pipe = self.client.pipeline(transaction=False)
        pipe.lindex(self.queue_key, 0)
        pipe.lindex(self.queue_key, -1)
        pipe.llen(self.queue_key)
        first, last, queued = pipe.execute()
        return first, last, int(queued)

    def delivered(self, names: Sequence[str]) -> list[str | None]:
        """Which run delivered each of ``names`` (None: none yet)."""
        if not names:
            return []
        return list(self.client.mget([delivered_key(self.integration, n) for n in names]))

    # -- the leader (fenced by its lock, not by a message's lease) -------------------------------
    def take_lead(self, token: str, ttl_ms: int) -> bool:
        return bool(self.client.set(self.leader_key, token, nx=True, px=ttl_ms))

    def keep_lead(self, token: str, ttl_ms: int) -> bool:
        """Extend the lock for ``ttl_ms`` from now, if ``token`` still holds it."""
        return bool(
            scripts(self.client).renew(
                lease=self.leader_key,
                watch=self.leader_key,
                token=token,
                lease_ms=ttl_ms,
                watch_until="",
                member="",
            )
        )

    def release_lead(self, token: str) -> None:
        scripts(self.client).release(lock=self.leader_key, token=token)

    def take(self, token: str, size: int) -> list[str]:
        """Up to ``size`` entries off the queue, each still queued one marked "sending" under
        the leader's ``token`` (an entry already sent or answered is dropped)."""
        return scripts(self.client).batch_take(
            queue=self.queue_key,
            size=size,
            token=token,
            ttl=self.ttl_seconds,
            state_prefix=batch_state_prefix(self.integration),
        )

    def write(self, outcomes: Mapping[str, Any], delivered: Mapping[str, str]) -> None:
        """Each run's outcome (JSON-able), and which run delivered each name, in one round trip:
        facts about the provider, written whoever holds the messages' leases."""
        pipe = self.client.pipeline(transaction=False)
        for run, outcome in outcomes.items():
            state = {"state": BatchState.DONE, "outcome": outcome}
            pipe.set(self._state_key(run), json.dumps(state), ex=self.ttl_seconds)
        for name, run in delivered.items():
            pipe.set(delivered_key(self.integration, name), run, ex=self.ttl_seconds)
        pipe.execute()

    def wake(self, messages: Sequence[str], at: float) -> None:
        """The waiting messages (this integration's message ids) come back at ``at`` if that is
        sooner than they said (``Attempts.wait_until``): one round trip for them all."""
        if messages:
            scripts(self.client).wake(
                due=DUE,
                at=at,
                prefix=RECORD_PREFIX,
                members=[member(self.integration, m) for m in messages],
            )

    def put_back(self, entries: Sequence[tuple[str, str]]) -> None:
        """(run, entry) pairs back at the head of the queue, in their order, queued again."""
        pipe = self.client.pipeline(transaction=False)
        for run, entry in reversed(entries):
            pipe.set(self._state_key(run), BATCH_QUEUED, ex=self.ttl_seconds)
            pipe.lpush(self.queue_key, entry)
        pipe.execute()
