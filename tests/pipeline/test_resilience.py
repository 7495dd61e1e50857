"""Failures of the real parts: a worker killed mid-call, the hub away, Redis stopped, two beats."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests
from celery import Celery

from tests.pipeline.conftest import stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.records import accept
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, serving, wait_until
from worker.pipeline.runtime import redis_client
from worker.store.bundle import Store
from worker.store.schema import WATCH


@pytest.fixture
def kill_stack(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> Iterator[Stack]:
    with serving(redis_server, stack_env(provider, hub), worker="first") as running:
        yield running


def test_worker_killed_during_the_provider_call_is_redelivered_with_one_effect_and_one_push(
    kill_stack: Stack, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    number = body["payload"]["order"]["number"]
    provider.held.clear()
    provider.release.clear()
    provider.script(number, {"hold": True})
    assert kill_stack.post("/acme/send_order", body).status_code == 200
    assert provider.held.wait(20), "the provider call never started"

    kill_stack.services["first"].kill()  # kill -9 while the handler waits on the provider
    provider.release.set()
    kill_stack.start_worker("second")

    record = kill_stack.wait_status("acme", body["message_id"], "succeeded", timeout=60)
    assert record["attempts"] == 2
    assert provider.requests[number] == 2  # the in-flight call was made again...
    assert provider.effects_for(number) == 1  # ...and the provider's key made it harmless
    hub.wait_for(body["message_id"])
    time.sleep(2)
    assert len(hub.received(body["message_id"])) == 1


@pytest.fixture
def outage_stack(provider: ProviderServer, hub: HubServer) -> Iterator[Stack]:
    with serving(None, stack_env(provider, hub)) as running:  # a Redis of its own to stop
        yield running


def test_redis_stopped_gives_a_quick_503_and_service_recovers(
    outage_stack: Stack, hub: HubServer
) -> None:
    stack, own_redis = outage_stack, outage_stack.redis
    before = order_message()
    assert stack.post("/acme/send_order", before, wait=20).status_code == 200

    own_redis.stop()
    started = time.monotonic()
    refused = stack.post("/acme/send_order", order_message())
    elapsed = time.monotonic() - started

    assert refused.status_code == 503
    assert elapsed < 3.0
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["notifications"][0]["level"] == "error"
    assert requests.get(f"{stack.url}/healthz", timeout=10).status_code == 503

    own_redis.start()  # same port and AOF directory: what was recorded is still there
    wait_until(lambda: requests.get(f"{stack.url}/healthz", timeout=5).ok, timeout=30)
    after = order_message()
    assert stack.post("/acme/send_order", after).status_code == 200
    stack.wait_status("acme", after["message_id"], "succeeded", timeout=60)
    hub.wait_for(after["message_id"], timeout=60)
    assert stack.record("acme", before["message_id"])["status"] == "succeeded"


@pytest.fixture
def beat_stack(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> Iterator[Stack]:
    with serving(redis_server, {**stack_env(provider, hub), "POLLS": "acme.tracking=2"}) as running:
        yield running


def test_scheduled_polls_run_without_a_hub_message_from_exactly_one_beat(
    beat_stack: Stack, provider: ProviderServer, hub: HubServer
) -> None:
    with provider.lock:
        provider.shipments[:] = [{"id": 500, "number": "H500", "tracking": "1Z500"}]
        polls_before = len(provider.polled_since)
    first, second = beat_stack.start_beat("beat-1"), beat_stack.start_beat("beat-2")

    wait_until(lambda: len(provider.polled_since) >= polls_before + 3, timeout=30)
    started_polls, started = len(provider.polled_since), time.monotonic()
    time.sleep(6)
    polls = len(provider.polled_since) - started_polls
    elapsed = time.monotonic() - started

    assert polls <= elapsed / 2 + 1  # one poll per interval, not one per beat
    senders = [b for b in (first, second) if "Sending due task poll acme.tracking" in b.output()]
    assert len(senders) == 1
    assert 500 in provider.polled_since[polls_before + 1 :]  # later polls continue from the cursor
    slot = int(time.time() // 2) - 1
    record = beat_stack.record("acme", f"scheduled-acme-tracking-{slot}")
    assert record["status"] == "succeeded"


def test_a_recorded_message_whose_broker_message_was_lost_is_republished_by_the_watchdog(
    stack: Stack, provider: ProviderServer, hub: HubServer
) -> None:
    """The intake records and queues in one step; the broker message can still go missing later
    (a Redis that lost its last writes, a queue purged by hand): a record with nothing queued."""
    body = order_message()
    db = Store.on(redis_client(stack.redis.url))
    fields = {  # a record whose broker message is gone
        "integration": "acme",
        "message_id": body["message_id"],
        "message": body["message"],
        "service": "send_order",
        "store": "test-store",
        "body": json.dumps(body),
    }
    assert accept(db, "acme", body["message_id"], "digest", fields) == "created"
    db.redis.zadd(WATCH, {f"acme:{body['message_id']}": 0})  # overdue now

    Celery(broker=stack.redis.url).send_task("shiphub.watchdog", queue="hub")

    stack.wait_status("acme", body["message_id"], "succeeded", timeout=30)
    hub.wait_for(body["message_id"])
    assert provider.effects_for(body["payload"]["order"]["number"]) == 1
