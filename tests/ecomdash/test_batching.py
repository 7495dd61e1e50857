"""The batch: one call for records queued together, each message its own record's outcome.

Redis is fakeredis (Lua included); ``send`` stands for ecomdash's answer, so these tests are
about the queue and the outcome split; the pipeline tests make the real calls. Each handler has
a Batcher of its own over the store's queue, fenced by its message's lease, as ``Job.batch``
gives it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import fakeredis
import pytest

from worker.basics.deadline import Deadline
from worker.basics.errors import HardError, TransientError, WaitUntil
from worker.integrations.ecomdash.batching import (
    LOCK_MARGIN_SECONDS,
    Batcher,
    Entry,
    Outcome,
    failed_all,
    split,
    unique,
)
from worker.integrations.ecomdash.mapping import SubmitAnswer
from worker.store.provider_state import BatchQueue, Fence
from worker.store.schema import DUE, batch_state_key, lease_key, member, record_key

Handler = Callable[[str], Batcher]  # a message_id's handler: its Batcher, under its lease


def entry(message_id: str, shipment: int, tracking: str = "1Z") -> Entry:
    record = {"ShipmentId": shipment, "TrackingNumber": tracking}
    return Entry(message_id, record, f"{shipment}:{tracking}:", time.time(), message=message_id)


def answer(*results: tuple[int, bool, list[str] | None]) -> SubmitAnswer:
    return SubmitAnswer.model_validate(
        {
            "status": "Success",
            "messages": ["Found 1 shipments associated with sales order 86988"],
            "data": [
                {"Request": {"ShipmentId": s}, "WasSuccessful": ok, "Messages": m}
                for s, ok, m in results
            ],
        }
    )


def test_a_record_refused_in_a_successful_call_fails_only_its_own_message() -> None:
    entries = [entry("m1", 1), entry("m2", 2), entry("m3", 3)]
    outcomes = split(
        entries, answer((1, True, None), (2, False, ["Shipment 2 was not found."]), (3, True, None))
    )
    assert [outcomes[m].kind for m in ("m1", "m2", "m3")] == ["sent", "refused", "sent"]
    assert outcomes["m2"].reasons == ["Shipment 2 was not found."]
    assert "ShipmentId 2" in outcomes["m2"].subject
    # top-level messages on success are kept as words, not taken for an error
    assert outcomes["m1"].messages == ["Found 1 shipments associated with sales order 86988"]
    with pytest.raises(HardError):
        outcomes["m2"].raise_unless_sent()
    assert outcomes["m1"].raise_unless_sent() is outcomes["m1"]


def test_a_record_ecomdash_gave_no_result_for_is_retried() -> None:
    outcomes = split([entry("m1", 1), entry("m2", 2)], answer((2, True, None)))
    assert outcomes["m1"].kind == "retry" and outcomes["m2"].kind == "sent"


def test_a_failed_call_fails_every_message_of_the_batch_the_same_way() -> None:
    entries = [entry("m1", 1), entry("m2", 2)]
    busy = failed_all(entries, TransientError("ecomdash answered HTTP 429", retry_after=7))
    assert {o.kind for o in busy.values()} == {"retry"}
    assert {o.retry_after for o in busy.values()} == {7}
    with pytest.raises(TransientError):
        busy["m1"].raise_unless_sent()
    refused = failed_all(entries, HardError("key refused", ["check ecd_key"]))
    assert {o.kind for o in refused.values()} == {"refused"}


def test_the_same_delivery_twice_in_a_batch_is_sent_once() -> None:
    sent, carried = unique([entry("m1", 1), entry("m2", 1), entry("m1", 1), entry("m3", 2)])
    assert [e.message_id for e in sent] == ["m1", "m3"]
    assert carried == {"m2": "m1"}


class Ecomdash:
    """Stands for ecomdash's answers: records every call; refuses ShipmentId 13."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.seconds = seconds
        self.lock = threading.Lock()

    def __call__(self, records: list[dict[str, Any]]) -> SubmitAnswer:
        with self.lock:
            self.calls.append(records)
        time.sleep(self.seconds)
        return answer(
            *[
                (
                    r["ShipmentId"],
                    r["ShipmentId"] != 13,
                    ["Shipment 13 was not found."] if r["ShipmentId"] == 13 else None,
                )
                for r in records
            ]
        )


