"""The scheduler's tick (fakeredis with Lua): due retries are published once, due pushes are
claimed once, the sweep runs on one worker per interval."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import Publisher, settle
from tests.support.records import accept, mark_published
from worker.integrations import registry
from worker.pipeline.delivery import push_task_name
from worker.pipeline.scheduler import Scheduler
from worker.pipeline.watchdog import sweep
from worker.store.bundle import Store
from worker.store.outbox import Claimed, Outbox
from worker.tasks.broker import BrokerView


@pytest.fixture
def scheduler(db: Store, publisher: Publisher) -> Scheduler:
    registry.load("tests.support.acme")
    return Scheduler(
        db,
        Outbox(db.redis, db.timing),
        publisher,
        pushes,
        60,
        lambda: BrokerView(db.redis),
    )


sent_pushes: list[tuple[str, str, str]] = []


def pushes(claimed: Claimed) -> None:
    sent_pushes.append((claimed.integration, claimed.message_id, claimed.claim))


def retrying(db: Store, message_id: str, at: float) -> None:
    body = json.dumps({"message_id": message_id, "message": "order:ready", "payload": {}})
    accept(db, "acme", message_id, "d", {"message": "order:ready", "body": body})
    db.attempts.begin("acme", message_id, "lease")
    db.attempts.mark_retrying("acme", message_id, "HTTP 503", at, "lease")


def test_a_due_retry_is_published_once_with_the_stamp_the_record_keeps(
    db: Store, publisher: Publisher, scheduler: Scheduler
) -> None:
    now = time.time()
    retrying(db, "r1", now - 1)
    retrying(db, "r2", now + 60)

    assert scheduler.tick(now)["retries"] == 1
    assert scheduler.tick(now)["retries"] == 0  # taken off the due set
    assert publisher.published == [("acme.order_ready", "r1")]
    assert db.messages.get("acme", "r1").queued_at == pytest.approx(now)


def test_a_retry_whose_publish_fails_goes_back_in_line(
    db: Store, publisher: Publisher, scheduler: Scheduler
) -> None:
    now = time.time()
    retrying(db, "r3", now - 1)
    publisher.fail = True

    assert scheduler.tick(now)["retries"] == 0
    publisher.fail = False
    assert scheduler.tick(now + 2)["retries"] == 1


def test_a_due_push_is_claimed_and_sent_once(db: Store, scheduler: Scheduler) -> None:
    accept(db, "acme", "p1", "d", {"message": "order:ready", "body": "{}"})
    settle(db, "p1", "succeeded", push=True)
    sent_pushes.clear()

    scheduler.tick()
    scheduler.tick()

    assert [(i, m) for i, m, _ in sent_pushes] == [("acme", "p1")]


def test_one_worker_sweeps_per_interval(db: Store, publisher: Publisher) -> None:
    outbox = Outbox(db.redis, db.timing)
    first = Scheduler(db, outbox, publisher, pushes, 60, lambda: BrokerView(db.redis))
    second = Scheduler(db, outbox, publisher, pushes, 60, lambda: BrokerView(db.redis))

    assert "republished" in first.tick()
    assert "republished" not in second.tick()


def test_a_due_retry_of_an_integration_this_process_does_not_run_is_handed_on(
    db: Store, publisher: Publisher, scheduler: Scheduler
) -> None:
    """Published to its integration's queue by name, for the workers that run it: never
    dropped (nor left to a watchdog that would forget it)."""
    now = time.time()
    body = json.dumps({"message_id": "x1", "message": "parcel:ready", "payload": {}})
    accept(db, "elsewhere", "x1", "d", {"message": "parcel:ready", "body": body})
    db.attempts.begin("elsewhere", "x1", "lease")
    db.attempts.mark_retrying("elsewhere", "x1", "HTTP 503", now - 1, "lease")

    assert scheduler.tick(now)["retries"] == 1
    assert publisher.published == [("elsewhere.parcel_ready", "x1")]


def test_the_sweep_hands_on_a_lost_message_of_an_integration_this_process_does_not_run(
    db: Store, publisher: Publisher
) -> None:
    body = json.dumps({"message_id": "x2", "message": "parcel:ready", "payload": {}})
    accept(db, "elsewhere", "x2", "d", {"message": "parcel:ready", "body": body})
    mark_published(db, "elsewhere", "x2", time.time())
    later = time.time() + db.timing.queued_deadline_seconds + 1

    found = sweep(db, publisher, BrokerView(db.redis), later)

    assert found.republished == ["elsewhere:x2"]  # not forgotten
    assert publisher.published == [("elsewhere.parcel_ready", "x2")]


def queued_in_the_broker(db: Store, queue: str, queued_at: float, name: str = "") -> None:
    """A broker message as kombu's Redis transport keeps it, with the stamp our tasks carry."""
    headers = {"shiphub_queued_at": queued_at, "shiphub_message": name}
    db.redis.lpush(queue, json.dumps({"body": "", "headers": headers}))


