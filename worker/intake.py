"""Record, then enqueue: the step between a validated message and a worker.

Used by the HTTP receiver and by scheduled polls alike. The order is what makes it safe:

1. The record is created with ``published=0`` (a Lua script, so concurrent posts of one id meet
   exactly one ``created``).
2. The task is published to the integration's queue.
3. Only then is the record marked published and the caller told "queued".

If the publish fails the record is removed again, so the hub's retry is not taken for a duplicate.
If the process dies between 1 and 2, a later post of the same id takes the record over once it is
stale, and the watchdog republishes it anyway.
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

from worker.hub import HubMessage
from worker.records import Record, Records
from worker.registry import Handler

log = logging.getLogger(__name__)

Publish = Callable[[Handler, str], None]
PUBLISHING_WAIT_SECONDS = 2.0


class Unavailable(Exception):
    """Redis or the broker cannot be reached: the caller should answer 503 and be retried."""


@dataclass(frozen=True)
class Submission:
    outcome: Literal["accepted", "duplicate", "conflict"]
    record: Record | None  # the existing record, for a duplicate or a conflict


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
    records: Records, publish: Publish, handler: Handler, message: HubMessage, store: str
) -> Submission:
    integration, message_id = handler.integration, message.message_id
    fields = {
        "integration": integration,
        "message_id": message_id,
        "message": message.message,
        "service": handler.service,
        "store": store,
        "body": message.model_dump_json(),
    }
    digest = fingerprint(message)
    waited_until = time.monotonic() + PUBLISHING_WAIT_SECONDS
    try:
        while True:
            token = uuid.uuid4().hex
            outcome = records.accept(integration, message_id, digest, token, fields)
            if outcome in ("created", "takeover"):
                _publish_or_abandon(records, publish, handler, message_id, token)
                return Submission("accepted", None)
            if outcome == "conflict":
                return Submission("conflict", records.get(integration, message_id))
            record = records.get(integration, message_id)
            if record is None:
                # The request that was publishing it failed and removed it: try ourselves.
                if time.monotonic() > waited_until:
                    raise Unavailable("the message could not be recorded")
                continue
            if outcome == "exists" or time.monotonic() > waited_until:
                # Recorded already (another request may still be publishing it; if that one
                # died, the record is taken over when stale and the watchdog republishes it).
                records.count("messages_duplicate")
                return Submission("duplicate", record)
            time.sleep(0.05)
    except redis.RedisError as exc:
        raise Unavailable(f"Redis is unavailable: {exc.__class__.__name__}") from exc


def _publish_or_abandon(
    records: Records, publish: Publish, handler: Handler, message_id: str, token: str
) -> None:
    try:
        publish(handler, message_id)
    except Exception as exc:
        log.warning("publish of %s/%s failed: %r", handler.integration, message_id, exc)
        try:
            records.abandon(handler.integration, message_id, token)
        except redis.RedisError:
            log.warning(
                "could not abandon %s/%s; it will be taken over when stale",
                handler.integration,
                message_id,
            )
        raise Unavailable(f"the broker is unavailable: {exc.__class__.__name__}") from exc
    records.mark_published(handler.integration, message_id)
