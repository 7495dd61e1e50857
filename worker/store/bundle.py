"""``Store``: the stores by concern, built on one Redis client and one ``Timing``, for a process
to create once (``worker.pipeline.runtime.db``) and hand to whoever needs one of them.

Callers name it ``db`` (a shipment's "store" is the hub's shop, everywhere else in the code)."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker.store.attempts import Attempts
from worker.store.leases import Locks
from worker.store.listings import Listings
from worker.store.memory import Memory
from worker.store.messages import Messages
from worker.store.moving import Moving
from worker.store.once import Once
from worker.store.outbox import Outbox
from worker.store.per_minute import PerMinute
from worker.store.record import Timing


@dataclass(frozen=True)
class Store:
    redis: redis.Redis
    timing: Timing
    messages: Messages  # receive, get, requeue, mark_requeued
    attempts: Attempts  # begin, retry, finish, parts ahead; the watch and due sets
    once: Once  # provider calls at most once
    memory: Memory  # what handlers keep, parts stored ahead, cursors
    listings: Listings  # states, recent, dead lists, totals, sizes, pruning
    locks: Locks  # store locks, leases held
    outbox: Outbox  # answers waiting to be pushed
    per_minute: PerMinute  # messages finished per minute (the operations page's chart)
    moving: Moving  # shipments in transit or out for delivery, by their last news

    @classmethod
    def on(cls, client: redis.Redis, timing: Timing | None = None) -> Store:
        t = timing or Timing()
        return cls(
            redis=client,
            timing=t,
            messages=Messages(client, t),
            attempts=Attempts(client, t),
            once=Once(client, t),
            memory=Memory(client, t),
            listings=Listings(client, t),
            locks=Locks(client, t),
            outbox=Outbox(client, t),
            per_minute=PerMinute(client),
            moving=Moving(client),
        )
