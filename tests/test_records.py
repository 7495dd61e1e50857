"""Record state changes (fakeredis with Lua): the atomic steps the pipeline relies on."""

from __future__ import annotations

import json
import time

import pytest
import redis

from worker.store.outbox import Outbox
from worker.store.records import (
    DEAD_DELIVERIES,
    DEAD_MESSAGES,
    DUE,
    OUTBOX,
    WATCH,
    Received,
    Records,
    cursor_key,
    lease_key,
    memory_key,
)
from worker.tasks.enqueue import Envelope

FIELDS = {"integration": "acme", "message_id": "m", "message": "order:ready", "body": "{}"}
ENVELOPE = Envelope("acme", '{"headers": {"shiphub_message": "acme:m"}}')


def accept(records: Records, digest: str = "d1") -> str:
    return records.accept("acme", "m", digest, FIELDS)


def finish(records: Records, status: str = "succeeded", lease: str = "lease", **kw: object) -> str:
    return records.finish(
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


def started(records: Records, lease: str = "lease") -> None:
    accept(records)
    records.mark_published("acme", "m", time.time())
    assert records.begin("acme", "m", lease).outcome == "started"


def receive(records: Records, digest: str = "d1", now: float | None = None) -> Received:
    return records.receive("acme", "m", digest, FIELDS, ENVELOPE, now or time.time())


def test_receive_records_and_queues_in_one_step_and_a_duplicate_gets_the_record(
    records: Records,
) -> None:
    now = time.time()

    assert receive(records, now=now) == Received("created", None)

    assert records.redis.lrange("acme", 0, -1) == [ENVELOPE.message]
    record = records.get("acme", "m")
    assert (record.status, record.queued_at) == ("queued", pytest.approx(now))
    assert "published" not in record.fields and "publish_token" not in record.fields
    deadline = now + records.timing.queued_deadline_seconds
    assert records.redis.zscore(WATCH, "acme:m") == pytest.approx(deadline)

    again = receive(records)
    assert again.outcome == "exists" and again.record == record
    assert records.redis.llen("acme") == 1  # a duplicate queues nothing
    assert (records.stats()["messages_accepted"], records.stats()["messages_duplicate"]) == (1, 1)


def test_other_content_under_the_same_id_is_a_conflict_and_queues_nothing(
    records: Records,
) -> None:
    receive(records)
    conflict = receive(records, digest="d2")

    assert conflict.outcome == "conflict"
    assert conflict.record is not None and conflict.record.fields["fingerprint"] == "d1"
    assert records.redis.llen("acme") == 1
    assert accept(records, digest="d2") == "conflict"


def test_when_the_queue_cannot_take_the_message_nothing_is_recorded(records: Records) -> None:
    """The push is the script's first write: if it fails, no record is left behind."""
    records.redis.set("acme", "not a list")

    with pytest.raises(redis.ResponseError):
        receive(records)

    assert records.get("acme", "m") is None
    assert records.redis.zscore(WATCH, "acme:m") is None
    assert records.stats()["messages_accepted"] == 0


def test_accept_records_without_queuing_for_callers_that_publish_themselves(
    records: Records,
) -> None:
    assert accept(records) == "created"
    assert accept(records) == "exists"
    assert accept(records, digest="d2") == "conflict"
    assert not records.redis.exists("acme")
    assert records.stats()["messages_accepted"] == 1
    assert records.stats()["messages_duplicate"] == 0  # counted by the intake only


def test_begin_counts_attempts_refuses_a_held_lease_and_returns_what_the_handler_needs(
    records: Records,
) -> None:
    accept(records)
    first = records.begin("acme", "m", "lease-1")
    assert (first.outcome, first.attempt, first.body) == ("started", 1, "{}")
    assert records.begin("acme", "m", "lease-2").outcome == "busy"
    records.release(lease_key("acme", "m"), "lease-1")
    again = records.begin("acme", "m", "lease-2")
    assert (again.outcome, again.attempt) == ("started", 2)
    assert again.retry_since == first.retry_since  # the budget runs from the first attempt


def test_a_retry_waits_in_the_due_set_and_a_stray_copy_before_it_is_due_does_not_start(
    records: Records,
) -> None:
    started(records)
    at = time.time() + 30

    assert records.mark_retrying("acme", "m", "HTTP 503", at, "lease") is True

    record = records.get("acme", "m")
    assert (record.status, record.fields["last_error"]) == ("retrying", "HTTP 503")
    assert records.due_at("acme", "m") == pytest.approx(at)
    assert not records.lease_held("acme", "m")
    assert records.begin("acme", "m", "stray").outcome == "early"
    assert records.claim_due(time.time()) == []
    assert records.claim_due(at + 1) == [("acme", "m")]
    assert records.redis.zscore(DUE, "acme:m") is None
    assert records.get("acme", "m").queued_at == pytest.approx(at + 1)


def test_a_due_entry_of_a_message_that_finished_meanwhile_is_only_taken_off(
    records: Records,
) -> None:
    started(records)
    records.mark_retrying("acme", "m", "HTTP 503", time.time() - 1, "lease")
    records.begin("acme", "m", "stray")  # another copy ran it and finished it...
    finish(records, lease="stray")
    records.redis.zadd(DUE, {"acme:m": time.time() - 1})  # ...but a due entry was left

    assert records.claim_due(time.time()) == []
    assert records.redis.zcard(DUE) == 0
    assert records.redis.zscore(WATCH, "acme:m") is None


def test_a_stale_holders_writes_are_refused_after_another_holder_finished(
    records: Records,
) -> None:
    started(records, "stale")
    records.redis.delete(lease_key("acme", "m"))  # its lease ran out while it was stuck
    assert records.begin("acme", "m", "current").outcome == "started"
    assert finish(records, lease="current", cursor={"since": 1}) == "written"

    assert records.mark_retrying("acme", "m", "late 503", time.time() + 5, "stale") is False
    assert finish(records, "failed", lease="stale", cursor={"since": 99}) == "finished"

    record = records.get("acme", "m")
    assert record.status == "succeeded"
    assert "last_error" not in record.fields
    assert records.cursor("acme", "default") == {"since": 1}
    assert records.redis.zscore(DUE, "acme:m") is None


def test_a_holder_that_lost_its_lease_to_a_live_one_cannot_finish_or_retry(
    records: Records,
) -> None:
    started(records, "stale")
    records.redis.delete(lease_key("acme", "m"))
    records.begin("acme", "m", "current")

    assert finish(records, lease="stale", keep=[("sent", "H1", 1)]) == "stale"
    assert records.mark_retrying("acme", "m", "x", time.time(), "stale") is False

    assert records.get("acme", "m").status == "processing"
    assert records.recall("acme", "default", "sent", ["H1"]) == [None]
    assert records.lease_held("acme", "m")  # still the live holder's


def test_finish_writes_answer_outbox_cursor_and_memory_once(records: Records) -> None:
    started(records)

    assert finish(records, cursor={"since": 5}, keep=[("sent", "H1", {"n": 1})]) == "written"
    assert finish(records, cursor={"since": 9}) == "finished"  # a redelivery writes nothing

    record = records.get("acme", "m")
    assert record.status == "succeeded"
    assert record.fields["delivery"] == "pending"
    assert records.redis.zscore(OUTBOX, "acme:m") is not None
    assert records.cursor("acme", "default") == {"since": 5}
    assert records.recall("acme", "default", "sent", ["H1", "H2"]) == [{"n": 1}, None]
    assert records.redis.zscore(WATCH, "acme:m") is None
    assert not records.lease_held("acme", "m")


def test_each_memory_entry_expires_by_its_own_age(records: Records) -> None:
    started(records)
    finish(records, keep=[("sent", "H1", 1), ("sent", "H2", 2)])

    ttl = records.redis.ttl(memory_key("acme", "default", "sent", "H1"))
    assert records.timing.memory_ttl_seconds - 5 <= ttl <= records.timing.memory_ttl_seconds
    assert records.redis.ttl(memory_key("acme", "default", "sent", "H2")) > 0


def test_dead_is_listed_and_requeue_makes_it_queued_again_off_every_list(
    records: Records,
) -> None:
    started(records)
    finish(records, "dead")
    outbox = Outbox(records.redis, records.timing)
    claim = outbox.claim("acme", "m")
    outbox.take("acme", "m", claim, 10)
    outbox.failed("acme", "m", claim, "hub down", None)
    assert records.dead("messages")[0][:2] == ("acme", "m")
    assert records.dead("deliveries")[0][:2] == ("acme", "m")

    assert records.requeue("acme", "m") is not None

    record = records.get("acme", "m")
    assert (record.status, record.fields["attempts"]) == ("queued", "0")
    assert "delivery" not in record.fields
    for listed in (DEAD_MESSAGES, DEAD_DELIVERIES, OUTBOX):
        assert records.redis.zscore(listed, "acme:m") is None
    assert records.requeue("acme", "m") is None  # only failed or dead records


def test_a_succeeded_message_is_not_requeued(records: Records) -> None:
    started(records)
    finish(records, push=False)

    assert records.requeue("acme", "m") is None
    assert records.get("acme", "m").status == "succeeded"


def test_dead_entries_leave_the_lists_when_their_records_expire(records: Records) -> None:
    started(records)
    finish(records, "dead", push=False)
    records.redis.zadd(DEAD_DELIVERIES, {"acme:gone": 1.0})
    now = time.time()

    assert records.prune_dead(now) == 1  # the long-gone delivery; the dead message is young
    assert records.redis.zcard(DEAD_MESSAGES) == 1
    records.redis.delete("shiphub:msg:acme:m")  # its TTL ran out
    assert records.prune_dead(now + records.timing.record_ttl_seconds + 1) == 1
    assert records.sizes()["dead_messages"] == 0


def test_once_clear_forgets_only_its_own_attempts_inflight_mark(records: Records) -> None:
    records.once_inflight("acme", "m", "create", attempt=2)

    records.once_clear("acme", "m", "create", attempt=1)
    assert records.once_state("acme", "m", "create")["attempt"] == 2
    records.once_clear("acme", "m", "create", attempt=2)
    assert records.once_state("acme", "m", "create") is None


def test_cursor_is_per_integration_and_store(records: Records) -> None:
    records.redis.hset(cursor_key("acme", "shop-a"), "since", json.dumps(1))
    assert records.cursor("acme", "shop-a") == {"since": 1}
    assert records.cursor("acme", "shop-b") == {}