def batcher(
    redis: fakeredis.FakeRedis,
    send: Any,
    size: int = 100,
    window: float = 0.3,
    max_wait: float = 2.0,
) -> Handler:
    def handler(message_id: str) -> Batcher:
        redis.set(lease_key("ecomdash", message_id), f"lease-{message_id}")
        fence = Fence(lease_key("ecomdash", message_id), f"lease-{message_id}")
        queue = BatchQueue(redis, "ecomdash", "q", 600, fence)
        return Batcher(queue, "acct", window, max_wait, size, 5.0, send)

    return handler


def until_answered(b: Batcher, e: Entry) -> Outcome:
    """Submit ``e`` again each time its attempt ends to come back later (``WaitUntil``), at the
    time it names or sooner when it is woken (``BatchQueue.wake``), as the due set does: the
    message's record says it runs, then that it waits (as ``begin`` and ``waiting`` write)."""
    redis, waiting_member = b.queue.client, member("ecomdash", e.message)  # type: ignore[attr-defined]
    record = record_key("ecomdash", e.message)
    while True:
        redis.hset(record, "status", "processing")
        redis.zrem(DUE, waiting_member)
        try:
            return b.submit(e)
        except WaitUntil as waiting:
            at = min(waiting.at, float(redis.hget(record, "woken_at") or "inf"))
            redis.hdel(record, "woken_at")
            redis.hset(record, mapping={"status": "queued", "next_attempt_at": at})
            redis.zadd(DUE, {waiting_member: at})
            while time.time() < (redis.zscore(DUE, waiting_member) or at):
                time.sleep(0.02)


def submit_all(b: Handler, entries: list[Entry], seconds: float = 10.0) -> dict[str, Any]:
    """Every entry submitted by a thread of its own, all at once (a barrier), each stamped when
    it is submitted, as a handler stamps its own: the batch's window counts from the stamps, and
    on a loaded machine starting 21 threads can take longer than the window."""
    start = threading.Barrier(len(entries))

    def one(e: Entry) -> Any:
        start.wait(timeout=30)
        stamped = replace(e, queued_at=time.time())
        with Deadline(seconds).running():
            return until_answered(b(e.message_id), stamped)

    with ThreadPoolExecutor(len(entries)) as pool:
        return dict(zip([e.message_id for e in entries], pool.map(one, entries), strict=True))


def test_records_queued_together_go_out_in_one_call_each_with_its_outcome() -> None:
    redis = fakeredis.FakeRedis(decode_responses=True)
    ecomdash = Ecomdash()
    entries = [entry(f"m{i}", 100 + i) for i in range(20)] + [entry("bad", 13)]
    # The batch goes when it is full (21), not when a short quiet window runs out: on a loaded
    # machine 21 threads may queue their records further apart than 0.3 s.
    together = batcher(redis, ecomdash, size=len(entries), window=5.0, max_wait=5.0)
    outcomes = submit_all(together, entries, seconds=30.0)
    assert len(ecomdash.calls) == 1 and len(ecomdash.calls[0]) == 21
    assert outcomes["bad"].kind == "refused"
    assert {o.kind for m, o in outcomes.items() if m != "bad"} == {"sent"}
    assert redis.llen("shiphub:ecomdash:queue:q") == 0


def test_batches_are_bounded_by_the_batch_size() -> None:
    redis = fakeredis.FakeRedis(decode_responses=True)
    ecomdash = Ecomdash()
    outcomes = submit_all(
        batcher(redis, ecomdash, size=7), [entry(f"m{i}", i + 100) for i in range(20)]
    )
    assert {o.kind for o in outcomes.values()} == {"sent"}
    assert max(len(c) for c in ecomdash.calls) <= 7
    assert 3 <= len(ecomdash.calls) <= 4  # 20 records, 7 at most a call
    assert sorted(r["ShipmentId"] for c in ecomdash.calls for r in c) == list(range(100, 120))


def test_an_answered_message_is_not_sent_again_and_a_delivery_is_sent_once() -> None:
    redis = fakeredis.FakeRedis(decode_responses=True)
    ecomdash = Ecomdash()
    b = batcher(redis, ecomdash)
    first = submit_all(b, [entry("m1", 5)])["m1"]
    again = submit_all(b, [entry("m1", 5)])["m1"]  # a retry of the same message
    other = submit_all(b, [entry("m2", 5)])["m2"]  # another message, the same delivery
    assert len(ecomdash.calls) == 1
    assert first.kind == again.kind == "sent"
    assert other.kind == "sent" and other.sent_by == "m1"


