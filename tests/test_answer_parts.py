"""Parts of an answer stored ahead of its end (``Job.send_ahead``): fenced like the answer,
written with what the handler kept, pushed first and in order, living as long as the record
(fakeredis with Lua, and a real local HTTP hub for the pushes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.records import accept
from tests.test_delivery import Hub
from worker.basics.settings import Settings
from worker.pipeline.delivery import deliver, part_ahead_body, parts_ahead, push_bodies
from worker.store.bundle import Store
from worker.store.outbox import Outbox
from worker.store.schema import lease_key, parts_key

LEASE = "lease-m"


def confirm(number: int) -> dict[str, Any]:
    return {"message": "shipment:confirm", "payload": {"shipment": {"number": f"H{number:05d}"}}}


@pytest.fixture
def hub() -> Iterator[Hub]:
    running = Hub(status=200)
    yield running
    running.server.shutdown()


@pytest.fixture
def outbox(db: Store) -> Outbox:
    return Outbox(db.redis, db.timing)


def begun(db: Store) -> None:
    accept(db, "acme", "m", "d", {"message": "order:poll", "body": "{}"})
    assert db.attempts.begin("acme", "m", LEASE).outcome == "started"


def add(db: Store, messages: list[Any], keep: list[Any], lease: str = LEASE) -> str:
    return db.attempts.add_part(
        "acme", "m", parts_ahead("m", messages, 4096), lease_token=lease, keep=keep
    )


def finish(db: Store, answer: dict[str, Any], status: str = "succeeded") -> str:
    return db.attempts.finish(
        "acme",
        "m",
        status,  # type: ignore[arg-type]
        answer,
        error=None,
        cursor={},
        push=True,
        lease_token=LEASE,
    )


def test_parts_are_stored_with_what_they_keep_only_by_the_lease_holder(db: Store) -> None:
    begun(db)

    assert add(db, [confirm(1)], [("confirmed", "R1", {"n": 1})], lease="other") == "stale"
    assert db.memory.parts("acme", "m") == []
    assert db.memory.recall("acme", "default", "confirmed", ["R1"]) == [None]

    assert add(db, [confirm(1), confirm(2)], [("confirmed", "R1", {"n": 1})]) == "written"
    assert db.memory.parts("acme", "m") == [confirm(1), confirm(2)]
    assert db.memory.recall("acme", "default", "confirmed", ["R1"]) == [{"n": 1}]

    assert finish(db, {"message_id": "m"}) == "written"
    assert add(db, [confirm(3)], []) == "finished"  # nothing after the answer's end
    assert db.memory.parts("acme", "m") == [confirm(1), confirm(2)]


def test_parts_are_cut_to_the_push_size_and_numbered_before_the_answer() -> None:
    messages = [confirm(n) for n in range(200)]  # ~14 KB of JSON

    stored = parts_ahead("m", messages, 4096)
    answer = {"message_id": "m", "messages": [confirm(999)], "parameters": [{"name": "c"}]}
    own = push_bodies(answer, 4096, ahead=len(stored))
    bodies = [
        part_ahead_body("m", n, len(stored) + len(own), raw) for n, raw in enumerate(stored, 1)
    ] + own

    assert len(stored) > 3
    assert all(len(body) <= 4096 for body in bodies)
    decoded = [json.loads(body) for body in bodies]
    assert [d["part"] for d in decoded] == list(range(1, len(bodies) + 1))
    assert {d["parts"] for d in decoded} == {len(bodies)}
    assert [m for d in decoded for m in d["messages"]] == [*messages, confirm(999)]
    assert [d["parameters"] for d in decoded] == [[]] * (len(bodies) - 1) + [[{"name": "c"}]]
    # Without parts ahead, a small answer is still one plain body.
    assert json.loads(push_bodies(answer, 4096)[0]) == answer


def test_the_parts_ahead_are_pushed_first_in_order_then_the_rest(
    db: Store, outbox: Outbox, hub: Hub
) -> None:
    begun(db)
    add(db, [confirm(n) for n in range(100)], [])
    add(db, [confirm(n) for n in range(100, 150)], [])
    answer = {"message_id": "m", "messages": [confirm(150)], "notifications": []}
    finish(db, answer)
    s = Settings(hub_push_url=f"{hub.url}/push", hub_access_token="t", hub_push_max_bytes=4096)

    claim = outbox.claim("acme", "m")
    assert deliver(outbox, "acme", "m", claim, s).outcome == "delivered"

    headers = [header for header, _ in hub.pushes]
    total = len(hub.pushes)
    assert headers == [f"{n}/{total}" for n in range(1, total + 1)]
    pushed = [m for _, body in hub.pushes for m in body["messages"]]
    assert pushed == [confirm(n) for n in range(151)]
    assert db.redis.ttl(parts_key("acme", "m")) > 0  # they expire with the record now


def test_a_push_cut_short_goes_on_from_the_first_part_the_hub_did_not_take(
    db: Store, outbox: Outbox, hub: Hub
) -> None:
    begun(db)
    add(db, [confirm(n) for n in range(300)], [])
    finish(db, {"message_id": "m"})
    s = Settings(hub_push_url=f"{hub.url}/push", hub_access_token="t", hub_push_max_bytes=4096)
    claim = outbox.claim("acme", "m")
    outbox.take("acme", "m", claim, 10)
    outbox.part_delivered("acme", "m", claim, 2, 10)  # parts 1 and 2 reached the hub
    db.redis.hset("shiphub:msg:acme:m", "push_holder", "")
    db.redis.zadd("shiphub:outbox", {"acme:m": 0})

    claim = outbox.claim("acme", "m")
    assert deliver(outbox, "acme", "m", claim, s).outcome == "delivered"

    assert hub.pushes[0][0].startswith("3/")
    first = hub.pushes[0][1]["messages"][0]
    assert first == json.loads(parts_ahead("m", [confirm(n) for n in range(300)], 4096)[2])[0]


def test_a_replay_keeps_parts_the_hub_never_got_and_drops_delivered_ones(
    db: Store, outbox: Outbox
) -> None:
    begun(db)
    add(db, [confirm(1)], [])
    finish(db, {"message_id": "m"}, status="failed")
    claim = outbox.claim("acme", "m")
    outbox.take("acme", "m", claim, 10)
    outbox.failed("acme", "m", claim, "hub down", None)  # dead: the parts expire with it
    assert db.redis.ttl(parts_key("acme", "m")) > 0

    assert db.messages.requeue("acme", "m") is not None

    assert db.redis.ttl(parts_key("acme", "m")) == -1  # kept: they go with the new answer
    assert db.memory.parts("acme", "m") == [confirm(1)]
    db.redis.delete(lease_key("acme", "m"))
    assert db.attempts.begin("acme", "m", LEASE).outcome == "started"
    finish(db, {"message_id": "m"}, status="failed")
    claim = outbox.claim("acme", "m")
    outbox.take("acme", "m", claim, 10)
    outbox.delivered("acme", "m", claim)

    assert db.messages.requeue("acme", "m") is not None
    assert db.memory.parts("acme", "m") == []  # the hub has them
