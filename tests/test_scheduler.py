"""The scheduler's tick (fakeredis with Lua): due retries are published once, due pushes are
claimed once, the sweep runs on one worker per interval."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import Publisher, settle
from worker.integrations import registry
from worker.pipeline.scheduler import Scheduler
from worker.pipeline.watchdog import sweep
from worker.store.outbox import Outbox
from worker.store.records import Records
from worker.tasks.broker import BrokerView


@pytest.fixture
def scheduler(records: Records, publisher: Publisher) -> Scheduler:
    registry.load("tests.support.acme")
    return Scheduler(
        records,
        Outbox(records.redis, records.timing),
        publisher,
        pushes,
        60,
        BrokerView(records.redis),
    )


sent_pushes: list[tuple[str, str, str]] = []


def pushes(integration: str, message_id: str, claim: str) -> None:
    sent_pushes.append((integration, message_id, claim))


def retrying(records: Records, message_id: str, at: float) -> None:
    body = json.dumps({"message_id": message_id, "message": "order:ready", "payload": {}})
    records.accept("acme", message_id, "d", {"message": "order:ready", "body": body})
    records.begin("acme", message_id, "lease")
    records.mark_retrying("acme", message_id, "HTTP 503", at, "lease")


def test_a_due_retry_is_published_once_with_the_stamp_the_record_keeps(
    records: Records, publisher: Publisher, scheduler: Scheduler
) -> None:
    now = time.time()
    retrying(records, "r1", now - 1)
    retrying(records, "r2", now + 60)

    assert scheduler.tick(now)["retries"] == 1
    assert scheduler.tick(now)["retries"] == 0  # taken off the due set
    assert publisher.published == [("acme.order_ready", "r1")]
    assert records.get("acme", "r1").queued_at == pytest.approx(now)


def test_a_retry_whose_publish_fails_goes_back_in_line(
    records: Records, publisher: Publisher, scheduler: Scheduler
) -> None:
    now = time.time()
    retrying(records, "r3", now - 1)
    publisher.fail = True

    assert scheduler.tick(now)["retries"] == 0
    publisher.fail = False
    assert scheduler.tick(now + 2)["retries"] == 1


def test_a_due_push_is_claimed_and_sent_once(records: Records, scheduler: Scheduler) -> None:
    records.accept("acme", "p1", "d", {"message": "order:ready", "body": "{}"})
    settle(records, "p1", "succeeded", push=True)
    sent_pushes.clear()

    scheduler.tick()
    scheduler.tick()

    assert [(i, m) for i, m, _ in sent_pushes] == [("acme", "p1")]


def test_one_worker_sweeps_per_interval(records: Records, publisher: Publisher) -> None:
    outbox = Outbox(records.redis, records.timing)
    first = Scheduler(records, outbox, publisher, pushes, 60, BrokerView(records.redis))
    second = Scheduler(records, outbox, publisher, pushes, 60, BrokerView(records.redis))

    assert "republished" in first.tick()
    assert "republished" not in second.tick()


def test_a_due_retry_of_an_integration_this_process_does_not_run_is_handed_on(
    records: Records, publisher: Publisher, scheduler: Scheduler
) -> None:
    """Published to its integration's queue by name, for the workers that run it: never
    dropped (nor left to a watchdog that would forget it)."""
    now = time.time()
    body = json.dumps({"message_id": "x1", "message": "parcel:ready", "payload": {}})
    records.accept("elsewhere", "x1", "d", {"message": "parcel:ready", "body": body})
    records.begin("elsewhere", "x1", "lease")
    records.mark_retrying("elsewhere", "x1", "HTTP 503", now - 1, "lease")

    assert scheduler.tick(now)["retries"] == 1
    assert publisher.published == [("elsewhere.parcel_ready", "x1")]


def test_the_sweep_hands_on_a_lost_message_of_an_integration_this_process_does_not_run(
    records: Records, publisher: Publisher
) -> None:
    body = json.dumps({"message_id": "x2", "message": "parcel:ready", "payload": {}})
    records.accept("elsewhere", "x2", "d", {"message": "parcel:ready", "body": body})
    records.mark_published("elsewhere", "x2", time.time())
    later = time.time() + records.timing.queued_deadline_seconds + 1

    found = sweep(records, publisher, BrokerView(records.redis), later)

    assert found.republished == ["elsewhere:x2"]  # not forgotten
    assert publisher.published == [("elsewhere.parcel_ready", "x2")]
