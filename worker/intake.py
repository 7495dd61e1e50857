"""Record and enqueue in one step: the step between a validated message and a worker.

Used by the HTTP receiver and by scheduled polls alike. The message's broker message is built
first, in Python, exactly as Celery and kombu's Redis transport would have put it in Redis
(``worker.enqueue``); then one Lua script (``Records.receive``) creates the record and pushes
that broker message onto the integration's queue, or finds the record already there. So:

* a message is never recorded without being queued, nor queued without being recorded: there is
  no window between the two for a crash or a broker outage to fall into, hence no "recorded but
  not yet published" state to repair;
* a new message costs one round trip to Redis, and so does a duplicate (the script returns the
  record it found, and counts the duplicate);
* if Redis cannot be reached, nothing happened: the caller answers 503 and the hub sends the
  message again (``Unavailable``). There is no "accepted but not queued" answer any more.

The records and the broker must be the same Redis (they are: both ``REDIS_URL``). Retries,
replays and the watchdog's republishing still go through Celery (``worker.app.publish``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import redis

from worker import replication
from worker.enqueue import Envelope
from worker.hub import HubMessage
from worker.records import Record, Records
from worker.registry import Handler
from worker.sealing import Sealer

# Publish a recorded message's task through Celery, stamped with when it was queued
# (``worker.app.publish``): for replays, due retries and the watchdog, not for the intake.
Publish = Callable[[Handler, str, float], None]
# The broker message of a message's task, stamped with when it was queued
# (``worker.enqueue.Envelopes.build``).
Enqueue = Callable[[Handler, str, float], Envelope]


class Unavailable(Exception):
    """Redis cannot be reached: nothing was recorded or queued; the caller should answer 503
    and be retried."""


@dataclass(frozen=True)
class Submission:
    """``queued``: recorded and queued, in one step; ``duplicate``/``conflict``: already
    recorded (with this body, or another), ``record`` is that record."""

    outcome: Literal["queued", "duplicate", "conflict"]
    record: Record | None


def fingerprint(message: HubMessage) -> str:
    """Identity of a message's content: the same id with another body is a conflict."""
    canonical = json.dumps(
        {"message": message.message, "payload": message.payload},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit(
    records: Records,
    enqueue: Enqueue,
    handler: Handler,
    message: HubMessage,
    store: str,
    sealer: Sealer,
) -> Submission:
    integration, message_id = handler.integration, message.message_id
    body, parameters = message.without_parameters()
    fields = {
        "integration": integration,
        "message_id": message_id,
        "message": message.message,
        "service": handler.service,
        "store": store,
        "body": json.dumps(body, separators=(",", ":")),
    }
    if parameters:  # credentials: stored sealed, dropped when the message finishes
        fields["parameters"] = sealer.seal(json.dumps(parameters))
    now = time.time()
    envelope = enqueue(handler, message_id, now)
    try:
        received = records.receive(
            integration, message_id, fingerprint(message), fields, envelope, now
        )
        replication.confirm(records.redis)  # on enough replicas before anyone is told
    except redis.RedisError as exc:
        raise Unavailable(f"Redis is unavailable: {exc.__class__.__name__}") from exc
    if received.outcome == "created":
        return Submission("queued", None)
    if received.outcome == "conflict":
        return Submission("conflict", received.record)
    return Submission("duplicate", received.record)