def test_a_record_taken_by_a_leader_that_died_is_queued_again_by_its_handler() -> None:
    redis = fakeredis.FakeRedis(decode_responses=True)
    ecomdash = Ecomdash()
    b = batcher(redis, ecomdash)
    lost = entry("m1", 5)
    # A leader took it and died: "sending" under a token no lock holds any more.
    redis.set(batch_state_key("ecomdash", "m1"), '{"state": "sending", "leader": "dead-leader"}')
    assert submit_all(b, [lost])["m1"].kind == "sent"
    assert len(ecomdash.calls) == 1


def test_a_handler_whose_batch_another_leads_ends_its_attempt_until_the_leader_wakes_it() -> None:
    redis = fakeredis.FakeRedis(decode_responses=True)
    b = batcher(redis, Ecomdash(), size=1)("m1")
    redis.set("shiphub:ecomdash:leader:q", "a-live-leader", px=60_000)  # another leads, slowly
    started = time.time()
    with pytest.raises(WaitUntil) as waiting:
        b.submit(entry("m1", 5))
    assert time.time() - started < 0.5  # no thread waits for the batch
    # Not back before the leader's lock would have run out: its leader wakes it sooner.
    assert waiting.value.at >= started + 5.0 + 1.0 + LOCK_MARGIN_SECONDS
    assert redis.lrange("shiphub:ecomdash:queue:q", 0, -1)  # its record waits in Redis


def test_a_record_queued_alone_waits_in_redis_until_its_batch_is_due() -> None:
    redis = fakeredis.FakeRedis(decode_responses=True)
    ecomdash = Ecomdash()
    b = batcher(redis, ecomdash, window=0.3, max_wait=2.0)("m1")
    with pytest.raises(WaitUntil) as waiting:
        b.submit(entry("m1", 5))
    assert ecomdash.calls == []
    assert waiting.value.at == pytest.approx(time.time() + 0.3, abs=0.1)  # the window
    assert until_answered(b, entry("m1", 5)).kind == "sent"
    assert len(ecomdash.calls) == 1


def test_a_retry_outcome_is_answered_once_and_its_record_queued_again_by_the_next_attempt() -> None:
    redis = fakeredis.FakeRedis(decode_responses=True)
    failing = Ecomdash()
    b = batcher(redis, failing, window=0.0)("m1")
    redis.set(
        batch_state_key("ecomdash", "m1"),
        '{"state": "done", "outcome": {"kind": "retry", "subject": "500", "attempt": 1}}',
    )
    assert b.submit(replace(entry("m1", 5), attempt=1)).kind == "retry"  # its own attempt's
    assert until_answered(b, replace(entry("m1", 5), attempt=2)).kind == "sent"  # sent again
    assert len(failing.calls) == 1


def test_a_leader_wakes_the_messages_waiting_for_its_batch_once_and_no_other() -> None:
    redis = fakeredis.FakeRedis(decode_responses=True)
    queue = BatchQueue(redis, "ecomdash", "q", 600, Fence(lease_key("ecomdash", "x"), "t"))
    now = time.time()
    for message_id, status in [
        ("parked", "queued"),
        ("published", "queued"),
        ("running", "processing"),
        ("answered", "succeeded"),
    ]:
        redis.hset(record_key("ecomdash", message_id), mapping={"status": status})
    redis.zadd(DUE, {"ecomdash:parked": now + 40, "ecomdash:answered": now + 40})
    queue.wake(["parked", "published", "running", "answered", "gone"], now)
    assert redis.zscore(DUE, "ecomdash:parked") == pytest.approx(now)
    assert float(redis.hget(record_key("ecomdash", "parked"), "next_attempt_at")) == (
        pytest.approx(now)
    )
    assert redis.zscore(DUE, "ecomdash:published") is None  # its task is in the broker
    assert redis.zscore(DUE, "ecomdash:answered") == pytest.approx(now + 40)  # left alone
    # Still running, it has not said yet when it comes back: marked, its wait ends then.
    assert float(redis.hget(record_key("ecomdash", "running"), "woken_at")) == pytest.approx(now)
    queue.wake(["parked"], now + 10)  # a later wake moves nothing back
    assert redis.zscore(DUE, "ecomdash:parked") == pytest.approx(now)
