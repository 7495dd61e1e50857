"""Handling decisions that need no provider: exclusive polls, leases, finished records, what a
failure becomes (fakeredis with Lua)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import redis
from pydantic import BaseModel

from tests.conftest import settle
from tests.support.records import accept, mark_published
from worker.basics.errors import TransientError, WaitUntil
from worker.basics.settings import Settings
from worker.hub.messages import Answer
from worker.integrations import registry
from worker.integrations.job import Job
from worker.pipeline.handling import handle
from worker.store.bundle import Store
from worker.store.outbox import Claimed, Outbox
from worker.store.schema import DUE, lease_key, service_lock_key


class Empty(BaseModel):
    pass


behaviour: dict[str, Callable[[Job[Empty]], Answer]] = {}
unit = registry.register(registry.Integration("unit", "Unit", "Handlers a test scripts"))


@unit.service("work", message="unit:work", payload=Empty)
def work(job: Job[Empty]) -> Answer:
    return behaviour["work"](job)


@pytest.fixture
def acme() -> registry.Integration:
    registry.load("tests.support.acme")
    return registry.integrations()["acme"]


@pytest.fixture
def outbox(db: Store) -> Outbox:
    return Outbox(db.redis, db.timing)


def no_push(claimed: Claimed) -> None:
    """These attempts push nothing now: no HUB_PUSH_URL is set."""


def recorded(
    db: Store, message_id: str, message: str, store: str = "shop", integration: str = "acme"
) -> None:
    body = {"message_id": message_id, "message": message, "payload": {}}
    fields = {"message": message, "store": store, "body": json.dumps(body)}
    accept(db, integration, message_id, "digest", fields)
    mark_published(db, integration, message_id, time.time())


def run_unit(db: Store, outbox: Outbox, message_id: str, **settings: object):  # type: ignore[no-untyped-def]
    return handle(
        unit,
        unit.handler("unit:work"),
        message_id,
        db,
        outbox,
        Settings(**settings),
        send_push=no_push,
    )


def test_a_poll_waits_in_the_due_set_while_another_poll_of_the_same_store_runs(
    db: Store, outbox: Outbox, acme: registry.Integration
) -> None:
    recorded(db, "p1", "acme:shipments:poll")
    db.locks.try_lock(service_lock_key("acme", "tracking", "shop"), "another-poll")

    handled = handle(
        acme,
        acme.handler("acme:shipments:poll"),
        "p1",
        db,
        outbox,
        Settings(),
        send_push=no_push,
    )

    assert handled.outcome == "waiting"
    assert handled.next_at is not None and handled.next_at - time.time() <= 5.5
    assert db.redis.zscore(DUE, "acme:p1") == pytest.approx(handled.next_at)
    record = db.messages.get("acme", "p1")
    assert (record.status, record.fields["attempts"]) == ("queued", "0")


def test_a_message_held_by_another_worker_is_left_to_it(
    db: Store, outbox: Outbox, acme: registry.Integration
) -> None:
    recorded(db, "o1", "order:ready")
    db.attempts.begin("acme", "o1", "other-worker")

    handled = handle(
        acme, acme.handler("order:ready"), "o1", db, outbox, Settings(), send_push=no_push
    )

    assert handled.outcome == "busy"
    assert db.messages.get("acme", "o1").fields["attempts"] == "1"  # only the holder's attempt
    assert db.redis.zscore(DUE, "acme:o1") is None  # no second chain of retries


def test_a_finished_message_is_not_handled_again(
    db: Store, outbox: Outbox, acme: registry.Integration
) -> None:
    recorded(db, "o2", "order:ready")
    settle(db, "o2", "succeeded")

    handled = handle(
        acme, acme.handler("order:ready"), "o2", db, outbox, Settings(), send_push=no_push
    )

    assert handled.outcome == "finished"
    assert db.messages.get("acme", "o2").fields["attempts"] == "1"


def test_a_transient_error_schedules_a_retry_in_redis_and_releases_the_lease(
    db: Store, outbox: Outbox
) -> None:
    recorded(db, "u1", "unit:work", integration="unit")

    def fail(job: Job[Empty]) -> Answer:
        raise TransientError("Unit answered HTTP 503", ["down"], retry_after=20)

    behaviour["work"] = fail

    handled = run_unit(db, outbox, "u1", retry_max_seconds=60)

    assert handled.outcome == "retrying"
    assert handled.next_at == pytest.approx(time.time() + 20, abs=1)
    assert db.redis.zscore(DUE, "unit:u1") == pytest.approx(handled.next_at)
    assert db.messages.get("unit", "u1").status == "retrying"
    assert not db.redis.exists(lease_key("unit", "u1"))


def test_a_redis_error_under_the_handler_is_retried_not_escaped(db: Store, outbox: Outbox) -> None:
    recorded(db, "u2", "unit:work", integration="unit")

    def redis_fails(job: Job[Empty]) -> Answer:
        raise redis.ConnectionError("Connection refused")

    behaviour["work"] = redis_fails

    handled = run_unit(db, outbox, "u2")

    assert handled.outcome == "retrying"
    assert "ConnectionError" in db.messages.get("unit", "u2").fields["last_error"]


def test_when_the_budget_is_spent_the_message_is_dead_with_one_error(
    db: Store, outbox: Outbox
) -> None:
    recorded(db, "u3", "unit:work", integration="unit")

    def fail(job: Job[Empty]) -> Answer:
        raise TransientError("Unit answered HTTP 503", ["down"])

    behaviour["work"] = fail

    handled = run_unit(db, outbox, "u3", task_max_attempts=1)

    record = db.messages.get("unit", "u3")
    assert (handled.outcome, record.status) == ("dead", "dead")
    notes = record.answer["notifications"]
    assert [n["level"] for n in notes] == ["error"]
    assert notes[0]["subject"].startswith("Gave up after 1 attempts")
    assert db.listings.dead("messages")[0][:2] == ("unit", "u3")


def test_an_answer_with_error_notifications_is_a_failure(db: Store, outbox: Outbox) -> None:
    recorded(db, "u4", "unit:work", integration="unit")
    behaviour["work"] = lambda job: job.answer().notify("error", "Refused", "No such SKU")

    handled = run_unit(db, outbox, "u4")

    assert (handled.outcome, handled.detail) == ("failed", "No such SKU")
    assert db.messages.get("unit", "u4").status == "failed"


def test_a_handler_that_outlived_its_lease_writes_nothing(db: Store, outbox: Outbox) -> None:
    recorded(db, "u5", "unit:work", integration="unit")

    def stuck(job: Job[Empty]) -> Answer:
        # Meanwhile its lease ran out and another worker finished the message.
        db.redis.delete(lease_key("unit", "u5"))
        db.attempts.begin("unit", "u5", "other")
        db.attempts.finish(
            "unit",
            "u5",
            "succeeded",
            {"message_id": "u5"},
            error=None,
            cursor={},
            push=False,
            lease_token="other",
        )
        raise TransientError("Unit answered HTTP 503", ["late"])

    behaviour["work"] = stuck

    handled = run_unit(db, outbox, "u5")

    assert handled.outcome == "stale"
    assert db.messages.get("unit", "u5").status == "succeeded"
    assert db.redis.zscore(DUE, "unit:u5") is None


def test_a_watched_value_changed_under_the_handler_runs_it_again_on_the_new_value(
    db: Store, outbox: Outbox
) -> None:
    """Two messages reporting one shipment at once: the one whose answer is stored second
    read a value the first changed, so its answer is thrown away and it runs again."""

    def report(job: Job[Empty]) -> Answer:
        (last,) = job.watch("shipment", "S1")
        answer = job.answer()
        if last != "picked_up":
            answer.notify("info", "reported picked_up")
            job.keep("shipment", "S1", "picked_up")
            if job.attempt == 1:  # another message reports the same status meanwhile
                db.redis.set("shiphub:memory:unit:shop:shipment:S1", json.dumps("picked_up"))
        return answer

    behaviour["work"] = report
    recorded(db, "w1", "unit:work", integration="unit")

    first = run_unit(db, outbox, "w1")
    assert first.outcome == "retrying"
    assert first.next_at is not None and first.next_at <= time.time()
    assert db.messages.get("unit", "w1").answer is None

    db.redis.zrem(DUE, "unit:w1")
    second = run_unit(db, outbox, "w1")
    assert second.outcome == "succeeded"
    assert (
        db.messages.get("unit", "w1").answer["notifications"] == []
    )  # reported once, by the other


def test_a_handler_that_must_wait_ends_its_attempt_without_failing_and_comes_back_then(
    db: Store, outbox: Outbox
) -> None:
    """``WaitUntil`` (a booked pace): the message is in the due set for then, queued, its
    attempt given back and its lease released; a copy published early does nothing; once it is
    due it runs, as its first attempt, and no once-mark of the call that did not go is left."""
    recorded(db, "w1", "unit:work", integration="unit")
    at = time.time() + 1.0  # past EARLY_START_SECONDS: a copy now is early
    calls: list[str] = []

    def must_wait(job: Job[Empty]) -> Answer:
        def paced(_key: str) -> str:
            if time.time() < at:
                raise WaitUntil(at, "its pace")
            calls.append(job.message_id)
            return "sent"

        job.once("create", paced)
        return job.answer()

    behaviour["work"] = must_wait

    handled = run_unit(db, outbox, "w1")

    assert (handled.outcome, handled.next_at) == ("waiting", at)
    assert db.redis.zscore(DUE, "unit:w1") == pytest.approx(at)
    record = db.messages.get("unit", "w1")
    assert (record.status, record.fields["attempts"]) == ("queued", "0")
    assert db.redis.get(lease_key("unit", "w1")) is None
    assert db.once.state("unit", "w1", "create") is None  # not sent: nothing in flight
    assert run_unit(db, outbox, "w1").outcome == "early"  # a stray copy before its time

    time.sleep(max(0.0, at - time.time()))
    assert run_unit(db, outbox, "w1").outcome == "succeeded"
    assert calls == ["w1"]
    assert db.messages.get("unit", "w1").fields["attempts"] == "1"


def test_an_integration_at_its_concurrency_limit_defers_the_message_without_starting_it(
    db: Store, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unit, "max_concurrency", 1)
    recorded(db, "c1", "unit:work", integration="unit")
    recorded(db, "c2", "unit:work", integration="unit")
    inner: list[str] = []

    def nested(job: Job[Empty]) -> Answer:
        if job.message_id == "c1":  # while c1 runs, c2 finds no slot
            inner.append(run_unit(db, outbox, "c2").outcome)
        return job.answer()

    behaviour["work"] = nested

    assert run_unit(db, outbox, "c1").outcome == "succeeded"
    assert inner == ["waiting"]
    assert db.redis.zscore(DUE, "unit:c2") is not None
    assert db.messages.get("unit", "c2").fields["attempts"] == "0"  # not started
    assert run_unit(db, outbox, "c2").outcome == "succeeded"  # the slot is free again
