"""Record, then enqueue: the step between a validated message and a worker.

Used by the HTTP receiver and by scheduled polls alike. The order is what makes it safe:

1. The record is created (a Lua script, so concurrent posts of one id meet exactly one
   ``created``), stamped with the time its broker message will carry.
2. The task is published to the integration's queue.
3. The record is marked published.

A recorded message is never deleted to undo a publish: once step 1 has happened the message is
accepted, and every caller is told only what is true. If the publish fails, the caller hears
"accepted" (recorded, queued later) and the watchdog publishes it; a concurrent or retried post of
the same message hears "duplicate" and gets the record. If the process dies between 1 and 2, a
later post of the same id takes the record over once it is stale and publishes it, and the
watchdog would anyway.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import redis

from worker import replication
from worker.hub import HubMessage
from worker.records import Record, Records
from worker.registry import Handler
from worker.sealing import Sealer

log = logging.getLogger(__name__)

# Publish a recorded message's task, stamped with when it was queued (``worker.app.publish``).
Publish = Callable[[Handler, str, float], None]


class Unavailable(Exception):
    """Redis cannot be reached: the caller should answer 503 and be retried."""


@dataclass(frozen=True)
class Submission:
    """``queued``: recorded and published; ``accepted``: recorded, the publish failed (the
    watchdog publishes it); ``duplicate``/``conflict``: already recorded (with this body, or
    another), ``record`` is that record."""

    outcome: Literal["queued", "accepted", "duplicate", "conflict"]
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
    publish: Publish,
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
    try:
        outcome = records.accept(
            integration, message_id, fingerprint(message), uuid.uuid4().hex, fields, now
        )
        replication.confirm(records.redis)  # on enough replicas before anyone is told
        if outcome in ("created", "takeover"):
            queued = _publish(records, publish, handler, message_id, now)
            return Submission("queued" if queued else "accepted", None)
        if outcome == "conflict":
            return Submission("conflict", records.get(integration, message_id))
        records.count("messages_duplicate", integration=integration, service=handler.service)
        return Submission("duplicate", records.get(integration, message_id))
    except redis.RedisError as exc:
        raise Unavailable(f"Redis is unavailable: {exc.__class__.__name__}") from exc


def _publish(
    records: Records, publish: Publish, handler: Handler, message_id: str, queued_at: float
) -> bool:
    try:
        publish(handler, message_id, queued_at)
    except Exception as exc:
        log.warning(
            "publish of %s/%s failed (%r); it is recorded and the watchdog will publish it",
            handler.integration,
            message_id,
            exc,
        )
        return False
    records.mark_published(handler.integration, message_id, queued_at)
    return True
