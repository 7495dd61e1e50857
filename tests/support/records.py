"""Records made by hand, for tests and benchmarks that drive a message without the receiver:
``accept`` records it without queuing anything, ``mark_published`` watches it once the caller
has published it itself. Nothing in production records a message this way: ``accept`` goes
through the store's one accept script, its broker message pushed onto a list no worker reads,
emptied at once."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from worker.store.bundle import Store
from worker.store.messages import Arrival
from worker.store.schema import PREFIX, WATCH, MessageStatus, RecordField, member, record_key

# The list ``accept``'s broker messages go to: no worker reads it.
UNQUEUED = PREFIX + "tests:unqueued"


@dataclass(frozen=True)
class Unqueued:
    """A broker message for no worker (``worker.store.messages.QueuedTask``)."""

    queue_key: str = UNQUEUED
    message: str = "{}"


def accept(
    db: Store,
    integration: str,
    message_id: str,
    fingerprint: str,
    fields: Mapping[str, str],
    now: float | None = None,
) -> str:
    """Record a message without queuing anything (``created`` | ``exists`` | ``conflict``);
    a duplicate is not counted."""
    when = time.time() if now is None else now
    arrival = Arrival(integration, message_id, fingerprint, fields, Unqueued(), when)
    outcome = db.messages.receive_all([arrival], duplicates=False)[0].outcome
    db.redis.delete(UNQUEUED)
    return outcome


def mark_published(db: Store, integration: str, message_id: str, queued_at: float) -> None:
    """A record made with ``accept`` was published by its caller: watch it from then (if it is
    still queued)."""
    key = record_key(integration, message_id)
    if db.redis.hget(key, RecordField.STATUS) == MessageStatus.QUEUED:
        db.redis.zadd(
            WATCH, {member(integration, message_id): queued_at + db.timing.queued_deadline_seconds}
        )
