"""How handler memory is laid out (fakeredis with Lua): many names per hash in levels that grow
with the volume, buckets of time that expire whole, the newest value winning."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from worker.store.bundle import Store
from worker.store.kept import Kept
from worker.store.schema import KEPT_PER_SHARD, Keep, kept_key


def write(kept: Kept, db: Store, keep: list[Keep]) -> None:
    with db.redis.pipeline() as pipe:
        pipe.multi()
        kept.write(pipe, "acme", "shop", keep)
        pipe.execute()


def test_thousands_of_names_are_each_found_and_no_hash_outgrows_its_share(db: Store) -> None:
    kept = db.memory.kept
    names = [f"H{n:011d}" for n in range(1500)]
    for first in range(0, len(names), 100):
        write(kept, db, [("sent", n, [n, "d"]) for n in names[first : first + 100]])

    found = kept.read("acme", "shop", "sent", [*names, "H-none"])

    assert found == [[n, "d"] for n in names] + [None]
    sizes = Counter(
        db.redis.hlen(k) for k in db.redis.scan_iter(kept_key("acme", "shop", "sent") + ":*:*:*")
    )
    assert max(sizes) <= 2 * KEPT_PER_SHARD  # within Redis's default hash-max-listpack-entries
    assert sum(n * count for n, count in sizes.items()) == len(names)
    assert sum(sizes.values()) < len(names) / (KEPT_PER_SHARD / 4)  # many names to a hash


def test_a_rewrite_wins_over_what_it_replaces_in_an_older_bucket_or_a_lower_level(
    db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = db.memory.kept
    write(kept, db, [("progress", "S1", "picked_up")])
    later = time.time() + kept.width_ms / 1000 + 1  # the next bucket
    monkeypatch.setattr(time, "time", lambda: later)
    write(kept, db, [("progress", f"S{n}", "new") for n in range(2, 200)])  # a level up
    write(kept, db, [("progress", "S1", "delivered")])

    assert kept.read("acme", "shop", "progress", ["S1", "S150"]) == ["delivered", "new"]
    assert len(db.redis.hkeys(kept_key("acme", "shop", "progress"))) == 2  # two buckets


def test_a_bucket_expires_a_retention_after_it_closes(db: Store) -> None:
    kept = Kept(db.redis, retention_seconds=60)
    now_ms = 1_000_000_000_000
    bucket = kept.bucket(now_ms)

    assert bucket - now_ms > 60_000  # kept at least the retention
    assert bucket - now_ms <= 60_000 + kept.width_ms  # and at most one bucket more
    assert kept.bucket(now_ms + kept.width_ms) == bucket + kept.width_ms
