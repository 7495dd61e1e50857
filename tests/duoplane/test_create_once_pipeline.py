"""Create-once at Duoplane, whose creates take no idempotency key, through the real pieces.

A create slower than our timeout, or one in flight when its worker is killed, lands at Duoplane
after the retry has begun. The retry must not look, find nothing yet, and create again: it waits
until the unknown create can no longer land (connect + read timeout +
DUOPLANE_LATE_LANDING_SECONDS from when it was sent) and looks then. After creating it looks
again, and two shipments with the same tracking are answered with a warning naming both.

Each slow test checks its own premise: the retry looked while the slow create was still in
flight (so a handler that trusted that look would have created a second shipment)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.duoplane.conftest import (
    API_KEY,
    PASSWORD,
    PURCHASE_ORDER,
    DuoplaneSimulator,
    confirm_message,
    duoplane_env,
    post,
    vendor_shipment,
)
from tests.support.servers import HubServer
from tests.support.stack import RedisServer, Stack, killable, wait_until
from worker.hub.messages import Answer
from worker.integrations.duoplane.handlers import send_tracking
from worker.integrations.duoplane.mapping import ShipmentConfirm
from worker.integrations.job import Job
from worker.store.bundle import Store

CONNECT, READ, LATE_LANDING = 1, 2, 17
LANDS_WITHIN = CONNECT + READ + LATE_LANDING  # 20 s: every slow create below lands before it
SLOW = 10.0  # a create that times out (after READ s) lands this long after it was sent
SLOWER = 15.0  # a create whose worker is killed lands this long after it was sent


@pytest.fixture
def slow_stack(simulator_process: DuoplaneSimulator, hub: HubServer) -> Iterator[Stack]:
    """A stack on a Redis of its own (no other worker takes its messages) with short Duoplane
    timeouts, a late landing longer than any slow create below, and a dead worker's lease
    running out quickly."""
    simulator_process.reset()
    env = {
        **duoplane_env(simulator_process, hub),
        "DUOPLANE_CONNECT_TIMEOUT_SECONDS": str(CONNECT),
        "DUOPLANE_READ_TIMEOUT_SECONDS": str(READ),
        "DUOPLANE_LATE_LANDING_SECONDS": str(LATE_LANDING),
        "TASK_MAX_ATTEMPTS": "8",
    }
    with killable(env) as running:
        yield running


def shipment_of(body: dict[str, Any]) -> dict[str, Any]:
    return body["payload"]["shipment"]


def moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def looks_while_in_flight(sim: DuoplaneSimulator, landed: dict[str, Any]) -> int:
    """How many searches Duoplane answered that arrived after the first create and before that
    create's shipment (``landed``) was stored: looks that could not see it yet."""
    log = sim.requests()["log"]
    sent = min(entry["at"] for entry in log if entry["route"] == "create")
    stored = moment(landed["created_at"])
    return sum(1 for entry in log if entry["route"] == "list" and sent < entry["at"] < stored)


def until_landed(sent: float, delay: float) -> None:
    """Wait (if need be) until a slow create sent at ``sent`` (monotonic) has surely landed,
    so a second shipment made meanwhile would be seen."""
    time.sleep(max(0.0, sent + delay + 2.0 - time.monotonic()))


def the_one_shipment(sim: DuoplaneSimulator, number: str) -> dict[str, Any]:
    """The shipment at Duoplane with this tracking number, which must be the only one."""
    held = sim.with_tracking(number)
    assert len(held) == 1, f"{len(held)} shipments hold {number}: {[s['id'] for s in held]}"
    return held[0]


def hub_told(hub: HubServer, message_id: str) -> dict[str, Any]:
    """The one answer the hub received for the message."""
    hub.wait_for(message_id, timeout=30)
    (answer,) = hub.received(message_id)
    return answer


def notes(answer: dict[str, Any], level: str) -> list[dict[str, Any]]:
    return [n for n in answer["notifications"] if n["level"] == level]


