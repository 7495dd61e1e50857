"""The outbox's claims (fakeredis with Lua): checking state and taking a push are one step, so
duplicate push tasks push nothing and only the holder reschedules."""

from __future__ import annotations

import time

import pytest

from tests.conftest import settle
from tests.support.records import accept
from worker.store.bundle import Store
from worker.store.outbox import Claims, Outbox
from worker.store.schema import DEAD_DELIVERIES, OUTBOX


@pytest.fixture
def outbox(db: Store) -> Outbox:
    accept(db, "acme", "m", "d", {"message": "order:ready", "body": "{}"})
    settle(db, "m", "succeeded", push=True)
    return Outbox(db.redis, db.timing)


def test_a_due_delivery_is_claimed_once(outbox: Outbox) -> None:
    first = outbox.claim_due()
    assert [(c.integration, c.message_id) for c in first.fresh] == [("acme", "m")]
    assert outbox.claim_due() == Claims([], [])  # claimed: not due until its reclaim time
    assert outbox.claim("acme", "m") is None


def test_two_tasks_with_one_claim_push_once(outbox: Outbox) -> None:
    claim = outbox.claim("acme", "m")

    first = outbox.take("acme", "m", claim, 10)
    second = outbox.take("acme", "m", claim, 10)  # the broker redelivered the same task

    assert first is not None and first.answer == {"message_id": "m"}
    assert second is None


def test_a_superseded_pushers_outcome_is_refused(outbox: Outbox) -> None:
    old = outbox.claim("acme", "m")
    outbox.take("acme", "m", old, 10)
    outbox.make_due("acme", "m", 0)  # it stalled past its reclaim time
    new = outbox.claim("acme", "m")
    outbox.take("acme", "m", new, 10)

    assert outbox.failed("acme", "m", old, "late", time.time() + 5) == "stale"
    assert outbox.delivered("acme", "m", old) is False
    assert outbox.delivered("acme", "m", new) is True
    assert outbox.redis.hget("shiphub:msg:acme:m", "delivery") == "delivered"
    assert outbox.redis.zscore(OUTBOX, "acme:m") is None


def test_only_the_holder_schedules_the_next_push_and_a_stale_task_changes_nothing(
    outbox: Outbox,
) -> None:
    claim = outbox.claim("acme", "m")
    taken = outbox.take("acme", "m", claim, 10)
    next_at = time.time() + 60

    assert outbox.failed("acme", "m", claim, "hub down", next_at) == "retrying"
    assert outbox.redis.zscore(OUTBOX, "acme:m") == pytest.approx(next_at)
    assert outbox.take("acme", "m", claim, 10) is None  # a duplicate of that task
    assert outbox.claim("acme", "m") is None  # a kick before it is due
    assert outbox.redis.zscore(OUTBOX, "acme:m") == pytest.approx(next_at)
    again = outbox.take("acme", "m", outbox.claim("acme", "m", now=next_at + 1), 10)
    assert again is not None and (again.attempts, again.since) == (1, taken.since)


def test_a_dead_delivery_is_listed_and_a_replay_makes_it_due_again(outbox: Outbox) -> None:
    claim = outbox.claim("acme", "m")
    outbox.take("acme", "m", claim, 10)

    assert outbox.failed("acme", "m", claim, "hub down", None) == "dead"
    assert outbox.redis.zscore(DEAD_DELIVERIES, "acme:m") is not None
    assert outbox.redeliver("acme", "m") is True
    assert outbox.redis.zscore(DEAD_DELIVERIES, "acme:m") is None
    assert outbox.claim("acme", "m") is not None
    assert outbox.redeliver("acme", "m") is False  # only a dead delivery


def test_a_claim_whose_task_was_sent_comes_back_as_sent_not_claimed_again(outbox: Outbox) -> None:
    now = time.time()
    first = outbox.claim_one("acme", "m", now=now)
    later = now + outbox.timing.queued_deadline_seconds + 1

    found = outbox.claim_due(later)

    assert found.fresh == []
    assert found.sent == [first]  # its claim and the stamp its task carries
    assert first is not None and first.claimed_at == now
    assert outbox.redis.hget("shiphub:msg:acme:m", "push_claim") == first.claim


def test_a_task_still_queued_keeps_its_claim_and_is_asked_about_a_deadline_later(
    outbox: Outbox,
) -> None:
    now = time.time()
    first = outbox.claim_one("acme", "m", now=now)
    later = now + outbox.timing.queued_deadline_seconds + 1
    (sent,) = outbox.claim_due(later).sent

    outbox.still_queued(sent, later)

    assert outbox.claim_due(later) == Claims([], [])
    assert outbox.redis.zscore(OUTBOX, "acme:m") == later + outbox.timing.queued_deadline_seconds
    assert outbox.take("acme", "m", first.claim, 10) is not None  # its task pushes


def test_a_lost_task_is_claimed_afresh_once_and_the_lost_claim_pushes_nothing(
    outbox: Outbox,
) -> None:
    now = time.time()
    first = outbox.claim_one("acme", "m", now=now)
    later = now + outbox.timing.queued_deadline_seconds + 1
    (sent,) = outbox.claim_due(later).sent

    again = outbox.reclaim(sent, later)

    assert again is not None and again.claim != first.claim and again.claimed_at == later
    assert outbox.reclaim(sent, later) is None  # another worker's look at the same claim
    assert outbox.take("acme", "m", first.claim, 10) is None
    assert outbox.take("acme", "m", again.claim, 10) is not None


def test_a_claim_taken_meanwhile_is_neither_postponed_nor_reclaimed(outbox: Outbox) -> None:
    now = time.time()
    first = outbox.claim_one("acme", "m", now=now)
    later = now + outbox.timing.queued_deadline_seconds + 1
    (sent,) = outbox.claim_due(later).sent
    outbox.take("acme", "m", first.claim, 10)  # a worker took it just before the look
    held_until = outbox.redis.zscore(OUTBOX, "acme:m")

    assert outbox.reclaim(sent, later) is None
    outbox.still_queued(sent, later)
    assert outbox.redis.zscore(OUTBOX, "acme:m") == held_until


def test_a_claim_whose_task_could_not_be_sent_is_claimed_afresh(outbox: Outbox) -> None:
    now = time.time()
    first = outbox.claim_one("acme", "m", now=now)
    outbox.make_due("acme", "m", now + 1)  # the broker refused the task

    found = outbox.claim_due(now + 2)

    assert found.sent == []
    assert [c.claim for c in found.fresh] != [first.claim] and len(found.fresh) == 1
