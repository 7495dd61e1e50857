"""Fixtures for fuzzing the receiver from its OpenAPI document: the real receiver (Flask app from
``create_app``) over the real ``Store`` on this directory's own redis-server, in process.

A stand-in worker does what a worker would, at once: it takes each message off its broker queue
(where intake's script put it) and finishes it as succeeded. So a request that waits
(``X-Hub-Wait``) gets its answer at once instead of waiting out the seconds schemathesis asked
for, and the wait path's replies are fuzzed too. (Replays still publish through ``publish``.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from flask import Flask

from endpoint.app import create_app
from tests.conftest import settle
from tests.pipeline.conftest import redis_server
from tests.support.stack import RedisServer
from worker.basics.settings import Settings
from worker.integrations import registry
from worker.integrations.registry import Handler
from worker.pipeline import runtime
from worker.store.bundle import Store
from worker.tasks.broker import MESSAGE_HEADER

__all__ = ["redis_server"]  # this directory's own redis-server

ENDPOINT_KEY = "fuzz-endpoint-key"
WEBHOOK_SECRET = "fuzz-webhook-secret"
WEBHOOK_SECRET_VARIABLE = "SHIPPING_ORDERS_WEBHOOK_SECRET"


@dataclass
class InstantWorker:
    """Takes each queued message off its broker queue and finishes it as succeeded at once; as
    ``publish`` (replays), does the same for the message published."""

    db: Store
    published: list[tuple[str, str]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __call__(self, handler: Handler, message_id: str, queued_at: float = 0.0) -> None:
        self.handle(handler.integration, message_id)

    def handle(self, integration: str, message_id: str) -> None:
        self.published.append((integration, message_id))
        answer = {
            "message_id": message_id,
            "messages": [],
            "parameters": [],
            "notifications": [{"level": "info", "subject": "Handled", "description": integration}],
        }
        settle(self.db, message_id, "succeeded", answer, integration=integration)

    def consume(self) -> None:
        """Until stopped: each broker message of an integration's queue, handled at once."""
        queues = [q for q in registry.queues() if q != registry.HUB_QUEUE]
        while not self.stopping.is_set():
            taken = self.db.redis.brpop(queues, timeout=1)
            if taken is None:
                continue
            envelope = json.loads(taken[1])
            integration, _, message_id = envelope["headers"][MESSAGE_HEADER].partition(":")
            self.handle(integration, message_id)


@dataclass
class Receiver:
    app: Flask
    db: Store
    worker: InstantWorker


def fuzz_settings(redis_url: str) -> Settings:
    return Settings(
        endpoint_key=ENDPOINT_KEY,
        shiphub_secret_key="4xK0gvQb0Z1m2Ab3yQ9cJ7dXo8hS5kLr6tW1uE2iV3c=",
        redis_url=redis_url,
        max_body_bytes=4096,  # small enough that some generated bodies get 413
    )


def sign(body: bytes) -> str:
    """The Shipping Order API's webhook signature over ``body``."""
    return hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def receiver(redis_server: RedisServer) -> Iterator[Receiver]:
    """The receiver on the real Redis, with the webhook secret set and the broker health check
    pointed at that Redis (``GET /healthz`` pings both)."""
    from worker.tasks.app import app as celery_app

    s = fuzz_settings(redis_server.url)
    db = Store.on(runtime.redis_client(redis_server.url), runtime.timing(s))
    worker = InstantWorker(db)
    consumer = threading.Thread(target=worker.consume, name="instant-worker", daemon=True)
    consumer.start()
    broker_url = celery_app.conf.broker_url
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(WEBHOOK_SECRET_VARIABLE, WEBHOOK_SECRET)
        celery_app.conf.broker_url = redis_server.url
        try:
            yield Receiver(create_app(s, db, worker), db, worker)
        finally:
            celery_app.conf.broker_url = broker_url
            worker.stopping.set()
            consumer.join(5)
