"""Concurrent posts against the one-step intake (real redis-server, real HTTP, many threads):
a message is never recorded without being queued nor queued twice, and concurrent posts of one
message meet exactly one "new" answer."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from endpoint.app import create_app
from tests.conftest import Publisher, auth, unit_settings
from tests.support.stack import RedisServer
from worker.pipeline.runtime import redis_client
from worker.store.bundle import Store
from worker.store.schema import RECORD_PREFIX


@pytest.fixture
def served() -> Iterator[tuple[str, Store, Publisher]]:
    """The receiver on its own redis-server (its queue is counted exactly; no worker runs)."""
    server = RedisServer().start()
    db = Store.on(redis_client(server.url))
    publisher = Publisher()
    publisher.fail = True  # a Celery publish would fail: the intake must not need one
    http = make_server("127.0.0.1", 0, create_app(unit_settings(), db, publisher), threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}", db, publisher
    finally:
        http.shutdown()
        server.stop()


def order(message_id: str) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "message": "order:ready",
        "payload": {"order": {"number": "H77", "quantity": 1}},
    }


def post_all(url: str, bodies: list[dict[str, Any]]) -> list[requests.Response]:
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))

    def post(body: dict[str, Any]) -> requests.Response:
        return session.post(f"{url}/acme/send_order", json=body, headers=auth(), timeout=60)

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(post, bodies))


def queued(db: Store) -> list[dict[str, Any]]:
    """The broker messages waiting in the acme queue: their headers."""
    return [json.loads(raw)["headers"] for raw in db.redis.lrange("acme", 0, -1)]


def test_concurrent_posts_of_one_message_record_it_once_and_queue_it_once(
    served: tuple[str, Store, Publisher],
) -> None:
    url, db, publisher = served
    message_id = f"race-{time.time_ns()}"

    replies = post_all(url, [order(message_id)] * 40)

    assert [r.status_code for r in replies] == [200] * 40
    new = [r for r in replies if "record" not in r.json()]  # the duplicates carry the record
    assert len(new) == 1 and new[0].json()["status"] == "queued"
    assert [h["shiphub_message"] for h in queued(db)] == [f"acme:{message_id}"]
    assert db.listings.stats()["messages_accepted"] == 1
    assert db.listings.stats()["messages_duplicate"] == 39
    assert publisher.published == []


def test_every_recorded_message_is_in_its_queue_exactly_once_with_the_same_stamp(
    served: tuple[str, Store, Publisher],
) -> None:
    url, db, _ = served
    ids = [f"load-{n}-{time.time_ns()}" for n in range(150)]
    bodies = [order(message_id) for message_id in ids for _ in range(2)]  # each one twice

    replies = post_all(url, bodies)

    assert Counter(r.status_code for r in replies) == {200: len(bodies)}
    recorded = {
        key.removeprefix(f"{RECORD_PREFIX}acme:") for key in db.redis.keys(f"{RECORD_PREFIX}acme:*")
    }
    headers = queued(db)
    in_queue = Counter(h["shiphub_message"].removeprefix("acme:") for h in headers)
    assert recorded == set(ids)
    assert in_queue == dict.fromkeys(ids, 1)
    for h in headers:  # the stamp the watchdog compares is the record's own
        record = db.messages.get("acme", h["shiphub_message"].removeprefix("acme:"))
        assert record is not None and record.queued_at == h["shiphub_queued_at"]
        assert h["task"] == "acme.order_ready"
