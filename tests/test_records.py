"""Record state changes (fakeredis with Lua): the atomic steps the pipeline relies on."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.support import records as by_hand
from tests.support.records import mark_published
from worker.store.bundle import Store
from worker.store.messages import Received
from worker.store.outbox import Outbox
from worker.store.schema import (
    DEAD_DELIVERIES,
    DEAD_MESSAGES,
    DUE,
    KEPT_BUCKETS,
    OUTBOX,
    WATCH,
    cursor_key,
    kept_key,
    lease_key,
    memory_key,
)
from worker.tasks.enqueue import Envelope

FIELDS = {"integration": "acme", "message_id": "m", "message": "order:ready", "body": "{}"}
ENVELOPE = Envelope("acme", '{"headers": {"shiphub_message": "acme:m"}}')


def accept(db: Store, digest: str = "d1") -> str:
    return by_hand.accept(db, "acme", "m", digest, FIELDS)


def finish(db: Store, status: str = "succeeded", lease: str = "lease", **kw: object) -> str:
    return db.attempts.finish(
        "acme",
        "m",
        status,  # type: ignore[arg-type]
        {"message_id": "m"},
        error=None,
        cursor=kw.get("cursor", {}),  # type: ignore[arg-type]
        push=bool(kw.get("push", True)),
        lease_token=lease,
        keep=kw.get("keep"),  # type: ignore[arg-type]
    )


def started(db: Store, lease: str = "lease") -> None:
    accept(db)
    mark_published(db, "acme", "m", time.time())
    assert db.attempts.begin("acme", "m", lease).outcome == "started"


def receive(db: Store, digest: str = "d1", now: float | None = None) -> Received:
    return db.messages.receive("acme", "m", digest, FIELDS, ENVELOPE, now or time.time())


def test_receive_records_and_queues_in_one_step_and_a_duplicate_gets_the_record(
    db: Store,
) -> None:
    now = time.time()

    assert receive(db, now=now) == Received("created", None)

    assert db.redis.lrange("acme", 0, -1) == [ENVELOPE.message]
    record = db.messages.get("acme", "m")
    assert (record.status, record.queued_at) == ("queued", pytest.approx(now))
    assert "published" not in record.fields and "publish_token" not in record.fields
    deadline = now + db.timing.queued_deadline_seconds
    assert db.redis.zscore(WATCH, "acme:m") == pytest.approx(deadline)

    again = receive(db)
    assert again.outcome == "exists" and again.record == record
    assert db.redis.llen("acme") == 1  # a duplicate queues nothing
    assert (
        db.listings.stats()["messages_accepted"],
        db.listings.stats()["messages_duplicate"],
    ) == (1, 1)


def test_other_content_under_the_same_id_is_a_conflict_and_queues_nothing(
    db: Store,
) -> None:
    receive(db)
    conflict = receive(db, digest="d2")

    assert conflict.outcome == "conflict"
    assert conflict.record is not None and conflict.record.fields["fingerprint"] == "d1"
    assert db.redis.llen("acme") == 1
    assert accept(db, digest="d2") == "conflict"


def test_when_the_queue_cannot_take_the_message_nothing_is_recorded(db: Store) -> None:
    """The push is the script's first write: if it fails, no record is left behind."""
    db.redis.set("acme", "not a list")

    with pytest.raises(redis.ResponseError):
        receive(db)

    assert db.messages.get("acme", "m") is None
    assert db.redis.zscore(WATCH, "acme:m") is None
    assert db.listings.stats()["messages_accepted"] == 0


def test_accept_records_without_queuing_for_callers_that_publish_themselves(
    db: Store,
) -> None:
    assert accept(db) == "created"
    assert accept(db) == "exists"
    assert accept(db, digest="d2") == "conflict"
    assert not db.redis.exists("acme")
    assert db.listings.stats()["messages_accepted"] == 1
    assert db.listings.stats()["messages_duplicate"] == 0  # counted by the intake only


