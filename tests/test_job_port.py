"""What a handler keeps beyond its provider goes through ``Job`` (fakeredis): pacing, counts of
this run, batch state. Keys are the store's, under ``shiphub:``; a write that belongs to this run
of the message is fenced by its lease (once the lease is lost, it writes nothing), while the
pacing every worker shares is not per message and is not fenced."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from worker.integrations.job import Job
from worker.store.bundle import Store
from worker.store.provider_state import LeaseLost
from worker.store.schema import PREFIX, batch_state_key, lease_key

PROVIDERS = ("dotcom", "duoplane", "ecomdash", "shipping_orders", "spectrum")
ROOT = Path(__file__).resolve().parents[1]


class Empty(BaseModel):
    pass


def job(db: Store, message_id: str = "m1", run: int = 0, token: str = "tok") -> Job[Empty]:
    """A job running under its lease (``token``), as the handling starts one."""
    db.redis.set(lease_key("acme", message_id), token)
    return Job(
        integration="acme",
        message_id=message_id,
        message="shipment:confirm",
        payload=Empty(),
        parameters={},
        store="shop",
        attempt=1,
        db=db,
        run=run,
        lease_token=token,
    )


def lose_lease(db: Store, message_id: str = "m1") -> None:
    """Another holder has the message now (this one's lease ran out and was taken again)."""
    db.redis.set(lease_key("acme", message_id), "another-holder")


def keys(db: Store) -> set[str]:
    return {k for k in db.redis.keys("*") if not k.startswith(PREFIX + "lease:")}


def test_a_count_of_this_run_grows_under_its_lease_and_a_lost_lease_writes_nothing(
    db: Store,
) -> None:
    running = job(db)
    assert running.count_up("forbidden") == 1
    assert running.count_up("forbidden") == 2
    (key,) = keys(db)
    assert key.startswith(PREFIX) and "forbidden" in key
    assert 0 < db.redis.ttl(key) <= db.timing.record_ttl_seconds

    lose_lease(db)
    with pytest.raises(LeaseLost):
        running.count_up("forbidden")
    running.clear_count("forbidden")  # refused too: the count stays as the live holder left it
    assert db.redis.get(key) == "2"


def test_a_count_is_cleared_under_the_lease_and_a_replay_counts_afresh(db: Store) -> None:
    first = job(db)
    first.count_up("forbidden")
    replay = job(db, run=1, token="tok-2")
    assert replay.count_up("forbidden") == 1  # a replay starts from scratch
    replay.clear_count("forbidden")
    assert len(keys(db)) == 1  # the first run's count is its own


def test_a_progress_is_kept_for_this_runs_next_attempt_under_its_lease(db: Store) -> None:
    running = job(db)
    assert running.progress("poll-progress") is None
    running.keep_progress("poll-progress", {"page": 3, "since": "2026-12-05T05:00:00+00:00"})
    next_attempt = job(db, token="tok-2")
    assert next_attempt.progress("poll-progress") == {
        "page": 3,
        "since": "2026-12-05T05:00:00+00:00",
    }
    (key,) = keys(db)
    assert 0 < db.redis.ttl(key) <= db.timing.record_ttl_seconds
    assert job(db, run=1, token="tok-3").progress("poll-progress") is None  # a replay's own

    lose_lease(db)
    with pytest.raises(LeaseLost):
        next_attempt.keep_progress("poll-progress", {"page": 9})
    assert json.loads(db.redis.get(key))["page"] == 3


def test_done_is_the_result_this_runs_once_already_has(db: Store) -> None:
    first = job(db)
    assert first.done("post") is None
    first.once("post", lambda _key: {"id": 7})
    assert job(db, token="tok-2").done("post") == {"id": 7}  # the next attempt of this run
    assert job(db, run=1, token="tok-3").done("post") is None  # a replay starts from scratch


def test_a_batch_entry_queued_after_the_lease_is_lost_is_not_queued(db: Store) -> None:
    running = job(db)
    batch = running.batch("q", ttl_seconds=600)
    entry = json.dumps({"message_id": running.run_key})
    batch.enqueue(running.run_key, entry)
    assert batch.look(running.run_key) == ({"state": "queued"}, False, 1)
    assert all(k.startswith(PREFIX + "acme:") for k in keys(db))

    stale = job(db, "m2")
    lose_lease(db, "m2")
    with pytest.raises(LeaseLost):
        stale.batch("q", ttl_seconds=600).enqueue("m2", json.dumps({"message_id": "m2"}))
    assert batch.look("m2") == (None, False, 1)  # neither its state nor its entry was written


def test_a_batch_entry_is_not_put_back_by_a_holder_that_lost_its_lease(db: Store) -> None:
    """Its leader died during the call: the handler puts its entry back, but only under its
    lease (the live holder of the message does it otherwise)."""
    running = job(db)
    batch = running.batch("q", ttl_seconds=600)
    entry = json.dumps({"message_id": running.run_key})
    state = batch_state_key("acme", running.run_key)
    db.redis.set(state, json.dumps({"state": "sending", "leader": "dead-leader"}))

    lose_lease(db)
    with pytest.raises(LeaseLost):
        batch.requeue_if_lost(running.run_key, entry)
    assert batch.look(running.run_key) == ({"state": "sending", "leader": "dead-leader"}, False, 0)

    db.redis.set(lease_key("acme", "m1"), "tok")  # held again by this holder
    assert batch.requeue_if_lost(running.run_key, entry) is True
    assert batch.look(running.run_key) == ({"state": "queued"}, False, 1)


def test_pacing_is_shared_by_every_message_of_the_integration_under_the_prefix(
    db: Store,
) -> None:
    first, stale = job(db, "m1"), job(db, "m2")
    lose_lease(db, "m2")
    first.pace("acct", capacity=1, per_second=0.001).take("P")
    # Not fenced: a bucket belongs to the account, not to one message; one that has lost its
    # lease still waits its turn and asks others to wait.
    stale.pace("acct", capacity=1, per_second=0.001).hold(5)
    with first.in_flight("acct:op", limit=1).held("P"):
        assert keys(db) == {
            f"{PREFIX}pace:bucket:acme:acct",
            f"{PREFIX}pace:slots:acme:acct:op",
        }


def test_what_providers_keep_is_stored_under_the_keys_and_values_it_always_was(
    db: Store,
) -> None:
    """State left in Redis by the previous release is found by this one: the keys, the hash
    fields and the stored values are pinned, byte for byte."""
    running = job(db)
    running.count_up("forbidden")
    assert db.redis.get("shiphub:acme:forbidden:m1") == "1"

    batch = running.batch("q", ttl_seconds=600)
    entry = json.dumps({"message_id": "m1"})
    batch.enqueue("m1", entry)
    assert db.redis.get("shiphub:acme:state:m1") == '{"state":"queued"}'
    assert db.redis.lrange("shiphub:acme:queue:q", 0, -1) == [entry]
    assert batch.take_lead("leader-tok", 5000)
    assert db.redis.get("shiphub:acme:leader:q") == "leader-tok"
    assert batch.take("leader-tok", 5) == [entry]
    sending = json.loads(db.redis.get("shiphub:acme:state:m1"))
    assert sending == {"state": "sending", "leader": "leader-tok"}
    batch.write({"m1": {"kind": "sent"}}, {"digest": "m1"})
    done = '{"state": "done", "outcome": {"kind": "sent"}}'
    assert db.redis.get("shiphub:acme:state:m1") == done
    assert db.redis.get("shiphub:acme:delivered:digest") == "m1"
    batch.put_back([("m1", entry)])
    assert db.redis.get("shiphub:acme:state:m1") == '{"state":"queued"}'

    pace = running.pace("acct", capacity=5, per_second=1)
    pace.take("P")
    pace.hold(5)
    assert set(db.redis.hgetall("shiphub:pace:bucket:acme:acct")) == {"level", "at", "held"}


def _attributes(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_provider_reaches_the_store_behind_the_job(provider: str) -> None:
    """``lint-imports`` keeps providers from importing redis or the store; this keeps them from
    reading the store Job holds (``job.db``, ``.redis``)."""
    for path in sorted((ROOT / "worker" / "integrations" / provider).glob("*.py")):
        reached = _attributes(path) & {"db", "records", "redis", "_records"}
        assert not reached, f"{path.relative_to(ROOT)} reads {sorted(reached)}"
