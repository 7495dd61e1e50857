"""Task events (what Flower shows) leave a busy worker in batches, and none is lost on the way
(real redis-server, gunicorn and Celery worker; ``worker.tasks.app.TaskEventBatches``)."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.pipeline.test_pipeline import order_message
from tests.support.stack import Stack, wait_until

MESSAGES = 120
STATES = ("task-received", "task-started", "task-succeeded")


class EventTap:
    """Every task-event publish on the broker, as kombu's Redis fanout sends it."""

    def __init__(self, client: redis.Redis) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe("*celeryev*")
        self.publishes: list[list[dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            envelope = json.loads(message["data"])
            payload = json.loads(base64.b64decode(envelope["body"]))
            self.publishes.append(payload if isinstance(payload, list) else [payload])

    def __enter__(self) -> EventTap:
        self.pubsub.get_message(timeout=1)  # the subscription is in place before anything runs
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.pubsub.close()

    def task_events(self, message_ids: set[str]) -> list[dict[str, Any]]:
        """The events of the tasks that handled ``message_ids`` (their task-received events name
        the message in the task's arguments)."""
        events = [e for batch in list(self.publishes) for e in batch]
        ours = {
            e["uuid"]
            for e in events
            if e.get("type") == "task-received"
            and any(m in e.get("args", "") for m in message_ids)
            and e.get("name") == "acme.order_ready"
        }
        return [e for e in events if e.get("uuid") in ours]


@pytest.fixture
def tap(stack: Stack) -> Iterator[EventTap]:
    with EventTap(stack.redis.client()) as running:
        yield running


def test_every_task_event_reaches_flower_in_far_fewer_publishes_than_events(
    stack: Stack, tap: EventTap
) -> None:
    ids = [order_message()["message_id"] for _ in range(MESSAGES)]
    for message_id in ids:
        body = order_message(message_id=message_id)
        assert stack.post("/acme/send_order", body).json()["status"] == "queued"
    for message_id in ids:
        stack.wait_status("acme", message_id, "succeeded", timeout=90)

    def all_seen() -> list[dict[str, Any]] | None:
        events = tap.task_events(set(ids))
        return events if len(events) >= len(STATES) * MESSAGES else None

    events = wait_until(all_seen, timeout=10)
    seen = Counter((e["uuid"], e["type"]) for e in events)
    assert len({e["uuid"] for e in events}) == MESSAGES
    assert all(seen[(e["uuid"], state)] == 1 for e in events for state in STATES), seen
    ours = {e["uuid"] for e in events}
    carrying = [b for b in tap.publishes if any(e.get("uuid") in ours for e in b)]
    # Unbatched, nearly one publish per event (225 for 360 events when this was written).
    assert len(carrying) <= len(events) / 4, (len(carrying), len(events))
