"""The state indexes behind ``GET /messages`` (``Records.in_states``), over fakeredis: each status
change moves a message between them in the same step, and pages walk them exactly once, even
through entries of the same time. The real pieces: ``tests/pipeline/test_failed_listing.py``."""

from __future__ import annotations

import time

from worker.store.records import LISTED_STATES, Records, state_key, state_keys, state_member


def recorded(records: Records, message_id: str, store: str = "shop") -> None:
    fields = {"message": "order:ready", "service": "send_order", "store": store}
    assert records.accept("acme", message_id, "fp", fields) == "created"


def listed(records: Records, *statuses: str, **filters: str) -> list[tuple[str, str]]:
    found, _ = records.in_states(statuses, limit=500, **filters)
    return [(m.record.message_id, m.status) for m in found]


def indexed(records: Records) -> set[tuple[str, str]]:
    """Every (key, entry) of every state index."""
    return {
        (key, entry)
        for status in LISTED_STATES
        for key in records.redis.keys(f"shiphub:state:{status}:*")
        for entry in records.redis.zrange(key, 0, -1)
    }


def test_each_status_change_moves_the_message_between_indexes_in_the_same_step(
    records: Records,
) -> None:
    recorded(records, "m")
    assert records.begin("acme", "m", "lease-1").outcome == "started"
    assert records.mark_retrying("acme", "m", "HTTP 503", time.time() - 1, "lease-1")

    entry = state_member("acme", "shop", "m")
    assert indexed(records) == {(key, entry) for key in state_keys("retrying", "acme", "shop")}
    assert listed(records, "retrying", integration="acme", store="shop") == [("m", "retrying")]

    assert records.begin("acme", "m", "lease-2").outcome == "started"  # the retry begins
    assert indexed(records) == set()
    records.finish(
        "acme",
        "m",
        "dead",
        {"message_id": "m"},
        error="gave up",
        cursor={},
        push=False,
        lease_token="lease-2",
    )
    assert indexed(records) == {(key, entry) for key in state_keys("dead", "acme", "shop")}
    assert listed(records, "failed", "dead", store="shop") == [("m", "dead")]
    assert listed(records, "dead", store="elsewhere") == []

    assert records.requeue("acme", "m") is not None  # a replay
    assert indexed(records) == set()


def test_an_expired_record_leaves_its_indexes_when_they_are_pruned(records: Records) -> None:
    recorded(records, "gone")
    records.begin("acme", "gone", "lease")
    records.finish(
        "acme",
        "gone",
        "failed",
        {"message_id": "gone"},
        error="refused",
        cursor={},
        push=False,
        lease_token="lease",
    )
    records.redis.delete("shiphub:msg:acme:gone")  # its TTL ran out
    assert listed(records, "failed") == []  # never shown without its record

    records.prune_dead(time.time())  # too young to be looked at
    assert indexed(records) != set()
    records.prune_dead(time.time() + records.timing.record_ttl_seconds + 1)
    assert indexed(records) == set()


def test_pages_walk_entries_of_the_same_time_exactly_once(records: Records) -> None:
    names = [f"m-{n}" for n in range(7)]
    for name in names:
        recorded(records, name)
        records.begin("acme", name, f"lease-{name}")
        records.finish(
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
            records.redis.zadd(key, {state_member("acme", "shop", name): 1000.0}, xx=True)

    walked, after, pages = [], None, 0
    while True:
        found, after = records.in_states(["failed"], store="shop", limit=2, after=after)
        walked += [m.record.message_id for m in found]
        pages += 1
        if after is None:
            break

    assert sorted(walked) == sorted(names) and len(walked) == len(names)
    assert pages == 4
    assert records.redis.zcard(state_key("failed")) == len(names)
