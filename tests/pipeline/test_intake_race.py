"""A publish slower than a retried post, then failing: the message the retry was told about
must stay recorded and be published by the watchdog (real redis-server, real HTTP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from endpoint.app import create_app
from tests.conftest import auth, unit_settings
from tests.support.stack import RedisServer
from worker.records import Records, Timing
from worker.registry import Handler
from worker.runtime import redis_client


class SlowFailingBroker:
    """The first publish hangs for ``delay`` seconds and then fails; later ones succeed."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.started = threading.Event()
        self.published: list[str] = []
        self.calls = 0

    def __call__(self, handler: Handler, message_id: str, *stamp: Any) -> None:
        self.calls += 1
        if self.calls == 1:
            self.started.set()
            time.sleep(self.delay)
            raise ConnectionError("the broker timed out")
        self.published.append(message_id)


@pytest.fixture
def served(redis_server: RedisServer) -> Iterator[tuple[str, Records, SlowFailingBroker]]:
    records = Records(redis_client(redis_server.url), Timing(publish_stale_seconds=10))
    broker = SlowFailingBroker(delay=2.5)
    server = make_server(
        "127.0.0.1", 0, create_app(unit_settings(), records, broker), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", records, broker
    server.shutdown()


def test_a_publish_that_fails_after_a_retry_was_answered_never_loses_the_message(
    served: tuple[str, Records, SlowFailingBroker],
) -> None:
    url, records, broker = served
    body = {
        "message_id": f"race-{time.time_ns()}",
        "message": "order:ready",
        "payload": {"order": {"number": "H77", "quantity": 1}},
    }
    replies: list[requests.Response] = []
    first = threading.Thread(
        target=lambda: replies.append(
            requests.post(f"{url}/acme/send_order", json=body, headers=auth(), timeout=30)
        )
    )
    first.start()
    assert broker.started.wait(10)

    retried = requests.post(f"{url}/acme/send_order", json=body, headers=auth(), timeout=30)
    first.join()

    assert retried.status_code == 200
    assert records.get("acme", body["message_id"]) is not None  # nothing is ever deleted
    assert replies[0].status_code == 200
    assert replies[0].json()["status"] == "accepted"  # recorded; not "queued", which it is not

    from worker.broker import BrokerView
    from worker.watchdog import sweep

    sweep(records, broker, BrokerView(records.redis), now=time.time() + 11)
    assert broker.published == [body["message_id"]]
