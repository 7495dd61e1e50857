"""Pushing one answer (fakeredis outbox, a real local HTTP hub): retries by time, the hub's
Retry-After, no redirects."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import settle
from tests.support.records import accept
from tests.support.stack import ROOT
from worker.basics.settings import Settings
from worker.pipeline.delivery import deliver, signed_headers
from worker.store.bundle import Store
from worker.store.outbox import Outbox


class Hub:
    """Answers pushes with ``status`` (and ``headers``); counts what reaches each path, and keeps
    each push's ``X-Hub-Delivery-Part`` and body in order (and its bytes and headers)."""

    def __init__(self, status: int = 503) -> None:
        self.status, self.headers = status, {}
        self.hits: dict[str, int] = {}
        self.pushes: list[tuple[str, dict[str, Any]]] = []
        self.received: list[tuple[bytes, dict[str, str]]] = []  # each push's body and headers
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.hits[self.path] = hub.hits.get(self.path, 0) + 1
                part = self.headers.get("X-Hub-Delivery-Part", "")
                hub.pushes.append((part, json.loads(body) if body else {}))
                hub.received.append((body, dict(self.headers.items())))
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


OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW_SECRET = "whsec_" + base64.b64encode(b"n" * 24).decode().rstrip("=")  # unpadded is fine


def test_a_410_makes_the_delivery_dead_at_once_saying_the_hub_said_gone(
    outbox: Outbox, hub: Hub
) -> None:
    hub.status = 410

    pushed = push_once(outbox, settings(hub, hub_push_retry_for_seconds=3600))

    assert pushed.outcome == "dead"
    assert pushed.error.startswith("the hub said gone (hub answered HTTP 410")
    assert outbox.redis.hget("shiphub:msg:acme:m", "delivery") == "dead"
    assert outbox.redis.hget("shiphub:msg:acme:m", "delivery_error") == pushed.error


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retry_after_is_honoured_after_a_busy_answer(outbox: Outbox, hub: Hub, status: int) -> None:
    hub.status, hub.headers = status, {"Retry-After": "30"}

    pushed = push_once(outbox, settings(hub, hub_push_retry_max_seconds=300))

    assert 29 <= pushed.next_at - time.time() <= 31


@pytest.mark.parametrize("status", [500, 400, 404, 302])
def test_retry_after_on_any_other_failure_is_not_waited_for(
    outbox: Outbox, hub: Hub, status: int
) -> None:
    hub.status, hub.headers = status, {"Retry-After": "30"}

    pushed = push_once(outbox, settings(hub, hub_push_retry_max_seconds=300))

    assert pushed.outcome == "retrying"
    assert pushed.next_at - time.time() <= 1.0  # the back-off after a first failure


def test_every_push_verifies_with_the_reference_library_and_a_retry_keeps_its_id(
    outbox: Outbox, hub: Hub
) -> None:
    s = settings(hub, hub_push_secret=f"{NEW_SECRET} {OLD_SECRET}")

    push_once(outbox, s)
    outbox.redis.zadd("shiphub:outbox", {"acme:m": 0})  # due again now
    push_once(outbox, s)

    (first_body, first), (second_body, second) = hub.received
    for body, headers in hub.received:
        for secret in (OLD_SECRET, NEW_SECRET):  # a rotation: either verifies
            Webhook(secret).verify(body, headers)
        assert len(headers["webhook-signature"].split(" ")) == 2
        assert headers["webhook-timestamp"] == headers["X-Hub-Timestamp"]
        assert headers["webhook-id"] == headers["X-Hub-Delivery-Id"]
    assert first["webhook-id"] == second["webhook-id"]
    assert first_body == second_body


def test_our_signature_is_the_reference_librarys() -> None:
    body, when = b'{"message_id":"m"}', datetime.fromtimestamp(1700000000, UTC)
    s = Settings(hub_access_token="tok", hub_push_secret=f"{OLD_SECRET} {NEW_SECRET}")

    headers = signed_headers(body, s, timestamp=1700000000, webhook_id="d1-2")

    assert headers["webhook-signature"] == " ".join(
        Webhook(secret).sign("d1-2", when, body) for secret in (OLD_SECRET, NEW_SECRET)
    )


def test_without_a_push_secret_a_push_has_its_id_and_timestamp_and_no_signature() -> None:
    headers = signed_headers(b"{}", Settings(hub_access_token="tok"), 1700000000, webhook_id="d-1")

    assert (headers["webhook-id"], headers["webhook-timestamp"]) == ("d-1", "1700000000")
    assert "webhook-signature" not in headers


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("c2VjcmV0LWtleS1vZi10d2VudHktZm91ci1ieXRlcw==", "does not start with 'whsec_'"),
        ("whsec_not*base64!but-a-secret-value", "valid base64"),
        ("whsec_c2VjcmV0LWtleS1vZi10d2VudHktZm91ci1ieXRlcw=x", "valid base64"),
        ("whsec_c2hvcnQta2V5", "9 bytes: use at least 24"),
        (f"{OLD_SECRET} whsec_c2hvcnQta2V5", "secret 2 of 2 is a key of 9 bytes"),
        (f"{OLD_SECRET} {OLD_SECRET[:-3]}", "secret 2 of 2"),
        (" ", "blank"),
    ],
)
def test_an_unfit_push_secret_is_refused_naming_the_setting_never_the_value(
    value: str, said: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(hub_push_secret=value)

    (error,) = raised.value.errors(include_input=False)
    assert error["loc"] == ("hub_push_secret",)
    assert said in error["msg"]
    assert "HUB_PUSH_SECRET" in error["msg"] or said == "blank"
    for secret in value.split():
        assert secret not in error["msg"] and secret.removeprefix("whsec_") not in error["msg"]


def test_the_manuals_verification_of_a_push_verifies_ours_and_refuses_a_changed_one(
    outbox: Outbox, hub: Hub
) -> None:
    """The Python block of docs/http.md, run as a hub would run it on a push of ours."""
    (code,) = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "http.md").read_text(), re.S)
    push_once(outbox, settings(hub, hub_push_secret=f"{NEW_SECRET} {OLD_SECRET}"))
    (body, headers), secret = hub.received[0], OLD_SECRET

    verified: dict[str, Any] = {"secret": secret, "body": body, "headers": headers}
    exec(code, verified)
    assert verified["answer"] == json.loads(body)
    changed = {**verified, "body": body.replace(b'"m"', b'"n"'), "answer": None}
    with pytest.raises(WebhookVerificationError):
        exec(code, changed)
