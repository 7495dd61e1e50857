"""One order at Dotcom however its creation goes (real stack and simulator). Dotcom takes no
idempotency key and does not document what it does with a number it holds (the simulator stores
it again, the worst case): a create whose outcome is unknown (it timed out, its worker was
killed) is looked up with GET /order/{order-number} once it can no longer land, and made again
only if Dotcom does not hold it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.dotcom.conftest import (
    LANDS_WITHIN,
    SENT,
    DotcomSimulator,
    dotcom_env,
    post,
    shipment_message,
)
from tests.dotcom.test_send_shipment_pipeline import orders_for
from tests.support.servers import HubServer
from tests.support.stack import Stack, killable, wait_until

SLOW = 6.0  # DOTCOM_READ_TIMEOUT_SECONDS is 5; it lands before LANDS_WITHIN (8)


def test_a_create_slower_than_the_timeout_leaves_one_order(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    body = shipment_message()
    number = body["payload"]["shipment"]["number"]
    sim.control("POST", "faults", {"kind": "slow", "route": "order", "delay_seconds": SLOW})

    response = post(dotcom_stack, "send_shipment", body, store)

    assert response.status_code == 200, response.text
    assert response.json()["notifications"] == [
        {"level": "info", "subject": SENT, "description": SENT}
    ]
    assert len(orders_for(sim, number)) == 1  # the slow one, found: not made again
    report = sim.orders()
    assert (report["order_requests"], report["order_status_requests"]) == (1, 1)
    record = dotcom_stack.record("dotcom", body["message_id"])
    assert (record["status"], record["attempts"]) == ("succeeded", 2)
    # Cut off by its read timeout, or by the attempt's deadline (TASK_TIME_LIMIT_SECONDS, 4 s)
    assert record["last_error"] is None
    assert any(w in record["earlier_error"] for w in ("did not answer in time", "ran out of time"))


@pytest.fixture
def kill_stack(simulator_process: DotcomSimulator, hub: HubServer) -> Iterator[Stack]:
    with killable(dotcom_env(simulator_process, hub)) as running:
        yield running


def test_a_worker_killed_during_a_slow_create_leaves_one_order(
    kill_stack: Stack, simulator_process: DotcomSimulator, store: str
) -> None:
    sim = simulator_process
    sim.reset()
    sim.control("POST", "faults", {"kind": "slow", "route": "order", "delay_seconds": SLOW})
    body = shipment_message()
    number = body["payload"]["shipment"]["number"]
    assert kill_stack.post("/dotcom/send_shipment", body, store=store).status_code == 200
    wait_until(lambda: sim.orders()["order_requests"] == 1, timeout=20)
    sent_at = time.monotonic()
    kill_stack.services["first"].kill()  # kill -9 while Dotcom is still storing the order
    assert orders_for(sim, number) == []
    kill_stack.start_worker("second")  # at once: the look must wait for the slow create

    record = kill_stack.wait_status("dotcom", body["message_id"], "succeeded", timeout=60)

    assert len(orders_for(sim, number)) == 1
    report = sim.orders()
    assert (report["order_requests"], report["order_status_requests"]) == (1, 1)
    assert record["attempts"] >= 2
    assert time.monotonic() - sent_at >= LANDS_WITHIN - 1
