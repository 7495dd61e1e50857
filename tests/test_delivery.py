"""Pushing one answer (fakeredis outbox, a real local HTTP hub): retries by time, the hub's
Retry-After, no redirects."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import settle
from tests.support.records import accept
from worker.basics.settings import Settings
from worker.pipeline.delivery import deliver
from worker.store.bundle import Store
from worker.store.outbox import Outbox


class Hub:
    """Answers pushes with ``status`` (and ``headers``); counts what reaches each path, and keeps
    each push's ``X-Hub-Delivery-Part`` and body in order."""

    def __init__(self, status: int = 503) -> None:
        self.status, self.headers = status, {}
        self.hits: dict[str, int] = {}
        self.pushes: list[tuple[str, dict[str, Any]]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.hits[self.path] = hub.hits.get(self.path, 0) + 1
                part = self.headers.get("X-Hub-Delivery-Part", "")
                hub.pushes.append((part, json.loads(body) if body else {}))
                status = 200 if self.path == "/elsewhere" else hub.status
                self.send_response(status)
                for name, value in hub.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def hub() -> Iterator[Hub]:
    running = Hub()
    yield running
    running.server.shutdown()


@pytest.fixture
def outbox(db: Store) -> Outbox:
    accept(db, "acme", "m", "d", {"message": "order:ready", "body": "{}"})
    settle(db, "m", "succeeded", push=True)
    return Outbox(db.redis, db.timing)


def settings(hub: Hub, **kw: object) -> Settings:
    return Settings(hub_push_url=f"{hub.url}/push", hub_access_token="token", **kw)


def push_once(outbox: Outbox, s: Settings, now: float | None = None):  # type: ignore[no-untyped-def]
    claim = outbox.claim("acme", "m", now=now)
    assert claim is not None
    return deliver(outbox, "acme", "m", claim, s)


def test_a_failed_push_is_retried_with_jitter_until_the_time_budget_is_spent(
    outbox: Outbox, hub: Hub
) -> None:
    s = settings(hub, hub_push_retry_for_seconds=3600, hub_push_retry_max_seconds=60)

    first = push_once(outbox, s)

    assert first.outcome == "retrying"
    assert 0.5 <= first.next_at - time.time() <= 1.0
    assert "HTTP 503" in first.error
    # An hour after the first push, the next failure is the last.
    outbox.redis.hset("shiphub:msg:acme:m", "delivery_since", repr(time.time() - 3600))
    last = push_once(outbox, s, now=first.next_at + 1)
    assert last.outcome == "dead"
    assert outbox.redis.hget("shiphub:msg:acme:m", "delivery") == "dead"
    assert hub.hits["/push"] == 2


def test_the_hubs_retry_after_is_honoured_up_to_the_cap(outbox: Outbox, hub: Hub) -> None:
    hub.status, hub.headers = 429, {"Retry-After": "120"}

    pushed = push_once(outbox, settings(hub, hub_push_retry_max_seconds=300))

    assert 119 <= pushed.next_at - time.time() <= 121


def test_a_redirect_is_a_failed_push_never_followed(outbox: Outbox, hub: Hub) -> None:
    hub.status, hub.headers = 302, {"Location": f"{hub.url}/elsewhere"}

    pushed = push_once(outbox, settings(hub))

    assert pushed.outcome == "retrying"
    assert "HTTP 302" in pushed.error
    assert "/elsewhere" not in hub.hits  # the signed body and token went nowhere else


def test_attempts_limit_pushes_only_when_set(outbox: Outbox, hub: Hub) -> None:
    pushed = push_once(outbox, settings(hub, hub_push_max_attempts=1))

    assert pushed.outcome == "dead"