def a_push_sent(db: Store, scheduler: Scheduler, message_id: str) -> tuple[str, float]:
    """A finished message whose push task the scheduler sent now: its claim and the time."""
    accept(db, "acme", message_id, "d", {"message": "order:ready", "body": "{}"})
    settle(db, message_id, "succeeded", push=True)
    sent_pushes.clear()
    now = time.time()
    scheduler.push_due(now, BrokerView(db.redis))
    ((_, _, claim),) = sent_pushes
    sent_pushes.clear()
    return claim, now


def test_a_push_task_still_in_its_queue_past_the_deadline_is_not_sent_again(
    db: Store, scheduler: Scheduler
) -> None:
    _, now = a_push_sent(db, scheduler, "q1")
    queued_in_the_broker(db, "hub", now - 5)  # a backlog: older tasks wait ahead of it
    queued_in_the_broker(db, "hub", now)  # its own task, behind them

    for n in range(1, 4):
        scheduler.tick(now + n * (db.timing.queued_deadline_seconds + 1))

    assert sent_pushes == []


def test_a_push_task_the_broker_lost_is_sent_again_once(db: Store, scheduler: Scheduler) -> None:
    first, now = a_push_sent(db, scheduler, "q2")
    queued_in_the_broker(db, "hub", now + 1)  # only tasks published after it: it is gone
    later = now + db.timing.queued_deadline_seconds + 1

    scheduler.tick(later)
    scheduler.tick(later)

    assert [(i, m) for i, m, _ in sent_pushes] == [("acme", "q2")]
    assert sent_pushes[0][2] != first


def test_a_push_task_a_worker_reserved_is_not_sent_again_until_that_worker_is_gone(
    db: Store, scheduler: Scheduler
) -> None:
    claim, now = a_push_sent(db, scheduler, "q3")
    claimed = Claimed("acme", "q3", claim, now)
    later = now + db.timing.queued_deadline_seconds + 1
    db.redis.hset(
        "unacked", "tag", json.dumps([{"headers": {"shiphub_message": push_task_name(claimed)}}])
    )
    db.redis.zadd("unacked_index", {"tag": later - 1})  # reserved a second ago

    scheduler.tick(later)
    assert sent_pushes == []

    scheduler.tick(later + db.timing.queued_deadline_seconds + 1)  # its worker must be dead
    assert [(i, m) for i, m, _ in sent_pushes] == [("acme", "q3")]


def test_every_tick_reads_the_broker_afresh(db: Store, publisher: Publisher) -> None:
    views: list[BrokerView] = []

    def look() -> BrokerView:
        views.append(BrokerView(db.redis))
        return views[-1]

    scheduler = Scheduler(db, Outbox(db.redis, db.timing), publisher, pushes, 60, look)
    scheduler.tick()
    scheduler.tick()

    assert len(views) == 2 and views[0] is not views[1]
