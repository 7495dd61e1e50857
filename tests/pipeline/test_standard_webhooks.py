"""Pushes as Standard Webhooks, and the hub's answers as the webhook world means them, through
real processes: every push the hub stub receives is verified with the reference library
(``standardwebhooks``, ``tests.support.servers.HubServer``); these tests look at what the
headers carry across retries, parts and a key rotation, and at what 410 and Retry-After do."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.pipeline.conftest import HUB_STORE, HUB_TOKEN, stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, serving, wait_until

RETRY_CAP = 5  # HUB_PUSH_RETRY_MAX_SECONDS here: a Retry-After of 3 s fits under it


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@contextlib.contextmanager
def stack_with(
    redis_server: RedisServer | None, provider: ProviderServer, hub: HubServer, **env: str | None
) -> Iterator[Stack]:
    """A stack pushing to ``hub``; on a Redis of its own with None (so no other stack's worker,
    pushing elsewhere, takes its pushes)."""
    settings = {**stack_env(provider, hub), "HUB_PUSH_RETRY_MAX_SECONDS": str(RETRY_CAP), **env}
    with serving(redis_server, settings) as running:
        yield running


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, provider: ProviderServer, hub: HubServer) -> Iterator[Stack]:
    with stack_with(redis_server, provider, hub) as running:
        yield running


def delivered(stack: Stack, message_id: str, timeout: float = 30.0) -> dict[str, Any]:
    return wait_until(
        lambda: (d := stack.record("acme", message_id)["delivery"])["status"] == "delivered" and d,
        timeout=timeout,
    )


def gap_between_pushes(hub: HubServer, message_id: str) -> float:
    first, second = hub.seen_of(message_id)[:2]
    return second["at"] - first["at"]


def test_every_push_carries_a_webhook_id_timestamp_and_signature_the_library_verifies(
    stack: Stack, hub: HubServer
) -> None:
    body = order_message()
    assert stack.post("/acme/send_order", body).status_code == 200
    delivered(stack, body["message_id"])

    (push,) = hub.pushes_of(body["message_id"])
    assert push["webhook_id"] == push["delivery_id"]  # the delivery id of the answer part
    assert abs(int(push["webhook_timestamp"]) - time.time()) < 60
    assert push["webhook_signature"].startswith("v1,")
    assert " " not in push["webhook_signature"]  # one secret, one signature


def test_a_retried_push_keeps_its_webhook_id_with_a_fresh_timestamp_and_signature(
    stack: Stack, hub: HubServer
) -> None:
    body = order_message()
    hub.script(body["message_id"], (503, {"Retry-After": "2"}))  # the retry is seconds later
    assert stack.post("/acme/send_order", body).status_code == 200
    delivered(stack, body["message_id"])

    refused, taken = hub.seen_of(body["message_id"])
    assert refused["webhook_id"] == taken["webhook_id"]
    assert refused["webhook_timestamp"] != taken["webhook_timestamp"]
    assert refused["webhook_signature"] != taken["webhook_signature"]


def test_a_rotation_signs_every_push_with_each_secret_and_either_verifies(
    provider: ProviderServer,
) -> None:
    old, new = new_secret(), new_secret()
    knows_old = HubServer(HUB_TOKEN, HUB_STORE, push_secrets=(old,))
    knows_both = HubServer(HUB_TOKEN, HUB_STORE, push_secrets=(new, old))
    try:
        for hub in (knows_old, knows_both):
            body = order_message()
            with stack_with(None, provider, hub, HUB_PUSH_SECRET=f"{new} {old}") as stack:
                hub.script(body["message_id"], (503, {}))  # a retry, signed the same way
                assert stack.post("/acme/send_order", body).status_code == 200
                delivered(stack, body["message_id"])
            pushes = hub.seen_of(body["message_id"])
            assert len(pushes) == 2
            assert all(len(p["webhook_signature"].split(" ")) == 2 for p in pushes)
            assert hub.bad_signatures == []
    finally:
        knows_old.close()
        knows_both.close()


def test_without_a_push_secret_pushes_carry_the_id_and_timestamp_and_no_signature(
    provider: ProviderServer,
) -> None:
    hub = HubServer(HUB_TOKEN, HUB_STORE, push_secrets=())
    body = order_message()
    try:
        with stack_with(None, provider, hub, HUB_PUSH_SECRET=None) as stack:
            assert stack.post("/acme/send_order", body).status_code == 200
            delivered(stack, body["message_id"])
        (push,) = hub.pushes_of(body["message_id"])
        assert push["webhook_id"] and push["webhook_timestamp"]
        assert push["webhook_signature"] is None
        assert hub.bad_signatures == []
    finally:
        hub.close()


def test_a_gone_hub_ends_the_delivery_at_once_saying_so(stack: Stack, hub: HubServer) -> None:
    body = order_message()
    hub.script(body["message_id"], (410, {}))
    assert stack.post("/acme/send_order", body).status_code == 200

    delivery = wait_until(
        lambda: (
            (d := stack.record("acme", body["message_id"])["delivery"])["status"] == "dead" and d
        ),
        timeout=30,
    )

    assert delivery["attempts"] == 1
    assert "the hub said gone" in delivery["last_error"]
    assert "HTTP 410" in delivery["last_error"]
    dead = requests.get(f"{stack.url}/dead", headers=stack.headers(), timeout=10).json()
    assert body["message_id"] in {row["message_id"] for row in dead["deliveries"]}
    page = requests.get(
        f"{stack.url}/ops/messages/acme/{body['message_id']}",
        auth=("ops", Stack.ENDPOINT_KEY),
        timeout=10,
    )
    assert "the hub said gone" in page.text
    wait_until(lambda: "the hub said gone" in stack.services["worker"].output(), timeout=10)
    assert len(hub.seen_of(body["message_id"])) == 1  # dead: out of the outbox, never pushed again

    # Once the hub takes answers again, the dead delivery is replayed under the same webhook-id.
    replayed = requests.post(
        f"{stack.url}/deliveries/acme/{body['message_id']}/replay",
        headers=stack.headers(),
        timeout=10,
    )
    assert replayed.status_code == 200, replayed.text
    delivered(stack, body["message_id"])
    gone, taken = hub.seen_of(body["message_id"])
    assert taken["webhook_id"] == gone["webhook_id"]


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_busy_hubs_retry_after_in_seconds_is_honoured(
    stack: Stack, hub: HubServer, status: int
) -> None:
    body = order_message()
    hub.script(body["message_id"], (status, {"Retry-After": "3"}))
    assert stack.post("/acme/send_order", body).status_code == 200
    delivered(stack, body["message_id"])

    assert gap_between_pushes(hub, body["message_id"]) >= 3.0  # the back-off alone: 0.5-1 s


def test_a_retry_after_as_an_http_date_is_honoured(stack: Stack, hub: HubServer) -> None:
    body = order_message()
    # The date is whole seconds: 4 s from now is at least 3 s after the push.
    when = email.utils.formatdate(time.time() + 4, usegmt=True)
    hub.script(body["message_id"], (503, {"Retry-After": when}))
    assert stack.post("/acme/send_order", body).status_code == 200
    delivered(stack, body["message_id"])

    assert gap_between_pushes(hub, body["message_id"]) >= 3.0


def test_a_retry_after_beyond_the_cap_waits_only_the_cap(stack: Stack, hub: HubServer) -> None:
    body = order_message()
    hub.script(body["message_id"], (429, {"Retry-After": "3600"}))
    assert stack.post("/acme/send_order", body).status_code == 200
    delivered(stack, body["message_id"], timeout=RETRY_CAP + 15)

    assert gap_between_pushes(hub, body["message_id"]) < RETRY_CAP + 5


def test_a_retry_after_on_another_failure_is_not_a_reason_to_wait(
    stack: Stack, hub: HubServer
) -> None:
    """Retry-After means "busy, come back then" on 429, 502, 503 and 504 only: a 500 or a 400
    carrying one is retried on the back-off (0.5-1 s after a first failure)."""
    body = order_message()
    hub.script(body["message_id"], (500, {"Retry-After": "4"}))
    assert stack.post("/acme/send_order", body).status_code == 200
    delivered(stack, body["message_id"])

    assert gap_between_pushes(hub, body["message_id"]) < 3.0
