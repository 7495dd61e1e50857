"""Pushes to the hub under hostile conditions, through real processes: a redirecting hub, a hub
slower than the push timeout, an answer bigger than a sensible push, stores of their own."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.pipeline.conftest import HUB_STORE, HUB_TOKEN, stack_env
from tests.pipeline.test_pipeline import order_message, poll_message
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, serving, wait_until
from worker.store.schema import record_key


@contextlib.contextmanager
def stack_with(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer, **env: str
) -> Iterator[Stack]:
    with serving(redis_server, {**stack_env(provider, hub), **env}) as running:
        yield running


@pytest.fixture
def elsewhere() -> Iterator[HubServer]:
    """Where a redirect points: it must never receive the signed body."""
    server = HubServer(HUB_TOKEN, HUB_STORE)
    yield server
    server.close()


def test_a_redirect_from_the_hub_is_a_failed_push_and_is_never_followed(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer, elsewhere: HubServer
) -> None:
    body = order_message()
    with stack_with(redis_server, provider, hub, HUB_PUSH_RETRY_MAX_SECONDS="1") as stack:
        with hub.lock:
            hub.redirect_to = f"{elsewhere.url}/push"
        try:
            assert stack.post("/acme/send_order", body).status_code == 200
            wait_until(lambda: hub.attempts_by_id[body["message_id"]] >= 2, timeout=20)
            delivery = stack.record("acme", body["message_id"])["delivery"]
        finally:
            with hub.lock:
                hub.redirect_to = None
        hub.wait_for(body["message_id"], timeout=20)
    assert elsewhere.attempts == 0  # the signed body and the token went nowhere else
    assert delivery["status"] == "pending"
    assert "HTTP 302" in delivery["last_error"]


def test_a_hub_slower_than_the_push_timeout_gets_few_copies_all_with_one_delivery_id(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    settings = {"HUB_PUSH_TIMEOUT_SECONDS": "1", "HUB_PUSH_RETRY_MAX_SECONDS": "2"}
    with stack_with(redis_server, provider, hub, **settings) as stack:
        with hub.lock:
            hub.delay = 3.0  # takes the push, answers after 3 s
        try:
            assert stack.post("/acme/send_order", body).status_code == 200
            wait_until(
                lambda: (
                    stack.record("acme", body["message_id"])["delivery"]["status"] == "delivered"
                ),
                timeout=60,
            )
        finally:
            with hub.lock:
                hub.delay = 0.0
        time.sleep(2)
    copies = hub.pushes_of(body["message_id"])
    # Timeouts of 1, 2, then 4 s: the third push waits long enough. Not a copy a second.
    assert 2 <= len(copies) <= 3
    assert len({c["delivery_id"] for c in copies}) == 1


def test_every_answer_has_its_own_delivery_id_and_goes_to_its_own_store(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer, stack: Stack
) -> None:
    first, second = order_message(), order_message()
    shop = f"shop-{uuid.uuid4().hex[:6]}"
    assert stack.post("/acme/send_order", first).status_code == 200
    assert stack.post("/acme/send_order", second, store=shop).status_code == 200
    hub.wait_for(first["message_id"])
    hub.wait_for(second["message_id"])

    (one,), (other,) = hub.pushes_of(first["message_id"]), hub.pushes_of(second["message_id"])
    assert one["delivery_id"] != other["delivery_id"]
    assert (one["store"], other["store"]) == (HUB_STORE, shop)


@pytest.fixture
def stack(redis_server: RedisServer, provider: ProviderServer, hub: HubServer) -> Iterator[Stack]:
    with stack_with(redis_server, provider, hub, HUB_PUSH_MAX_BYTES="65536") as running:
        yield running


def test_an_answer_bigger_than_a_push_goes_out_in_parts_in_order(
    stack: Stack, provider: ProviderServer, hub: HubServer
) -> None:
    with provider.lock:
        provider.shipments[:] = [
            {"id": 10_000 + n, "number": f"H{n:011d}", "tracking": f"1Z{n:016d}" + "X" * 60}
            for n in range(3000)
        ]
    body = poll_message(since=0)
    store = f"shop-{uuid.uuid4().hex[:6]}"  # its cursor moves: not the shared store's
    assert stack.post("/acme/tracking", body, store=store).status_code == 200

    wait_until(
        lambda: stack.record("acme", body["message_id"])["delivery"]["status"] == "delivered",
        timeout=60,
    )

    parts = hub.received(body["message_id"])
    pushes = hub.pushes_of(body["message_id"])
    assert len(parts) > 3
    assert [p["part"] for p in parts] == list(range(1, len(parts) + 1))  # in order, once each
    assert {p["parts"] for p in parts} == {len(parts)}
    assert all(p["size"] <= 65536 for p in pushes)
    numbers = [m["payload"]["shipment"]["number"] for p in parts for m in p["messages"]]
    assert numbers == [f"H{n:011d}" for n in range(3000)]
    assert parts[-1]["parameters"] == [{"name": "acme.since", "value": 12_999}]
    assert all(p["parameters"] == [] for p in parts[:-1])
    assert len({p["delivery_id"] for p in pushes}) == len(parts)
    # Each part its own Standard Webhooks id (its delivery id), each verified by the hub stub.
    assert [p["webhook_id"] for p in pushes] == [p["delivery_id"] for p in pushes]


def test_a_push_that_raises_is_a_failed_attempt_with_its_reason_and_goes_dead_after_the_budget(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> None:
    """A record whose store no push can carry in a header (written before stores were limited
    to a safe set): every push raises UnicodeEncodeError inside the HTTP client. Each is a
    failed attempt with its reason, on the back-off, and the delivery is dead after its budget:
    not pending with no attempt and no error, forever."""
    body = order_message()
    settings = {"HUB_PUSH_MAX_ATTEMPTS": "4", "HUB_PUSH_RETRY_MAX_SECONDS": "1"}
    with stack_with(redis_server, provider, hub, **settings) as stack:
        with hub.lock:
            hub.down = True  # the first push fails as usual: the delivery is retrying
        try:
            assert stack.post("/acme/send_order", body).status_code == 200
            wait_until(
                lambda: stack.record("acme", body["message_id"])["delivery"]["attempts"] >= 1,
                timeout=20,
                every=0.01,
            )
            stack.redis.client().hset(record_key("acme", body["message_id"]), "store", "店舗-1")
        finally:
            with hub.lock:
                hub.down = False
        delivery = wait_until(
            lambda: (
                (d := stack.record("acme", body["message_id"])["delivery"])["status"] == "dead"
                and d
            ),
            timeout=40,
        )
    assert delivery["attempts"] == 4, delivery
    assert "UnicodeEncodeError" in delivery["last_error"], delivery
    assert hub.received(body["message_id"]) == []
