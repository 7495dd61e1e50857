"""Messages as received: recording them (with their broker message, in one step), reading a
record, and putting one back in line (a republish, a replay)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis

from worker.basics import metrics
from worker.store.record import Record, Timing, list_in_state
from worker.store.schema import (
    DEAD_DELIVERIES,
    DEAD_MESSAGES,
    DELIVERY_FIELDS,
    DUE,
    NUMBER_TTL_MARGIN_SECONDS,
    OUTBOX,
    OUTCOME_FIELDS,
    RECENT,
    REPLAYABLE,
    WATCH,
    Arrived,
    DeliveryStatus,
    MessageStatus,
    RecordField,
    member,
    number_key,
    parts_key,
    record_key,
)
from worker.store.scripts import scripts

F = RecordField


@dataclass(frozen=True)
class Received:
    """What ``Messages.receive`` did (``Arrived``), with the record found when the message was
    already recorded."""

    outcome: Arrived
    record: Record | None


class QueuedTask(Protocol):
    """A message's broker message as the accept script pushes it with its record: the list it
    goes onto and its text. The broker's side builds it (``worker.tasks.enqueue.Envelope``); the
    store knows only this much of it."""

    @property
    def queue_key(self) -> str: ...

    @property
    def message(self) -> str: ...


@dataclass(frozen=True)
class Arrival:
    """A message to record, with its broker message."""

    integration: str
    message_id: str
    fingerprint: str
    fields: Mapping[str, str]
    envelope: QueuedTask
    now: float  # the stamp ``envelope`` carries (``shiphub_queued_at``)
    also: str = ""  # a fingerprint the record may have been written with before (or none)
    number: str = ""  # the shipment or order number it is searched by (``searched_number``)


def _received(arrival: Arrival, found: list[str]) -> Received:
    outcome, *flat = found
    if not flat:
        return Received(Arrived(outcome), None)
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return Received(Arrived(outcome), Record(arrival.integration, arrival.message_id, fields))


class Messages:
    def __init__(self, client: redis.Redis, timing: Timing | None = None) -> None:
        self.redis = client
        self.timing = timing or Timing()
        self._lua = scripts(client)

    def receive(
        self,
        integration: str,
        message_id: str,
        fingerprint: str,
        fields: Mapping[str, str],
        envelope: QueuedTask,
        now: float,
    ) -> Received:
        """Record a message and queue its broker message in one step (one round trip), or find
        the record already there: ``created`` (recorded and queued), ``exists`` (the same
        message, counted a duplicate) or ``conflict`` (the same id with another content), with
        the record found. ``now`` is the stamp ``envelope`` carries (``shiphub_queued_at``)."""
        arrival = Arrival(integration, message_id, fingerprint, fields, envelope, now)
        return self.receive_all([arrival])[0]

    def receive_all(
        self, arrivals: Sequence[Arrival], *, duplicates: bool = True
    ) -> list[Received]:
        """``receive`` for several messages in one round trip (one run of the accept script);
        each is recorded and queued in one step of its own, as if received alone.
        ``duplicates``: count a duplicate when a message is already recorded."""
        keys = [WATCH, metrics.MESSAGES.key, RECENT]
        args: list[object] = []
        for a in arrivals:
            service = a.fields.get(F.SERVICE) or metrics.UNKNOWN
            key = record_key(a.integration, a.message_id)
            keys += (key, a.envelope.queue_key, number_key(a.number))
            args += (
                a.fingerprint,
                repr(a.now),
                a.now + self.timing.queued_deadline_seconds,
                member(a.integration, a.message_id),
                metrics.MESSAGES.field(a.integration, service, "accepted"),
                metrics.MESSAGES.field(a.integration, service, "duplicate") if duplicates else "",
                a.envelope.message,
                a.also,
                a.fields.get(F.PARAMETERS, ""),
                2 * len(a.fields),
            )
            for pair in a.fields.items():
                args += pair
        args.append(self.timing.record_ttl_seconds + NUMBER_TTL_MARGIN_SECONDS)
        found = self._lua.accept(keys, args)
        return [_received(a, f) for a, f in zip(arrivals, found, strict=True)]

    def mark_requeued(self, integration: str, message_id: str, queued_at: float) -> bool:
        """Stamp an unfinished message that is about to be published again."""
        return bool(
            self._lua.requeued(
                record=record_key(integration, message_id),
                watch=WATCH,
                stamp=queued_at,
                watch_until=queued_at + self.timing.queued_deadline_seconds,
                member=member(integration, message_id),
            )
        )

    def get(self, integration: str, message_id: str) -> Record | None:
        fields = self.redis.hgetall(record_key(integration, message_id))
        return Record(integration, message_id, fields) if fields else None

    def requeue(self, integration: str, message_id: str) -> Record | None:
        """Reset a failed or dead record so it is handled again (a replay), stamped for the
        publish that follows. A succeeded message is not replayed: its answer stands."""
        key = record_key(integration, message_id)
        who = member(integration, message_id)
        now = time.time()

        def reset(pipe: redis.client.Pipeline) -> Record | None:
            fields = pipe.hgetall(key)
            if not fields or fields.get(F.STATUS) not in REPLAYABLE:
                return None
            pipe.multi()
            if fields.get(F.DELIVERY) == DeliveryStatus.DELIVERED:
                pipe.delete(parts_key(integration, message_id))  # the hub has them
            else:
                # Parts stored ahead were kept (written with what the handler kept): the
                # hub must still get them, with the new answer.
                pipe.persist(parts_key(integration, message_id))
            reset = {
                F.STATUS: MessageStatus.QUEUED,
                F.ATTEMPTS: "0",
                F.UPDATED_AT: repr(now),
                F.QUEUED_AT: repr(now),
            }
            if fields.get(F.LAST_ERROR):  # the run replayed is history now
                reset[F.EARLIER_ERROR] = fields[F.LAST_ERROR]
            pipe.hset(key, mapping=reset)
            pipe.hincrby(key, F.REPLAYS, 1)
            # Whatever the run replayed wrote, its delivery's included, goes: the next run
            # starts from the message as received.
            pipe.hdel(key, *OUTCOME_FIELDS, *DELIVERY_FIELDS)
            pipe.persist(key)
            for listed in (DEAD_MESSAGES, DEAD_DELIVERIES, OUTBOX, DUE):
                pipe.zrem(listed, who)
            store = fields.get(F.STORE) or "default"
            list_in_state(pipe, fields[F.STATUS], integration, store, message_id, None)
            pipe.zadd(WATCH, {who: now + self.timing.queued_deadline_seconds})
            return Record(
                integration,
                message_id,
                {**fields, F.STATUS: MessageStatus.QUEUED, F.QUEUED_AT: repr(now)},
            )

        return self.redis.transaction(reset, key, value_from_callable=True)
