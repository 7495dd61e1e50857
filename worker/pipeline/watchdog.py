"""The watchdog: find accepted messages that stopped moving, and publish them again.

Every unfinished record sits in the ``watch`` zset with the time by which it must have moved on.
When that time passes, the sweep decides whether the message is *lost* (nothing will ever run it)
or only slow, and republishes only what is lost:

* finished or gone: forgotten;
* waiting in the due set for a retry: not lost (the scheduler publishes it when due);
* processing: lost only if its lease has run out (a live handler renews it);
* queued: lost unless the broker still holds it. Kombu's Redis transport keeps a queue as a
  list, oldest message at the tail, and every broker message carries the time it was published
  (``shiphub_queued_at``, also kept in the record): if the oldest message still waiting in the
  queue was published at or before this one, this one is still queued behind it. A message a
  worker has reserved (kombu's ``unacked`` hash) is not lost either, unless it was reserved so
  long ago that its worker must have died.

A new message's record and its broker message are written by one Lua script
(``worker.pipeline.intake``), so no record waits for a publish that never came; what remains to
repair is a broker message that went missing afterwards (a worker that died holding it past the
visibility timeout, a Redis that lost its last writes, a queue purged by hand) and the publishes
that still go through Celery (due retries, replays, this sweep's own), which can fail.

A message of an integration this process does not run is looked at the same way, by its
integration's queue, and republished to it by name (``registry.route_for``): never forgotten.

A long backlog is therefore never republished as "lost" just because it waited. The sweep also
takes expired records off the dead lists. Workers sweep every ``WATCHDOG_INTERVAL_SECONDS`` (one
worker at a time; ``worker.pipeline.scheduler``), and ``shiphub.watchdog`` runs one sweep on demand;
each sweep reads the broker afresh (a ``BrokerView`` holds what it read: one per sweep).

The scheduler asks the same question (``in_broker``) of a push task not taken by its claim's
reclaim time, before it sends another (``worker.store.outbox``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from worker.basics import metrics
from worker.integrations import registry
from worker.pipeline.intake import Publish
from worker.store.bundle import Store
from worker.store.record import Record
from worker.store.schema import MessageStatus, member

log = logging.getLogger(__name__)


class BrokerView(Protocol):
    """What the watchdog reads of the broker (``worker.tasks.broker.BrokerView`` is the Redis
    transport's): given by the Celery adapter, so the pipeline never imports it. A view reads
    each thing once and keeps it: take a new one for each look (``LookAtBroker``)."""

    def oldest_waiting(self, queue: str) -> float | None: ...

    def reserved_since(self, who: str) -> float | None: ...


# A fresh view of the broker (the Celery adapter's ``BrokerView`` on the process's Redis).
LookAtBroker = Callable[[], BrokerView]


@dataclass
class Sweep:
    looked_at: int = 0
    republished: list[str] = field(default_factory=list)
    pruned: int = 0


def sweep(db: Store, publish: Publish, broker: BrokerView, now: float | None = None) -> Sweep:
    """One pass over the overdue records: republish the lost ones, postpone the rest."""
    now = time.time() if now is None else now
    done = Sweep(pruned=db.listings.prune_dead(now))
    for integration_name, message_id in db.attempts.overdue(now):
        done.looked_at += 1
        record = db.messages.get(integration_name, message_id)
        route = registry.route_for(
            integration_name, record.fields.get("message") if record else None
        )
        if record is None or record.finished or route is None:
            db.attempts.forget_watch(integration_name, message_id)
            continue
        still = _still_moving(record, db, broker, route.queue, now)
        if still is not None:
            db.attempts.postpone(integration_name, message_id, still)
            continue
        service = record.fields.get("service") or metrics.UNKNOWN
        about = {"message_id": message_id, "integration": integration_name, "service": service}
        stamp = time.time()
        db.messages.mark_requeued(integration_name, message_id, stamp)
        try:
            publish(route, message_id, stamp)
        except Exception as exc:  # looked at again after the queued deadline
            log.warning(
                "watchdog: could not republish %s/%s: %r",
                integration_name,
                message_id,
                exc,
                extra=about,
            )
            continue
        db.listings.count("messages_republished", integration=integration_name, service=service)
        done.republished.append(member(integration_name, message_id))
        log.warning(
            "watchdog: %s/%s was lost (%s); republished",
            integration_name,
            message_id,
            record.status,
            extra=about,
        )
    return done


def _still_moving(
    record: Record, db: Store, broker: BrokerView, queue: str, now: float
) -> float | None:
    """None when the message is lost; otherwise when to look at it again."""
    timing = db.timing
    integration, message_id = record.integration, record.message_id
    due = db.attempts.due_at(integration, message_id)
    if due is not None:
        return due + timing.queued_deadline_seconds
    if record.status == MessageStatus.PROCESSING:
        if db.locks.lease_held(integration, message_id):
            return now + timing.lease_seconds + 1
        return None
    known_as = member(integration, message_id)
    if in_broker(broker, queue, known_as, record.queued_at, now, timing.queued_deadline_seconds):
        return now + timing.queued_deadline_seconds
    return None


def in_broker(
    broker: BrokerView, queue: str, known_as: str, queued_at: float, now: float, deadline: float
) -> bool:
    """Whether the broker still holds a task published to ``queue`` at ``queued_at`` (its
    ``shiphub_queued_at`` stamp) and known as ``known_as`` (its ``shiphub_message``): reserved by a
    worker less than ``deadline`` ago, or still waiting behind a message published no later (the
    queue is first in, first out). A message's task and a push's alike. The queue is read first:
    a worker takes a message off it before it records it reserved, so read the other way round a
    message taken between the two reads would be in neither."""
    oldest = broker.oldest_waiting(queue)
    if oldest is not None and oldest <= queued_at:
        return True
    reserved = broker.reserved_since(known_as)
    return reserved is not None and now - reserved < deadline