def test_begin_counts_attempts_refuses_a_held_lease_and_returns_what_the_handler_needs(
    db: Store,
) -> None:
    accept(db)
    first = db.attempts.begin("acme", "m", "lease-1")
    assert (first.outcome, first.attempt, first.body) == ("started", 1, "{}")
    assert db.attempts.begin("acme", "m", "lease-2").outcome == "busy"
    db.locks.release(lease_key("acme", "m"), "lease-1")
    again = db.attempts.begin("acme", "m", "lease-2")
    assert (again.outcome, again.attempt) == ("started", 2)
    assert again.retry_since == first.retry_since  # the budget runs from the first attempt


def test_a_retry_waits_in_the_due_set_and_a_stray_copy_before_it_is_due_does_not_start(
    db: Store,
) -> None:
    started(db)
    at = time.time() + 30

    assert db.attempts.mark_retrying("acme", "m", "HTTP 503", at, "lease") is True

    record = db.messages.get("acme", "m")
    assert (record.status, record.fields["last_error"]) == ("retrying", "HTTP 503")
    assert db.attempts.due_at("acme", "m") == pytest.approx(at)
    assert not db.locks.lease_held("acme", "m")
    assert db.attempts.begin("acme", "m", "stray").outcome == "early"
    assert db.attempts.claim_due(time.time()) == []
    assert db.attempts.claim_due(at + 1) == [("acme", "m")]
    assert db.redis.zscore(DUE, "acme:m") is None
    assert db.messages.get("acme", "m").queued_at == pytest.approx(at + 1)


def test_a_due_entry_of_a_message_that_finished_meanwhile_is_only_taken_off(
    db: Store,
) -> None:
    started(db)
    db.attempts.mark_retrying("acme", "m", "HTTP 503", time.time() - 1, "lease")
    db.attempts.begin("acme", "m", "stray")  # another copy ran it and finished it...
    finish(db, lease="stray")
    db.redis.zadd(DUE, {"acme:m": time.time() - 1})  # ...but a due entry was left

    assert db.attempts.claim_due(time.time()) == []
    assert db.redis.zcard(DUE) == 0
    assert db.redis.zscore(WATCH, "acme:m") is None


def test_a_stale_holders_writes_are_refused_after_another_holder_finished(
    db: Store,
) -> None:
    started(db, "stale")
    db.redis.delete(lease_key("acme", "m"))  # its lease ran out while it was stuck
    assert db.attempts.begin("acme", "m", "current").outcome == "started"
    assert finish(db, lease="current", cursor={"since": 1}) == "written"

    assert db.attempts.mark_retrying("acme", "m", "late 503", time.time() + 5, "stale") is False
    assert finish(db, "failed", lease="stale", cursor={"since": 99}) == "finished"

    record = db.messages.get("acme", "m")
    assert record.status == "succeeded"
    assert "last_error" not in record.fields
    assert db.memory.cursor("acme", "default") == {"since": 1}
    assert db.redis.zscore(DUE, "acme:m") is None


def test_a_holder_that_lost_its_lease_to_a_live_one_cannot_finish_or_retry(
    db: Store,
) -> None:
    started(db, "stale")
    db.redis.delete(lease_key("acme", "m"))
    db.attempts.begin("acme", "m", "current")

    assert finish(db, lease="stale", keep=[("sent", "H1", 1)]) == "stale"
    assert db.attempts.mark_retrying("acme", "m", "x", time.time(), "stale") is False

    assert db.messages.get("acme", "m").status == "processing"
    assert db.memory.recall("acme", "default", "sent", ["H1"]) == [None]
    assert db.locks.lease_held("acme", "m")  # still the live holder's


def test_finish_writes_answer_outbox_cursor_and_memory_once(db: Store) -> None:
    started(db)

    assert finish(db, cursor={"since": 5}, keep=[("sent", "H1", {"n": 1})]) == "written"
    assert finish(db, cursor={"since": 9}) == "finished"  # a redelivery writes nothing

    record = db.messages.get("acme", "m")
    assert record.status == "succeeded"
    assert record.fields["delivery"] == "pending"
    assert db.redis.zscore(OUTBOX, "acme:m") is not None
    assert db.memory.cursor("acme", "default") == {"since": 5}
    assert db.memory.recall("acme", "default", "sent", ["H1", "H2"]) == [{"n": 1}, None]
    assert db.redis.zscore(WATCH, "acme:m") is None
    assert not db.locks.lease_held("acme", "m")


