"""State that must not only grow: dead lists follow their records, handler memory expires entry by
entry, and Redis memory stays flat as messages go by (real redis-server)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.pipeline.conftest import stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.lifecycle import live_once
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, serving, wait_until
from worker.pipeline.runtime import redis_client
from worker.store.bundle import Store
from worker.store.record import Timing


def dead_ids(stack: Stack) -> dict[str, list[str]]:
    listed = requests.get(f"{stack.url}/dead", headers=stack.headers(), timeout=5).json()
    return {kind: [row["message_id"] for row in rows] for kind, rows in listed.items()}


def gauge(stack: Stack, name: str) -> int:
    text = requests.get(f"{stack.url}/metrics", timeout=5).text
    return int(
        float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))
    )


@pytest.fixture
def short_lived(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> Iterator[Stack]:
    env = {
        **stack_env(provider, hub),
        "RECORD_TTL_SECONDS": "3",
        "TASK_MAX_ATTEMPTS": "1",
        "HUB_PUSH_MAX_ATTEMPTS": "1",
        "WATCHDOG_INTERVAL_SECONDS": "1",
    }
    with serving(redis_server, env) as running:
        yield running


def test_replaying_a_message_takes_its_dead_delivery_off_the_dead_list(
    short_lived: Stack, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    message_id = body["message_id"]
    provider.script(body["payload"]["order"]["number"], {"status": 422, "errors": ["refused"]})
    with hub.lock:
        hub.down = True
    try:
        assert short_lived.post("/acme/send_order", body).status_code == 200
        wait_until(lambda: short_lived.record("acme", message_id)["delivery"]["status"] == "dead")
        assert message_id in dead_ids(short_lived)["deliveries"]
    finally:
        with hub.lock:
            hub.down = False

    replay = requests.post(
        f"{short_lived.url}/messages/acme/{message_id}/replay",
        headers=short_lived.headers(),
        timeout=5,
    )

    assert replay.status_code == 200
    short_lived.wait_status("acme", message_id, "succeeded")
    assert message_id not in dead_ids(short_lived)["deliveries"]
    hub.wait_for(message_id)


def test_expired_records_leave_the_dead_lists_and_the_gauges(
    short_lived: Stack, provider: ProviderServer, hub: HubServer
) -> None:
    dead_message, dead_delivery = order_message(), order_message()
    provider.script(dead_message["payload"]["order"]["number"], {"status": 503})
    assert short_lived.post("/acme/send_order", dead_message).status_code == 200
    short_lived.wait_status("acme", dead_message["message_id"], "dead")
    hub.wait_for(dead_message["message_id"])  # its answer is delivered before the hub goes down
    with hub.lock:
        hub.down = True
    try:
        assert short_lived.post("/acme/send_order", dead_delivery).status_code == 200
        wait_until(
            lambda: (
                short_lived.record("acme", dead_delivery["message_id"])["delivery"]["status"]
                == "dead"
            )
        )
    finally:
        with hub.lock:
            hub.down = False
    listed = dead_ids(short_lived)
    assert dead_message["message_id"] in listed["messages"]
    assert dead_delivery["message_id"] in listed["deliveries"]
    peak = {
        name: gauge(short_lived, name)
        for name in ("shiphub_dead_messages", "shiphub_dead_deliveries")
    }

    # Both records expire RECORD_TTL_SECONDS after they are settled; their listings go with them.
    wait_until(
        lambda: (
            not {dead_message["message_id"], dead_delivery["message_id"]}
            & {*dead_ids(short_lived)["messages"], *dead_ids(short_lived)["deliveries"]}
        ),
        timeout=15,
    )
    for name, value in peak.items():  # the gauges come back down, not only up
        wait_until(lambda name=name, value=value: gauge(short_lived, name) < value, timeout=10)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def run_messages(db: Store, count: int) -> list[str]:
    """Messages through the record's whole life, each keeping what a handler keeps."""
    numbers = [f"H{uuid.uuid4().hex[:11]}" for _ in range(count)]
    for number in numbers:
        live_once(db, [("sent", number, {"order_number": "R1"}), ("confirmed", number, 1)])
    return numbers


def test_handler_memory_expires_entry_by_entry_and_redis_memory_stays_flat(
    own_redis: RedisServer,
) -> None:
    ttl = 2
    db = Store.on(
        redis_client(own_redis.url), Timing(record_ttl_seconds=ttl, memory_ttl_seconds=ttl)
    )

    def aged_memory() -> int:
        time.sleep(ttl + 1.5)  # everything written is past its TTL; Redis expires it actively
        return int(own_redis.client().info("memory")["used_memory"])

    run_messages(db, 1000)
    baseline = aged_memory()
    early: list[str] = []
    started = time.monotonic()
    while time.monotonic() - started < ttl + 2:  # writes never pause for a whole TTL
        batch = run_messages(db, 200)
        early = early or batch
    recent = run_messages(db, 10)

    # An entry expires by its own age even while the store keeps writing.
    assert db.memory.recall("dotcom", "shop", "sent", early[:3]) == [None, None, None]
    assert db.memory.recall("dotcom", "shop", "sent", recent[-1:]) == [{"order_number": "R1"}]
    run_messages(db, 4000)
    after = aged_memory()
    assert after < baseline + 512 * 1024  # flat, not growing with the number of messages
    assert own_redis.client().dbsize() < 20
