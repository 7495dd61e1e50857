"""An operator's second chance: replay a failed or dead message, or a dead delivery.

One place for the HTTP routes (``POST /messages/.../replay``), the operations page and the
``shiphub`` command line, so they all do the same thing.
"""

from __future__ import annotations

from typing import Literal

from worker import registry
from worker.delivery import push_soon
from worker.intake import Publish
from worker.outbox import Outbox
from worker.records import Records

Replayed = Literal["queued", "accepted"]


class NotReplayable(Exception):
    """Only a failed or dead message of a known integration, or a dead delivery, is replayed."""


def replay_message(
    records: Records, publish: Publish, integration: str, message_id: str
) -> Replayed:
    """Queue a failed or dead message again, with a fresh retry budget. "accepted": requeued,
    but the broker did not take it; the watchdog publishes it shortly."""
    record = records.requeue(integration, message_id)
    handler = registry.handler_for(integration, record.fields.get("message") if record else None)
    if record is None or handler is None:
        raise NotReplayable("Only a failed or dead message of a known integration can be replayed")
    try:
        publish(handler, message_id, record.queued_at)
    except Exception:  # requeued: the watchdog publishes it when the broker takes it
        return "accepted"
    return "queued"


def replay_delivery(outbox: Outbox, integration: str, message_id: str) -> None:
    """Push a dead delivery's answer to the hub again."""
    if not outbox.redeliver(integration, message_id):
        raise NotReplayable("Only a dead delivery can be replayed")
    push_soon(outbox, integration, message_id)
