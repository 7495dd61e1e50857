"""Count what is published to broker queues, as Redis sees it: every push onto a queue's list.

kombu's Redis transport keeps a queue as a list: Celery's publish is an ``LPUSH`` onto it, as is
the intake's Lua script, and kombu's restore of a message a dead worker had reserved an ``RPUSH``.
Redis's keyspace notifications (``notify-keyspace-events Kl``) name each list command on each
watched key, whoever sent it, so the count includes every publisher, ours or not.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import redis

PUSHES = frozenset({"lpush", "rpush"})
MARKER = "shiphub-test:published-marker"  # a key of its own: no worker consumes it


class Published:
    """Pushes onto each of ``queues`` while it runs (start it before anything is published)."""

    def __init__(self, client: redis.Redis, *queues: str) -> None:
        self.client = client
        self.counts: Counter[str] = Counter()
        self._changed = threading.Condition()
        client.config_set("notify-keyspace-events", "Kl")
        db = client.connection_pool.connection_kwargs.get("db", 0)
        self._queues = {f"__keyspace@{db}__:{queue}": queue for queue in (*queues, MARKER)}
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(**dict.fromkeys(self._queues, self._seen))
        self._thread = self._pubsub.run_in_thread(sleep_time=0.05, daemon=True)

    def _seen(self, message: dict[str, Any]) -> None:
        if message["data"] in PUSHES:
            with self._changed:
                self.counts[self._queues[message["channel"]]] += 1
                self._changed.notify_all()

    def of(self, queue: str) -> int:
        """Pushes onto ``queue`` counted so far (``settled`` first, for all of them)."""
        with self._changed:
            return self.counts[queue]

    def settled(self, timeout: float = 10.0) -> None:
        """Every push made before now has been counted: Redis sends the notifications in order,
        so one for a push onto the marker key made now arrives after them all."""
        with self._changed:
            seen = self.counts[MARKER]
        self.client.rpush(MARKER, "1")
        self.client.delete(MARKER)
        with self._changed:
            if not self._changed.wait_for(lambda: self.counts[MARKER] > seen, timeout):
                raise AssertionError("keyspace notifications stopped arriving")

    def stop(self) -> None:
        self._thread.stop()
        self._pubsub.close()
