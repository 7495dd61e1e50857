"""Handling decisions that need no provider: exclusive polls, leases, finished records."""

from __future__ import annotations

import json

import pytest

from worker import registry
from worker.handling import RetryLater, handle
from worker.records import Records, service_lock_key
from worker.settings import Settings


@pytest.fixture
def acme() -> registry.Integration:
    registry.load("tests.support.acme")
    return registry.integrations()["acme"]


def recorded(records: Records, message_id: str, message: str, store: str = "shop") -> None:
    body = {"message_id": message_id, "message": message, "payload": {}}
    records.accept(
        "acme",
        message_id,
        "digest",
        "token",
        {
            "integration": "acme",
            "message_id": message_id,
            "message": message,
            "store": store,
            "body": json.dumps(body),
        },
    )
    records.mark_published("acme", message_id)


def test_a_poll_waits_while_another_poll_of_the_same_store_runs(
    records: Records, acme: registry.Integration
) -> None:
    recorded(records, "p1", "acme:shipments:poll")
    records.try_lock(service_lock_key("acme", "tracking", "shop"), "another-poll")

    outcome = handle(acme, acme.handler("acme:shipments:poll"), "p1", records, Settings())

    assert isinstance(outcome, RetryLater)
    assert outcome.delay <= 5.5
    record = records.get("acme", "p1")
    assert (record.status, record.fields["attempts"]) == ("queued", "0")


def test_a_message_held_by_another_worker_is_retried_after_its_lease(
    records: Records, acme: registry.Integration
) -> None:
    recorded(records, "o1", "order:ready")
    records.begin("acme", "o1", "other-worker")

    outcome = handle(acme, acme.handler("order:ready"), "o1", records, Settings())

    assert isinstance(outcome, RetryLater)
    assert 0.5 < outcome.delay <= records.timing.lease_seconds + 0.5
    assert records.get("acme", "o1").fields["attempts"] == "1"  # only the holder's attempt


def test_a_finished_message_is_not_handled_again(
    records: Records, acme: registry.Integration
) -> None:
    recorded(records, "o2", "order:ready")
    records.finish(
        "acme",
        "o2",
        "succeeded",
        {"message_id": "o2"},
        error=None,
        cursor={},
        push=False,
        lease_token=None,
    )

    assert handle(acme, acme.handler("order:ready"), "o2", records, Settings()) is None
    assert records.get("acme", "o2").fields["attempts"] == "0"
