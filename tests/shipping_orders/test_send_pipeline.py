"""Sending shipments through the real pipeline when the API fails, refuses, answers what we
cannot read, or the worker dies: created once, answered with the API's own words, never a
second order. Every test runs in the seed's shapes and in the vendor's (``conftest.sim``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.shipping_orders.conftest import (
    SHAPES,
    ShippingOrdersSimulator,
    confirms,
    notes,
    ready_message,
    shipments_told,
    so_env,
    updates,
)
from tests.support.servers import HubServer
from tests.support.stack import Stack, killable, wait_until


def send(stack: Stack, body: dict, store: str):  # type: ignore[no-untyped-def]
    return stack.post("/shipping_orders/send_shipment", body, wait=30, store=store)


def number_of(body: dict) -> str:
    return body["payload"]["shipment"]["number"]


def test_a_create_whose_answer_was_lost_is_recognised_and_not_made_twice(
    so_stack: Stack, sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    sim.fault("create", "lost_answer")  # stored at the API, answered 502
    body = ready_message()
    response = send(so_stack, body, store)
    assert response.status_code == 200, response.text
    number = number_of(body)
    assert len(sim.orders_numbered(number)) == 1
    assert sim.requests_to("create") == 1  # looked up once it could not land: found, not made
    assert sim.requests_to("get") >= 1
    record = so_stack.record("shipping_orders", body["message_id"])
    # 2, or 3 when the create's webhook told the shipment while the second ran (run again)
    assert record["attempts"] >= 2
    wait_until(lambda: updates(hub, number) == [sim.first_answered])


def test_the_same_shipment_sent_again_by_another_message_is_not_a_second_order(
    so_stack: Stack, sim: ShippingOrdersSimulator, store: str
) -> None:
    first = ready_message()
    assert send(so_stack, first, store).status_code == 200
    again = json.loads(json.dumps(first))
    again["message_id"] = first["message_id"] + "-again"
    assert send(so_stack, again, store).status_code == 200
    assert len(sim.orders_numbered(number_of(first))) == 1

    changed = json.loads(json.dumps(again))
    changed["message_id"] += "-changed"
    changed["payload"]["shipment"]["shipping_address"]["address1"] = "7 Elm Rd."
    refused = send(so_stack, changed, store)
    assert refused.status_code == 500
    assert "7 Elm Rd." in json.dumps(refused.json())


@pytest.mark.parametrize("kind", ["PLACE_ORDER_FAILED", "UNMAPPED_ERROR", "TOO_MANY_REQUESTS"])
def test_transient_refusals_are_retried_until_the_order_is_placed(
    so_stack: Stack, sim: ShippingOrdersSimulator, store: str, kind: str
) -> None:
    sim.fault("create", "error", type=kind)
    body = ready_message()
    assert send(so_stack, body, store).status_code == 200
    assert sim.requests_to("create") == 2  # refused, then placed
    # 2, or 3 when the create's webhook told the shipment first (the answer is made again)
    assert so_stack.record("shipping_orders", body["message_id"])["attempts"] >= 2
    assert len(sim.orders_numbered(number_of(body))) == 1


def test_no_provider_matched_is_a_hard_error_in_the_apis_words(
    so_stack: Stack, sim: ShippingOrdersSimulator, store: str
) -> None:
    sim.control(
        "POST",
        "locations",
        {"locationExternalId": "capped", "rules": {"strategy": "cheapest", "price_cap": 0.5}},
    )
    body = ready_message()
    body["payload"]["parameters"] = [
        {"name": "shipping_orders.location_external_id", "value": "capped"}
    ]
    refused = send(so_stack, body, store)
    assert refused.status_code == 500
    (error,) = [n for n in refused.json()["notifications"] if n["level"] == "error"]
    assert (
        "NO_PROVIDER_MATCHED" in error["subject"] or "No Provider matched" in error["description"]
    )
    record = so_stack.record("shipping_orders", body["message_id"])
    assert record["attempts"] == 1  # hard: not retried
    assert sim.orders_numbered(number_of(body)) == []


def test_a_wrong_key_in_the_message_is_refused_without_echoing_it(
    so_stack: Stack, sim: ShippingOrdersSimulator, store: str
) -> None:
    body = ready_message()
    body["payload"]["parameters"] = [{"name": "api_key", "value": "wrong-secret-key-123"}]
    refused = send(so_stack, body, store)
    assert refused.status_code == 500
    text = json.dumps(refused.json())
    assert "check api_key and tenant_id" in text
    assert "wrong-secret-key-123" not in text


def test_a_create_answered_request_received_is_a_success_and_its_dispatch_comes_later(
    so_stack: Stack, vendor_sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    """The vendor's create answers 201 REQUEST_RECEIVED with no provider, no tracking and empty
    times: the send succeeds at once, says the order was received and claims nothing more;
    the dispatch reaches the hub by webhook, with the provider and tracking."""
    sim = vendor_sim
    body = ready_message()
    number = number_of(body)
    answer = send(so_stack, body, store)

    assert answer.status_code == 200, answer.text
    assert sim.requests_to("create") == 1
    assert any("received" in n and "REQUEST_RECEIVED" in n for n in notes(answer.json(), "info"))
    assert not notes(answer.json(), "warn")
    # Told once, by this answer or by the create's webhook if that came first.
    wait_until(lambda: len(shipments_told(hub, number, "REQUEST_RECEIVED")) == 1)
    (told,) = shipments_told(hub, number, "REQUEST_RECEIVED")
    assert told["status"] == "pending"
    assert told["provider"] is told["carrier"] is told["tracking"] is told["tracking_url"] is None
    assert told["tracking_numbers"] == [] and told["status_at"]

    sim.dispatch(number)
    wait_until(
        lambda: updates(hub, number) == [*sim.before_dispatch, ("dispatched", "ORDER_DISPATCHED")]
    )
    (dispatched,) = shipments_told(hub, number, "ORDER_DISPATCHED")
    order = sim.order(number)["order"]
    assert dispatched["carrier"] == dispatched["provider"] == order["provider"] != ""
    assert dispatched["tracking"] == str(order["trackingNumber"]) != ""
    assert dispatched["tracking_url"] == order["trackingUrl"]
    assert len(sim.orders_numbered(number)) == 1


@pytest.mark.parametrize(
    ("odd", "unreadable"),
    [
        ({"set": {"status": {"code": 7}, "orderExternalId": None}}, ["status", "orderExternalId"]),
        (
            {"set": {"provider": ["UPS"], "lastUpdatedAt": "yesterday"}},
            ["provider", "lastUpdatedAt"],
        ),
        ({"remove": ["status", "orderExternalId"]}, ["status", "orderExternalId"]),
    ],
    ids=["garbled-id-and-status", "garbled-fields", "no-id-nor-status"],
)
def test_a_2xx_create_answer_that_cannot_be_read_is_not_created_again(
    so_stack: Stack,
    sim: ShippingOrdersSimulator,
    hub: HubServer,
    store: str,
    odd: dict,
    unreadable: list[str],
) -> None:
    """The API stored the order and answered 2xx with what we cannot read: a success with a
    warning naming the shipment and the fields, never a second create."""
    sim.fault("create", "odd_answer", **odd)
    body = ready_message()
    number = number_of(body)
    answer = send(so_stack, body, store)

    assert answer.status_code == 200, answer.text
    assert sim.requests_to("create") == 1  # an attempt may be repeated (a webhook told first)
    assert len(sim.orders_numbered(number)) == 1
    (warning,) = notes(answer.json(), "warn")
    assert number in warning and all(name in warning for name in unreadable), warning
    # A webhook tells the status the answer could not: the order goes on being reported.
    sim.dispatch(number)
    wait_until(lambda: ("dispatched", "ORDER_DISPATCHED") in updates(hub, number))


@pytest.fixture
def kill_stack(simulator_process: ShippingOrdersSimulator, hub: HubServer) -> Iterator[Stack]:
    with killable(so_env(simulator_process, hub)) as running:
        yield running


@pytest.mark.parametrize("shape", SHAPES)
def test_a_worker_killed_while_the_api_stores_the_order_gives_one_order_and_one_answer(
    kill_stack: Stack,
    simulator_process: ShippingOrdersSimulator,
    hub: HubServer,
    store: str,
    shape: str,
) -> None:
    sim = simulator_process.prepare(shape, webhook_url=None)
    sim.fault("create", "slow", delay_seconds=2.0)  # the API stores it after the worker died
    body = ready_message()
    number = number_of(body)
    assert kill_stack.post("/shipping_orders/send_shipment", body, store=store).status_code == 200
    wait_until(lambda: sim.requests_to("create") == 1, timeout=20)
    kill_stack.services["first"].kill()  # kill -9 while the create is in flight
    wait_until(lambda: len(sim.orders_numbered(number)) == 1, timeout=10)
    kill_stack.start_worker("second")

    record = kill_stack.wait_status("shipping_orders", body["message_id"], "succeeded", timeout=90)
    # 2; or 3 when the dead worker's message was taken up before its create could no longer land
    # (LANDS_WITHIN): that attempt waits, scheduled, and the next one looks
    assert record["attempts"] in (2, 3)
    assert sim.requests_to("create") == 1  # found by the look, not made again
    assert len(sim.orders_numbered(number)) == 1
    wait_until(lambda: updates(hub, number) == [sim.first_answered])
    time.sleep(1)
    assert updates(hub, number) == [sim.first_answered]
    assert confirms(hub, number) == []