def test_a_create_slower_than_the_timeout_leaves_one_shipment(
    slow_stack: Stack, simulator_process: DuoplaneSimulator, hub: HubServer, store: str
) -> None:
    """The first create times out after READ s and lands SLOW s after it was sent. A retry at
    the back-off (under a second here) would look, find nothing yet and create again; it is
    scheduled for when the create can no longer land (LANDS_WITHIN), and finds it."""
    sim = simulator_process
    sim.fault("create", "slow", delay_seconds=SLOW)
    body = confirm_message()
    number = shipment_of(body)["tracking"]
    started, posted = time.monotonic(), time.time()
    assert slow_stack.post("/duoplane/send_tracking", body, store=store).status_code == 200

    waiting = slow_stack.wait_status(
        "duoplane", body["message_id"], "retrying", "succeeded", "failed", "dead", timeout=30
    )
    record = slow_stack.wait_status(
        "duoplane", body["message_id"], "succeeded", "failed", "dead", timeout=90
    )
    assert record["status"] == "succeeded", record
    until_landed(started, SLOW)
    landed = the_one_shipment(sim, number)
    assert sim.requests()["requests"]["create"] == 1
    assert waiting["status"] == "retrying", waiting
    assert "did not answer in time" in waiting["last_error"]
    assert moment(waiting["next_attempt_at"]) >= posted + LANDS_WITHIN - 0.5  # the wait
    assert looks_while_in_flight(sim, landed) == 0  # nothing was asked while it could land
    assert record["attempts"] == 2  # the wait costs no attempt
    answer = hub_told(hub, body["message_id"])
    (info,) = notes(answer, "info")
    assert info["subject"] == "Tracking already at Duoplane"
    assert str(landed["id"]) in info["description"]
    assert notes(answer, "warn") == []


def test_a_worker_killed_during_a_slow_create_leaves_one_shipment(
    slow_stack: Stack, simulator_process: DuoplaneSimulator, hub: HubServer, store: str
) -> None:
    """kill -9 while the create is in flight; the second worker starts at once and takes the
    message up long before the create lands (SLOWER s after it was sent)."""
    sim = simulator_process
    sim.fault("create", "slow", delay_seconds=SLOWER)
    body = confirm_message()
    number = shipment_of(body)["tracking"]
    started = time.monotonic()
    assert slow_stack.post("/duoplane/send_tracking", body, store=store).status_code == 200
    wait_until(lambda: sim.requests()["requests"].get("create") == 1, timeout=30)
    slow_stack.services["first"].kill()
    slow_stack.start_worker("second")  # not waiting for the slow create to land

    record = slow_stack.wait_status(
        "duoplane", body["message_id"], "succeeded", "failed", "dead", timeout=120
    )
    assert record["status"] == "succeeded", record
    until_landed(started, SLOWER)
    landed = the_one_shipment(sim, number)
    assert looks_while_in_flight(sim, landed) >= 1  # taken up again before it landed
    assert sim.requests()["requests"]["create"] == 1
    assert len(sim.shipments(PURCHASE_ORDER)) == 1
    # attempt 2 (the dead worker's, taken up) found nothing yet and was scheduled for when the
    # create can no longer land; attempt 3 found it
    assert record["attempts"] == 3
    assert record["last_error"] is None
    assert "may still land" in record["earlier_error"]
    answer = hub_told(hub, body["message_id"])
    (info,) = notes(answer, "info")
    assert str(landed["id"]) in info["description"]


