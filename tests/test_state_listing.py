"""The state indexes behind ``GET /messages`` (``Listings.in_states``), over fakeredis: each status
change moves a message between them in the same step, and pages walk them exactly once, even
through entries of the same time. The real pieces: ``tests/pipeline/test_failed_listing.py``."""

from __future__ import annotations

import time

from tests.support.records import accept
from worker.store.bundle import Store
from worker.store.schema import LISTED_STATES, state_key, state_keys, state_member


def recorded(db: Store, message_id: str, store: str = "shop") -> None:
    fields = {"message": "order:ready", "service": "send_order", "store": store}
    assert accept(db, "acme", message_id, "fp", fields) == "created"


def listed(db: Store, *statuses: str, **filters: str) -> list[tuple[str, str]]:
    found, _ = db.listings.in_states(statuses, limit=500, **filters)
    return [(m.record.message_id, m.status) for m in found]


def indexed(db: Store) -> set[tuple[str, str]]:
    """Every (key, entry) of every state index."""
    return {
        (key, entry)
        for status in LISTED_STATES
        for key in db.redis.keys(f"shiphub:state:{status}:*")
        for entry in db.redis.zrange(key, 0, -1)
    }


def test_each_status_change_moves_the_message_between_indexes_in_the_same_step(
    db: Store,
) -> None:
    recorded(db, "m")
    assert db.attempts.begin("acme", "m", "lease-1").outcome == "started"
    assert db.attempts.mark_retrying("acme", "m", "HTTP 503", time.time() - 1, "lease-1")

    entry = state_member("acme", "shop", "m")
    assert indexed(db) == {(key, entry) for key in state_keys("retrying", "acme", "shop")}
    assert listed(db, "retrying", integration="acme", store="shop") == [("m", "retrying")]

    assert db.attempts.begin("acme", "m", "lease-2").outcome == "started"  # the retry begins
    assert indexed(db) == set()
    db.attempts.finish(
        "acme",
        "m",
        "dead",
        {"message_id": "m"},
        error="gave up",
        cursor={},
        push=False,
        lease_token="lease-2",
    )
    assert indexed(db) == {(key, entry) for key in state_keys("dead", "acme", "shop")}
    assert listed(db, "failed", "dead", store="shop") == [("m", "dead")]
    assert listed(db, "dead", store="elsewhere") == []

    assert db.messages.requeue("acme", "m") is not None  # a replay
    assert indexed(db) == set()


def test_an_expired_record_leaves_its_indexes_when_they_are_pruned(db: Store) -> None:
    recorded(db, "gone")
    db.attempts.begin("acme", "gone", "lease")
    db.attempts.finish(
        "acme",
        "gone",
        "failed",
        {"message_id": "gone"},
        error="refused",
        cursor={},
        push=False,
        lease_token="lease",
    )
    db.redis.delete("shiphub:msg:acme:gone")  # its TTL ran out
    assert listed(db, "failed") == []  # never shown without its record

    db.listings.prune_dead(time.time())  # too young to be looked at
    assert indexed(db) != set()
    db.listings.prune_dead(time.time() + db.timing.record_ttl_seconds + 1)
    assert indexed(db) == set()


def test_pages_walk_entries_of_the_same_time_exactly_once(db: Store) -> None:
    names = [f"m-{n}" for n in range(7)]
    for name in names:
        recorded(db, name)
        db.attempts.begin("acme", name, f"lease-{name}")
        db.attempts.finish(
            "acme",
            name,
            "failed",
            {"message_id": name},
            error="refused",
            cursor={},
            push=False,
            lease_token=f"lease-{name}",
        )
    for name in names[1:6]:  # five of them failed in the same instant
        for key in state_keys("failed", "acme", "shop"):
            db.redis.zadd(key, {state_member("acme", "shop", name): 1000.0}, xx=True)

    walked, after, pages = [], None, 0
    while True:
        found, after = db.listings.in_states(["failed"], store="shop", limit=2, after=after)
        walked += [m.record.message_id for m in found]
        pages += 1
        if after is None:
            break

    assert sorted(walked) == sorted(names) and len(walked) == len(names)
    assert pages == 4
    assert db.redis.zcard(state_key("failed")) == len(names)
