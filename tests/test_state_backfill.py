"""The one-off backfill of the state indexes (``worker.store.backfill``), over fakeredis with Lua:
in bounded steps that resume from the cursor kept in Redis, agreeing with each record's status at
the moment its batch is filled, and safe with two processes at once. The real pieces:
``tests/pipeline/test_state_backfill.py``."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import settle
from tests.support.records import accept
from worker.store.backfill import StateBackfill
from worker.store.bundle import Store
from worker.store.schema import STATE_PREFIX, STATES_BACKFILLED


def written_the_old_way(db: Store, **statuses: str) -> None:
    """Records in these statuses (message id -> status), without any index entry."""
    for message_id, status in statuses.items():
        fields = {"message": "order:ready", "service": "send_order", "store": "shop"}
        accept(db, "acme", message_id, "fp", fields)
        if status == "retrying":
            db.attempts.begin("acme", message_id, "lease")
            db.attempts.mark_retrying("acme", message_id, "HTTP 503", time.time() + 60, "lease")
        else:
            settle(db, message_id, status, error="refused")
    db.redis.delete(*db.redis.keys(STATE_PREFIX + "*"))


def indexes(db: Store) -> dict[str, list[tuple[str, float]]]:
    return {
        key: db.redis.zrange(key, 0, -1, withscores=True)
        for key in sorted(db.redis.keys(STATE_PREFIX + "*"))
    }


def run(backfill: StateBackfill, limit: int = 100) -> int:
    """Step until done; how many steps it took."""
    for steps in range(1, limit + 1):
        if backfill.step():
            return steps
    raise AssertionError(f"not done after {limit} steps")


def test_steps_resume_from_the_cursor_in_redis_and_end_done(db: Store) -> None:
    written_the_old_way(db, **{f"f{n}": "failed" for n in range(7)}, ok="succeeded")

    first = StateBackfill(db.redis, batch=2)
    assert first.step() is False
    assert db.redis.get(STATES_BACKFILLED) not in (None, "done")
    # The process stops; another picks up where it left off.
    steps = run(StateBackfill(db.redis, batch=2))

    assert steps > 2
    assert db.redis.get(STATES_BACKFILLED) == "done"
    found, _ = db.listings.in_states(["failed", "dead", "retrying"], limit=500)
    assert sorted(m.record.message_id for m in found) == [f"f{n}" for n in range(7)]


def test_entries_are_scored_as_the_live_path_scores_them(db: Store) -> None:
    written_the_old_way(db, **{"f": "failed", "d": "dead", "r": "retrying"})
    live: dict[str, Any] = {}
    for message_id, status in (("f", "failed"), ("d", "dead"), ("r", "retrying")):
        fields = db.redis.hgetall(f"shiphub:msg:acme:{message_id}")
        at = fields["updated_at"] if status == "retrying" else fields["finished_at"]
        live[message_id] = (status, float(at))

    run(StateBackfill(db.redis))

    found, _ = db.listings.in_states(
        ["failed", "dead", "retrying"], integration="acme", store="shop"
    )
    assert {m.record.message_id: (m.status, m.since) for m in found} == live


def test_a_record_that_leaves_its_state_before_its_batch_is_filled_is_not_listed(
    db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    written_the_old_way(db, stays="failed", replayed="failed")
    scan = db.redis.scan

    def scanned_then_replayed(*args: Any, **kwargs: Any) -> Any:
        found = scan(*args, **kwargs)
        assert db.messages.requeue("acme", "replayed") is not None  # between SCAN and the fill
        return found

    monkeypatch.setattr(db.redis, "scan", scanned_then_replayed)
    run(StateBackfill(db.redis))

    found, _ = db.listings.in_states(["failed"])
    assert [m.record.message_id for m in found] == ["stays"]
    assert all("replayed" not in e for es in indexes(db).values() for e, _ in es)


def test_two_processes_at_once_add_nothing_twice_and_never_move_the_cursor_back(
    db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    written_the_old_way(db, **{f"f{n}": "failed" for n in range(6)}, d="dead")
    first, second = StateBackfill(db.redis, batch=2), StateBackfill(db.redis, batch=2)
    scan = db.redis.scan
    moved: list[str | None] = []

    def raced(*args: Any, **kwargs: Any) -> Any:
        """The second process scans from where it read the cursor, after the first moved it
        on twice."""
        found = scan(*args, **kwargs)
        monkeypatch.setattr(db.redis, "scan", scan)
        first.step()
        first.step()
        moved.append(db.redis.get(STATES_BACKFILLED))
        return found

    monkeypatch.setattr(db.redis, "scan", raced)
    assert second.step() is False
    assert db.redis.get(STATES_BACKFILLED) == moved[0]  # the first's move stands

    run(first)
    assert second.step() is True
    once = indexes(db)
    db.redis.delete(STATES_BACKFILLED)  # and a whole second run adds nothing
    run(StateBackfill(db.redis, batch=3))
    assert indexes(db) == once
    assert len(once[STATE_PREFIX + "failed::"]) == 6
    assert len(once[STATE_PREFIX + "dead::"]) == 1