def test_memory_is_kept_for_the_retention_and_at_most_one_bucket_more(db: Store) -> None:
    started(db)
    finish(db, keep=[("sent", "H1", 1), ("sent", "H2", 2)])

    retention = db.timing.memory_ttl_seconds
    keys = list(db.redis.scan_iter(kept_key("acme", "default", "sent") + "*"))
    assert len(keys) == 3  # the list of buckets, one bucket's meta, its one hash of names
    for key in keys:
        assert retention - 5 <= db.redis.ttl(key) <= retention + retention / KEPT_BUCKETS
    assert db.memory.recall("acme", "default", "sent", ["H1", "H2", "H3"]) == [1, 2, None]


def test_memory_of_the_earlier_format_is_read_until_it_expires(db: Store) -> None:
    db.redis.set(memory_key("acme", "default", "sent", "H1"), json.dumps({"old": 1}), ex=60)
    db.redis.set(memory_key("acme", "default", "sent", "H2"), json.dumps({"old": 2}), ex=60)
    started(db)
    finish(db, keep=[("sent", "H2", {"new": 2})])  # rewritten: the new format wins

    found = db.memory.recall("acme", "default", "sent", ["H1", "H2", "H3"])

    assert found == [{"old": 1}, {"new": 2}, None]


def test_dead_is_listed_and_requeue_makes_it_queued_again_off_every_list(
    db: Store,
) -> None:
    started(db)
    finish(db, "dead")
    outbox = Outbox(db.redis, db.timing)
    claim = outbox.claim("acme", "m")
    outbox.take("acme", "m", claim, 10)
    outbox.failed("acme", "m", claim, "hub down", None)
    assert db.listings.dead("messages")[0][:2] == ("acme", "m")
    assert db.listings.dead("deliveries")[0][:2] == ("acme", "m")

    assert db.messages.requeue("acme", "m") is not None

    record = db.messages.get("acme", "m")
    assert (record.status, record.fields["attempts"]) == ("queued", "0")
    assert "delivery" not in record.fields
    for listed in (DEAD_MESSAGES, DEAD_DELIVERIES, OUTBOX):
        assert db.redis.zscore(listed, "acme:m") is None
    assert db.messages.requeue("acme", "m") is None  # only failed or dead records


def test_a_succeeded_message_is_not_requeued(db: Store) -> None:
    started(db)
    finish(db, push=False)

    assert db.messages.requeue("acme", "m") is None
    assert db.messages.get("acme", "m").status == "succeeded"


def test_dead_entries_leave_the_lists_when_their_records_expire(db: Store) -> None:
    started(db)
    finish(db, "dead", push=False)
    db.redis.zadd(DEAD_DELIVERIES, {"acme:gone": 1.0})
    now = time.time()

    assert db.listings.prune_dead(now) == 1  # the long-gone delivery; the dead message is young
    assert db.redis.zcard(DEAD_MESSAGES) == 1
    db.redis.delete("shiphub:msg:acme:m")  # its TTL ran out
    assert db.listings.prune_dead(now + db.timing.record_ttl_seconds + 1) == 1
    assert db.listings.sizes()["dead_messages"] == 0


def test_once_clear_forgets_only_its_own_attempts_inflight_mark(db: Store) -> None:
    db.once.inflight("acme", "m", "create", attempt=2)

    db.once.clear("acme", "m", "create", attempt=1)
    assert db.once.state("acme", "m", "create")["attempt"] == 2
    db.once.clear("acme", "m", "create", attempt=2)
    assert db.once.state("acme", "m", "create") is None


def test_cursor_is_per_integration_and_store(db: Store) -> None:
    db.redis.hset(cursor_key("acme", "shop-a"), "since", json.dumps(1))
    assert db.memory.cursor("acme", "shop-a") == {"since": 1}
    assert db.memory.cursor("acme", "shop-b") == {}
