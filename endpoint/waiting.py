"""Requests that wait for their message's answer (``X-Hub-Wait``), bounded in number.

The receiver runs on gunicorn's gevent worker, so a waiting request holds a greenlet, not a
thread; still, each costs a Redis read a second, so a process lets at most
``HUB_WAIT_MAX_REQUESTS`` wait at once and answers the rest 202 at once (the answer is pushed, or
read with ``GET /messages/...``), which a hub already handles for a wait that runs out.

One pub/sub subscription per process (to every message's "done" channel) wakes the waiting
requests; each also re-reads its record every second, so a notification missed during a Redis
outage costs at most a second. The subscription uses the records client, so behind Redis Sentinel
it follows the master like every other connection: after a failover the old master's connection
fails, and the subscription is made again on the new one.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from worker.store.bundle import Store
from worker.store.record import Record
from worker.store.schema import DONE_PATTERN, FINISHED, done_channel

log = logging.getLogger(__name__)
RECHECK_SECONDS = 1.0


class TooManyWaiting(Exception):
    """The process already has its maximum of waiting requests."""


class Waiting:
    def __init__(self, db: Store, limit: int) -> None:
        self.db = db
        self.limit = limit
        self._events: dict[str, set[threading.Event]] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None

    def wait(self, integration: str, message_id: str, seconds: float) -> Record | None:
        """The record once it finished, or as it is when ``seconds`` ran out (None if gone)."""
        channel = done_channel(integration, message_id)
        event = self._enter(channel)
        try:
            deadline = time.monotonic() + seconds
            while True:
                current = self.db.messages.get(integration, message_id)
                left = deadline - time.monotonic()
                if current is None or current.status in FINISHED or left <= 0:
                    return current
                event.wait(min(RECHECK_SECONDS, left))
                event.clear()
        finally:
            self._leave(channel, event)

    def _enter(self, channel: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            if self._count >= self.limit:
                raise TooManyWaiting
            self._count += 1
            self._events.setdefault(channel, set()).add(event)
        self._ensure_listening()
        return event

    def _leave(self, channel: str, event: threading.Event) -> None:
        with self._lock:
            self._count -= 1
            waiting = self._events.get(channel, set())
            waiting.discard(event)
            if not waiting:
                self._events.pop(channel, None)

    def _ensure_listening(self) -> None:
        with self._lock:
            if self._listener is None or not self._listener.is_alive():
                self._listener = threading.Thread(
                    target=self._listen, name="wait-listener", daemon=True
                )
                self._listener.start()

    def _listen(self) -> None:
        """Wake the requests waiting on each "done" notification; reconnect after Redis errors."""
        while True:
            pubsub = self.db.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(DONE_PATTERN)
                while True:
                    message = pubsub.get_message(timeout=RECHECK_SECONDS)
                    if message is not None:
                        self._wake(message["channel"])
            except redis.RedisError as exc:
                log.warning("waiting requests: subscription lost (%r); re-reading records", exc)
                time.sleep(RECHECK_SECONDS)
            finally:
                pubsub.close()

    def _wake(self, channel: str) -> None:
        with self._lock:
            events = list(self._events.get(channel, ()))
        for event in events:
            event.set()