def test_a_shipment_entered_while_ours_was_created_is_answered_with_a_warning(
    duoplane_stack: Stack, sim: DuoplaneSimulator, hub: HubServer, store: str
) -> None:
    """A vendor enters the same tracking while our create is on its way (our look before it
    found nothing): the look after creating finds both, and the answer names both."""
    sim.fault("create", "slow", delay_seconds=5.0)  # well inside READ_TIMEOUT (10 s)
    body = confirm_message()
    tracking = shipment_of(body)["tracking_numbers"]
    assert duoplane_stack.post("/duoplane/send_tracking", body, store=store).status_code == 200
    wait_until(lambda: sim.requests()["requests"].get("create") == 1, timeout=30)
    vendors = vendor_shipment(sim, tracking)

    record = duoplane_stack.wait_status(
        "duoplane", body["message_id"], "succeeded", "failed", "dead", timeout=60
    )
    assert record["status"] == "succeeded", record
    (ours,) = [s["id"] for s in sim.with_tracking(tracking[0]) if s["id"] != vendors]
    answer = hub_told(hub, body["message_id"])
    (info,) = notes(answer, "info")
    assert info["subject"] == "Tracking sent to Duoplane"
    assert str(ours) in info["description"]
    (warn,) = notes(answer, "warn")
    assert str(ours) in warn["description"] and str(vendors) in warn["description"]
    assert str(PURCHASE_ORDER) in warn["description"]
    assert all(n in warn["description"] for n in tracking)
    assert record["answer"]["notifications"] == answer["notifications"]


def test_two_shipments_already_holding_the_tracking_are_answered_with_a_warning(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    body = confirm_message()
    tracking = shipment_of(body)["tracking_numbers"]
    first, second = vendor_shipment(sim, tracking), vendor_shipment(sim, tracking)

    response = post(duoplane_stack, "send_tracking", body, store)
    assert response.status_code == 200, response.text
    assert sim.requests()["requests"]["create"] == 2  # the test's own two, nothing more
    answer = response.json()
    (info,) = notes(answer, "info")
    assert info["subject"] == "Tracking already at Duoplane"
    (warn,) = notes(answer, "warn")
    assert str(first) in warn["description"] and str(second) in warn["description"]
    assert str(PURCHASE_ORDER) in warn["description"]


def test_a_redelivered_task_answers_the_same_warning_without_calling_duoplane(
    sim: DuoplaneSimulator, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warning is part of the result the create's guard keeps: a task delivered again
    after the create finished (its worker died before the answer was stored) answers the same
    without a request to Duoplane. The handler itself, on a real Redis and the simulator."""
    monkeypatch.setenv("DUOPLANE_API_URL", sim.url)
    body = confirm_message()
    tracking = shipment_of(body)["tracking_numbers"]
    for _ in range(2):
        vendor_shipment(sim, tracking)
    db = Store.on(redis_server.client())

    def attempt(number: int) -> Answer:
        return send_tracking(
            Job(
                integration="duoplane",
                message_id=body["message_id"],
                message="shipment:confirm",
                payload=ShipmentConfirm.model_validate(body["payload"]),
                parameters={"api_key": API_KEY, "password": PASSWORD},
                store=f"store-{body['message_id']}",
                attempt=number,
                db=db,
            )
        )

    first = attempt(1)
    calls = sim.requests()["total"]
    again = attempt(2)
    assert sim.requests()["total"] == calls
    assert again.notifications == first.notifications
    assert [n.level for n in first.notifications] == ["info", "warn"]


def test_a_create_refused_for_the_rate_limit_is_sent_again_after_its_wait_alone(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    """A 429 is Duoplane refusing the request before looking at it: the create was not made,
    so its retry comes after the header's wait, not after LANDS_WITHIN (15 s here)."""
    sim.fault("create", "rate_limited", retry_after_seconds=1.0)
    body = confirm_message()
    started = time.monotonic()

    response = post(duoplane_stack, "send_tracking", body, store)

    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 10
    assert sim.requests()["requests"]["create"] == 2  # refused, then made
    the_one_shipment(sim, shipment_of(body)["tracking"])
    record = duoplane_stack.record("duoplane", body["message_id"])
    assert (record["status"], record["attempts"]) == ("succeeded", 2)
    assert record["last_error"] is None
    assert "429" in record["earlier_error"] or "limiting" in record["earlier_error"]
