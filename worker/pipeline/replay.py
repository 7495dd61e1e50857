"""An operator's second chance: replay a failed or dead message, or a dead delivery.

One place for the HTTP routes (``POST /messages/.../replay``), the operations page and the
``shiphub`` command line, so they all do the same thing.
"""

from __future__ import annotations

from enum import StrEnum

from worker.integrations import registry
from worker.pipeline.delivery import SendPush, push_soon
from worker.pipeline.intake import Publish
from worker.store.bundle import Store
from worker.store.outbox import Outbox
from worker.store.schema import REPLAYABLE


class Replayed(StrEnum):
    """What a replay did. A message's: ``queued`` (published for a worker) or ``accepted``
    (requeued, but the broker did not take it: the watchdog publishes it shortly); a delivery's:
    ``pending`` (its answer is pushed again shortly); either's: ``refused`` (not replayable)."""

    QUEUED = "queued"
    ACCEPTED = "accepted"
    PENDING = "pending"
    REFUSED = "refused"


class Refusal(StrEnum):
    """Why a replay was refused: the message (or delivery) is not failed or dead (any more:
    replayed or changed meanwhile), or its integration takes no such message any more."""

    STATE = "state"
    UNHANDLED = "unhandled"


class NotReplayable(Exception):
    """Only a failed or dead message of a known integration, or a dead delivery, is replayed."""

    def __init__(self, description: str, reason: Refusal = Refusal.STATE) -> None:
        super().__init__(description)
        self.reason = reason


def replay_message(db: Store, publish: Publish, integration: str, message_id: str) -> Replayed:
    """Queue a failed or dead message again, with a fresh retry budget. "accepted": requeued,
    but the broker did not take it; the watchdog publishes it shortly.

    Whether it can run is checked before anything changes: a message that cannot be replayed
    (not failed or dead, or of a type this version no longer takes) keeps its record as it was.
    The replay runs as the first run did, with the parameters the message carried (kept sealed
    with its record: the newest copy's, when the hub sent it again), the configuration filling
    what they lack; its integration starts it afresh (``Job.run``)."""
    found = db.messages.get(integration, message_id)
    if found is None or found.status not in REPLAYABLE:
        raise NotReplayable("Only a failed or dead message of a known integration can be replayed")
    message = found.fields.get("message")
    handler = registry.handler_for(integration, message)
    if handler is None:
        raise NotReplayable(
            f"{integration} takes no {message!r} messages any more: this message cannot run",
            Refusal.UNHANDLED,
        )
    record = db.messages.requeue(integration, message_id)
    if record is None:  # it changed meanwhile (another replay took it)
        raise NotReplayable("Only a failed or dead message of a known integration can be replayed")
    try:
        publish(handler, message_id, record.queued_at)
    except Exception:  # requeued: the watchdog publishes it when the broker takes it
        return Replayed.ACCEPTED
    return Replayed.QUEUED


def replay_delivery(outbox: Outbox, send_push: SendPush, integration: str, message_id: str) -> None:
    """Push a dead delivery's answer to the hub again (its push task sent with ``send_push``)."""
    if not outbox.redeliver(integration, message_id):
        raise NotReplayable("Only a dead delivery can be replayed")
    push_soon(outbox, integration, message_id, send_push)
