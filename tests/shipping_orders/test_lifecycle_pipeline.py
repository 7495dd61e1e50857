"""A shipment through the Shipping Order API end to end, through real processes: the receiver,
a Celery worker, redis-server, the API's simulator (its orchestration, its lifecycle clock, its
signed webhooks to the receiver) and a hub receiving pushes."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import requests

from tests.shipping_orders.conftest import (
    WEBHOOK_SECRET,
    ShippingOrdersSimulator,
    about,
    confirms,
    hub_messages,
    poll_message,
    ready_message,
    updates,
)
from tests.support.servers import HubServer
from tests.support.stack import Stack, wait_until

LIFECYCLE = [
    ("dispatched", "ORDER_DISPATCHED"),
    ("assigned", "ORDER_ASSIGNED"),
    ("assigned", "PICKUP_STARTED"),
    ("picked_up", "PICKUP_COMPLETED"),
    ("in_transit", "IN_TRANSIT"),
    ("out_for_delivery", "OUT_FOR_DELIVERY"),
    ("delivered", "ORDER_DELIVERED"),
]


def send(stack: Stack, store: str, **shipment: object) -> tuple[str, dict]:
    body = ready_message(**shipment)
    response = stack.post("/shipping_orders/send_shipment", body, wait=20, store=store)
    assert response.status_code == 200, response.text
    return body["payload"]["shipment"]["number"], response.json()


def poll(stack: Stack, store: str) -> dict:
    response = stack.post("/shipping_orders/tracking", poll_message(), wait=20, store=store)
    assert response.status_code == 200, response.text
    return response.json()


def reaches(hub: HubServer, number: str, count: int, timeout: float = 20) -> None:
    wait_until(lambda: len(updates(hub, number)) >= count, timeout=timeout)


def test_a_shipment_is_created_once_and_its_lifecycle_reaches_the_hub_once_in_order(
    so_stack: Stack, sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    number, answer = send(so_stack, store)
    assert len(sim.orders_numbered(number)) == 1
    notes = [n["description"] for n in answer["notifications"]]
    tracking = sim.order(number)["order"]["trackingId"]
    assert any(f"tracking {tracking}" in n for n in notes), notes
    reaches(hub, number, 1)

    # Every later step: by webhook (some repeated by the API), by poll, by both, or by poll
    # alone when the webhook is lost.
    for step, (_, raw) in enumerate(LIFECYCLE[1:], start=2):
        if step == 3:
            sim.fault("webhook", "duplicate")
        if step in (4, 6):
            sim.fault("webhook", "drop")
        sim.advance(number, raw)
        if step in (4, 5, 6):
            poll(so_stack, store)
        reaches(hub, number, step)
    poll(so_stack, store)  # nothing new: nothing reported again
    time.sleep(1.5)

    assert updates(hub, number) == LIFECYCLE
    sequences = [
        m["payload"]["shipment"]["sequence"]
        for m in hub_messages(hub, number)
        if m["message"] == "shipment:update"
    ]
    assert sequences == list(range(1, len(LIFECYCLE) + 1))
    (confirm,) = confirms(hub, number)
    order = sim.order(number)["order"]
    assert confirm["tracking"] == order["trackingId"]
    assert confirm["carrier"] == order["provider"]["name"]
    assert confirm["status"] == "shipped"
    assert len(sim.orders_numbered(number)) == 1
    first = next(m for m in hub_messages(hub, number) if m["message"] == "shipment:update")
    shipment = first["payload"]["shipment"]
    assert shipment["provider"] and shipment["service"] and shipment["tracking"]


def test_a_late_webhook_never_moves_a_shipment_back(
    so_stack: Stack, sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    number, _ = send(so_stack, store)
    reaches(hub, number, 1)
    sim.fault("webhook", "delay", delay_seconds=2.0)
    sim.advance(number, "ORDER_ASSIGNED")  # its webhook is held back...
    sim.advance(number, "PICKUP_STARTED")
    sim.advance(number, "PICKUP_COMPLETED")  # ...while the later ones arrive first
    wait_until(lambda: ("picked_up", "PICKUP_COMPLETED") in updates(hub, number), timeout=20)
    wait_until(
        lambda: any(w["status"] == "ORDER_ASSIGNED" and w["outcome"] == "delivered"
                    for w in sim.webhooks_of(number)),
        timeout=20,
    )  # fmt: skip
    time.sleep(1.5)
    told = updates(hub, number)
    assert told[-1] == ("picked_up", "PICKUP_COMPLETED")
    assert ("assigned", "ORDER_ASSIGNED") not in told[
        told.index(("picked_up", "PICKUP_COMPLETED")) :
    ]
    assert len(told) == len(set(told))


def test_a_failed_delivery_is_reported_in_canonical_words_with_the_raw_status(
    so_stack: Stack, sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    number, _ = send(so_stack, store, shipping_method="Standard")
    sim.control("POST", f"orders/{number}/advance", {"to": "ORDER_UNDELIVERABLE", "force": True})
    wait_until(lambda: updates(hub, number)[-1:] == [("undeliverable", "ORDER_UNDELIVERABLE")])


def test_an_event_with_a_bad_signature_is_refused_and_nothing_is_recorded(
    so_stack: Stack, sim: ShippingOrdersSimulator, store: str
) -> None:
    event = {
        "orderExternalId": "H-FORGED",
        "status": "ORDER_DELIVERED",
        "lastUpdatedAt": "2026-11-23T10:00:00.000Z",
    }
    raw = json.dumps(event).encode()
    url = f"{so_stack.url}/webhooks/shipping_orders?store={store}"
    forged = hmac.new(b"not-the-secret", raw, hashlib.sha256).hexdigest()
    for signature in (forged, ""):
        refused = requests.post(
            url,
            data=raw,
            headers={"X-DS-Signature": signature, "Content-Type": "application/json"},
            timeout=10,
        )
        assert refused.status_code == 401
        assert "X-DS-Signature" in refused.json()["notifications"][0]["description"]
    message_id = "webhook:H-FORGED:ORDER_DELIVERED:2026-11-23T10:00:00.000Z"
    unknown = requests.get(
        f"{so_stack.url}/messages/shipping_orders/{message_id}",
        headers=so_stack.headers(),
        timeout=10,
    )
    assert unknown.status_code == 404

    signed = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    taken = requests.post(
        url,
        data=raw,
        headers={"X-DS-Signature": signed, "Content-Type": "application/json"},
        timeout=10,
    )
    assert taken.json() == {"message_id": message_id, "status": "queued"}
    again = requests.post(
        url,
        data=raw,
        headers={"X-DS-Signature": signed, "Content-Type": "application/json"},
        timeout=10,
    )
    assert again.json() == {"message_id": message_id, "status": "duplicate"}


def test_cancel_then_cancel_again_is_success_both_times(
    so_stack: Stack, sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    number, _ = send(so_stack, store)
    first = so_stack.post("/shipping_orders/cancel_shipment", about(number), wait=20, store=store)
    assert first.status_code == 200, first.text
    assert sim.order(number)["status"] == "ORDER_CANCELLED"
    sim.configure(error_spelling="vendor")  # ORDER_ALREADY_CANCELLED this time
    second = so_stack.post("/shipping_orders/cancel_shipment", about(number), wait=20, store=store)
    assert second.status_code == 200, second.text
    subjects = [n["subject"] for n in second.json()["notifications"]]
    assert "Shipment was already cancelled" in subjects
    wait_until(lambda: ("cancelled", "ORDER_CANCELLED") in updates(hub, number))
    time.sleep(1)
    assert updates(hub, number).count(("cancelled", "ORDER_CANCELLED")) == 1


def test_get_answers_the_current_status_and_a_failed_order_can_be_retried(
    so_stack: Stack, sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    number, _ = send(so_stack, store, **{"orderAttributes": None})
    sim.control("POST", f"orders/{number}/advance", {"to": "ORDER_FAILED", "force": True})
    wait_until(lambda: ("failed", "ORDER_FAILED") in updates(hub, number))
    got = so_stack.post(
        "/shipping_orders/get_shipment",
        about(number, "shipping_orders:shipment:get"),
        wait=20,
        store=store,
    )
    (update,) = [m for m in got.json()["messages"] if m["message"] == "shipment:update"]
    assert update["payload"]["shipment"]["provider_status"] == "ORDER_FAILED"

    retried = so_stack.post(
        "/shipping_orders/retry_shipment",
        about(number, "shipping_orders:shipment:retry"),
        wait=20,
        store=store,
    )
    assert retried.status_code == 200, retried.text
    wait_until(lambda: updates(hub, number)[-1] == ("dispatched", "ORDER_DISPATCHED"))

    refused = so_stack.post(
        "/shipping_orders/retry_shipment",
        about(number, "shipping_orders:shipment:retry"),
        wait=20,
        store=store,
    )
    assert refused.status_code == 500
    assert "can no longer be retried" in json.dumps(refused.json())


def test_a_poll_reads_every_page_of_every_window_and_reports_what_no_webhook_told(
    so_stack: Stack, sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    """Webhooks off: five orders picked up are found by one poll from a cursor 45 days back
    (two windows of at most 30 days, pages of two orders), each with its missed statuses in
    order and one confirm; a second poll reports nothing again."""
    sim.configure(webhook_url=None)
    numbers = [send(so_stack, store)[0] for _ in range(5)]
    for number in numbers:
        sim.advance(number, "PICKUP_COMPLETED")
    lists_before = sim.requests_to("list")
    since = datetime.now(UTC) - timedelta(days=45)
    message = poll_message()
    message["payload"]["parameters"] = [
        {"name": "shipping_orders.last_polling_datetime", "value": since.isoformat()}
    ]
    answer = so_stack.post("/shipping_orders/tracking", message, wait=30, store=store).json()

    assert sim.requests_to("list") - lists_before >= 4  # 2 windows, the second in 3 pages
    (cursor,) = answer["parameters"]
    assert cursor["name"] == "shipping_orders.last_polling_datetime"
    for number in numbers:
        wait_until(lambda n=number: len(confirms(hub, n)) == 1)
        assert updates(hub, number) == LIFECYCLE[:4]
    again = poll(so_stack, store)
    assert not again["messages"]


def test_an_update_changes_the_order_and_a_late_package_change_is_refused(
    so_stack: Stack, sim: ShippingOrdersSimulator, store: str
) -> None:
    number, _ = send(so_stack, store)
    moved = {
        "message_id": f"update-{number}",
        "message": "shipment:update",
        "payload": {
            "shipment": {
                "number": number,
                "shipping_address": {
                    "firstname": "Brian",
                    "lastname": "Quinn",
                    "address1": "7 Elm Rd.",
                    "city": "Bethesda",
                    "state": "Maryland",
                    "zipcode": "20814",
                    "country": "US",
                },
            }
        },
    }
    changed = so_stack.post("/shipping_orders/update_shipment", moved, wait=20, store=store)
    assert changed.status_code == 200, changed.text
    order = sim.order(number)["order"]
    assert (order["deliveryAddress"]["street1"], order["deliveryAddress"]["state"]) == (
        "7 Elm Rd.",
        "MD",
    )

    sim.advance(number, "PICKUP_COMPLETED")
    late = {
        "message_id": f"late-{number}",
        "message": "shipment:update",
        "payload": {"shipment": {"number": number, "items": [{"sku": "9011CC", "quantity": 3}]}},
    }
    refused = so_stack.post("/shipping_orders/update_shipment", late, wait=20, store=store)
    assert refused.status_code == 500
    assert "cannot be changed" in json.dumps(refused.json())
    assert so_stack.record("shipping_orders", late["message_id"])["attempts"] == 1
