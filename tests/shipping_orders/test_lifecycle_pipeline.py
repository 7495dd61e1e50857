"""A shipment through the Shipping Order API end to end, through real processes: the receiver,
a Celery worker, redis-server, the API's simulator (its orchestration, its lifecycle clock, its
signed webhooks to the receiver) and a hub receiving pushes. Every test with ``sim`` runs in the
seed's shapes and in the vendor's; the vendor's shapes are also read from fixtures shaped like
its documented objects, and with fields we cannot read."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.shipping_orders.conftest import (
    ShippingOrdersSimulator,
    about,
    confirms,
    hub_messages,
    notes,
    poll_message,
    ready_message,
    secret_of,
    shipments_told,
    updates,
    vendor_fixture,
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


def send(
    stack: Stack, store: str, location: str | None = None, **shipment: object
) -> tuple[str, dict]:
    body = ready_message(**shipment)
    if location is not None:
        body["payload"]["parameters"] = [
            {"name": "shipping_orders.location_external_id", "value": location}
        ]
    response = stack.post("/shipping_orders/send_shipment", body, wait=20, store=store)
    assert response.status_code == 200, response.text
    return body["payload"]["shipment"]["number"], response.json()


def poll(stack: Stack, store: str, since: datetime | None = None) -> dict:
    message = poll_message()
    if since is not None:
        message["payload"]["parameters"] = [
            {"name": "shipping_orders.last_polling_datetime", "value": since.isoformat()}
        ]
    response = stack.post("/shipping_orders/tracking", message, wait=20, store=store)
    assert response.status_code == 200, response.text
    return response.json()


def signed_event(stack: Stack, store: str, event: dict[str, Any]) -> requests.Response:
    """Post ``event`` to the receiver's webhook as the API would, signed."""
    raw = json.dumps(event).encode()
    return requests.post(
        f"{stack.url}/webhooks/shipping_orders?store={store}",
        data=raw,
        headers={
            "X-DS-Signature": hmac.new(secret_of(store).encode(), raw, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json",
        },
        timeout=10,
    )


def location_of_one(sim: ShippingOrdersSimulator, provider: str) -> str:
    """A location of the simulator whose only delivery provider is ``provider``."""
    name = f"only-{provider.lower()}"
    sim.control(
        "POST", "locations", {"locationExternalId": name, "rules": {"providers": [provider]}}
    )
    return name


def reaches(hub: HubServer, number: str, count: int, timeout: float = 20) -> None:
    wait_until(lambda: len(updates(hub, number)) >= count, timeout=timeout)


def test_a_shipment_is_created_once_and_its_lifecycle_reaches_the_hub_once_in_order(
    so_stack: Stack, sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    number, answer = send(so_stack, store)
    assert len(sim.orders_numbered(number)) == 1
    said = notes(answer, "info")
    if sim.shape == "seed":
        assert any(f"tracking {sim.tracking(number)}" in n for n in said), said
    else:  # received: no provider, no tracking yet, and none claimed
        assert any("REQUEST_RECEIVED" in n for n in said), said
    reaches(hub, number, 1)
    for received in shipments_told(hub, number, "REQUEST_RECEIVED"):
        assert received["carrier"] is received["tracking"] is None
    sim.dispatch_in_turn(hub, number)
    expected = [*sim.before_dispatch, *LIFECYCLE]
    offset = len(sim.before_dispatch)
    reaches(hub, number, offset + 1)

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
        reaches(hub, number, offset + step)
    poll(so_stack, store)  # nothing new: nothing reported again
    time.sleep(1.5)

    assert updates(hub, number) == expected
    sequences = [
        m["payload"]["shipment"]["sequence"]
        for m in hub_messages(hub, number)
        if m["message"] == "shipment:update"
    ]
    assert sequences == list(range(1, len(expected) + 1))
    (confirm,) = confirms(hub, number)
    assert confirm["tracking"] == sim.tracking(number)
    assert confirm["carrier"] == sim.carrier(number)
    assert confirm["status"] == "shipped"
    assert len(sim.orders_numbered(number)) == 1
    (shipment,) = shipments_told(hub, number, "ORDER_DISPATCHED")
    assert shipment["provider"] and shipment["tracking"] == sim.tracking(number)
    assert shipment["service"] if sim.shape == "seed" else shipment["service"] is None


def test_a_late_webhook_never_moves_a_shipment_back(
    so_stack: Stack, sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    number, _ = send(so_stack, store)
    sim.dispatch_in_turn(hub, number)
    reaches(hub, number, len(sim.before_dispatch) + 1)
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
    number = f"H-FORGED-{store}"
    event = {
        "orderExternalId": number,
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
    message_id = f"webhook:{store}:{number}:ORDER_DELIVERED:2026-11-23T10:00:00.000Z"
    unknown = requests.get(
        f"{so_stack.url}/messages/shipping_orders/{message_id}",
        headers=so_stack.headers(),
        timeout=10,
    )
    assert unknown.status_code == 404

    signed = hmac.new(secret_of(store).encode(), raw, hashlib.sha256).hexdigest()
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
    expected = [*sim.before_dispatch, *LIFECYCLE[:4]]
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
        assert updates(hub, number) == expected
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


# ---------------------------------------------------------------------------------------------
# The vendor's real shapes, read by poll, by webhook and by get; fields we cannot read


def test_a_poll_reads_a_vendor_shaped_order_with_an_integer_tracking_number(
    so_stack: Stack, vendor_sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    """Webhooks off: a FedEx order (its tracking number a JSON integer), dispatched and picked
    up, found by the poll with its string provider, top-level trackingUrl, ISO and epoch-ms
    Starts/Ends times and storeExternalId."""
    sim = vendor_sim
    sim.configure(webhook_url=None)
    number, _ = send(so_stack, store, location=location_of_one(sim, "FedEx"))
    sim.advance(number, "PICKUP_COMPLETED")
    order = sim.order(number)["order"]
    assert isinstance(order["trackingNumber"], int) and order["provider"] == "FedEx"

    answer = poll(so_stack, store, since=datetime.now(UTC) - timedelta(hours=1))

    assert not notes(answer, "warn"), answer
    wait_until(lambda: len(confirms(hub, number)) == 1)
    assert updates(hub, number) == [*sim.before_dispatch, *LIFECYCLE[:4]]
    (dispatched,) = shipments_told(hub, number, "ORDER_DISPATCHED")
    assert dispatched["carrier"] == dispatched["provider"] == "FedEx"
    assert dispatched["tracking"] == str(order["trackingNumber"])
    assert dispatched["tracking_numbers"] == [str(order["trackingNumber"])]
    assert dispatched["tracking_url"] == order["trackingUrl"]
    ends = datetime.fromisoformat(order["estimatedDeliveryTimeEnds"])
    assert datetime.fromisoformat(dispatched["estimated_delivery_at"]) == ends
    (confirm,) = confirms(hub, number)
    assert (confirm["tracking"], confirm["carrier"]) == (str(order["trackingNumber"]), "FedEx")
    assert confirm["shipped_at"]  # actualPickupTime


# What the hub is warned of an event about a shipment this endpoint never sent (as by a poll).
NOT_SENT = "Shipments this endpoint did not send"


def vendor_event(**fields: Any) -> dict[str, Any]:
    """The vendor's documented dispatched order, for a fresh shipment number."""
    return {
        **vendor_fixture("order_dispatched"),
        "orderExternalId": f"V{uuid.uuid4().hex[:11]}",
        **fields,
    }


def test_a_webhook_of_a_vendor_shaped_order_is_taken_and_read(
    so_stack: Stack, hub: HubServer, store: str
) -> None:
    event = vendor_event()
    number = event["orderExternalId"]

    taken = signed_event(so_stack, store, event)

    assert taken.status_code == 200, taken.text
    told = hub.wait_for(taken.json()["message_id"])
    assert [w for w in notes(told, "warn") if not w.startswith(NOT_SENT)] == [], told
    (update,) = shipments_told(hub, number, "ORDER_DISPATCHED")
    assert (update["status"], update["provider"], update["carrier"]) == ("dispatched", "UPS", "UPS")
    assert update["tracking"] == "1391249345" and update["tracking_numbers"] == ["1391249345"]
    assert update["tracking_url"] == "https://track.example.com/ups/1391249345"
    assert update["estimated_delivery_at"] == "2022-05-03T11:07:54.000+00:00"
    assert update["status_at"] == "2022-05-03T10:35:38.656+00:00"
    assert update["order_number"] == "R805661123"


@pytest.mark.parametrize(
    ("odd", "unreadable"),
    [
        ({"trackingNumber": {"number": 1391249345}}, "trackingNumber"),
        (
            {"estimatedDeliveryTimeEnds": "April 27th 2022, 2:45:45 am CDT"},
            "estimatedDeliveryTimeEnds",
        ),
        ({"lastUpdatedAt": "soon"}, "lastUpdatedAt"),
        ({"provider": ["UPS"]}, "provider"),
        ({"trackingUrl": ["https://x"]}, "trackingUrl"),
    ],
)
def test_a_webhook_with_a_field_we_cannot_read_is_reported_with_a_warning(
    so_stack: Stack, hub: HubServer, store: str, odd: dict[str, Any], unreadable: str
) -> None:
    event = vendor_event(**odd)
    number = event["orderExternalId"]

    taken = signed_event(so_stack, store, event)

    assert taken.status_code == 200, taken.text
    told = hub.wait_for(taken.json()["message_id"])
    (warning,) = [w for w in notes(told, "warn") if not w.startswith(NOT_SENT)]
    assert number in warning and unreadable in warning, warning
    (update,) = shipments_told(hub, number, "ORDER_DISPATCHED")
    assert update["status"] == "dispatched"
    read = {"trackingNumber": "tracking", "provider": "carrier", "trackingUrl": "tracking_url"}
    if unreadable in read:
        assert update[read[unreadable]] is None  # left out, not guessed
    else:
        assert update["tracking"] == "1391249345" and update["carrier"] == "UPS"


def test_a_poll_and_a_get_report_an_order_with_a_field_they_cannot_read(
    so_stack: Stack, sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    sim.configure(webhook_url=None)
    number, _ = send(so_stack, store)
    sim.advance(number, "IN_TRANSIT")
    odd = {"estimatedDeliveryTime": "tomorrow-ish", "trackingId": [1], "trackingNumber": [1]}
    sim.fault("list", "odd_answer", set=odd)

    polled = poll(so_stack, store, since=datetime.now(UTC) - timedelta(hours=1))

    (warning,) = notes(polled, "warn")
    assert number in warning and "estimatedDeliveryTime" in warning, warning
    wait_until(lambda: updates(hub, number)[-1:] == [("in_transit", "IN_TRANSIT")])
    (in_transit,) = shipments_told(hub, number, "IN_TRANSIT")
    assert in_transit["tracking"] is None  # unreadable: left out
    assert in_transit["sequence"] == len(updates(hub, number))

    sim.fault("get", "odd_answer", set={"provider": {"name": ["x"]}, "lastUpdatedAt": []})
    got = so_stack.post(
        "/shipping_orders/get_shipment",
        about(number, "shipping_orders:shipment:get"),
        wait=20,
        store=store,
    )
    assert got.status_code == 200, got.text
    (update,) = [m for m in got.json()["messages"] if m["message"] == "shipment:update"]
    assert update["payload"]["shipment"]["provider_status"] == "IN_TRANSIT"
    (warning,) = notes(got.json(), "warn")
    assert number in warning and "lastUpdatedAt" in warning, warning


def test_a_listed_order_without_an_id_is_left_out_with_a_warning_and_the_rest_reported(
    so_stack: Stack, sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    sim.configure(webhook_url=None)
    number, _ = send(so_stack, store)
    sim.advance(number, "ORDER_ASSIGNED")
    sim.fault("list", "odd_answer", remove=["orderExternalId"])

    polled = poll(so_stack, store, since=datetime.now(UTC) - timedelta(hours=1))

    (warning,) = notes(polled, "warn")
    assert "orderExternalId" in warning, warning
    assert polled["messages"] == []  # nothing to report it by
    again = poll(so_stack, store, since=datetime.now(UTC) - timedelta(hours=1))  # read right
    told = [m["payload"]["shipment"]["provider_status"] for m in again["messages"]]
    assert told[-1] == "ORDER_ASSIGNED" and not notes(again, "warn")
    wait_until(lambda: updates(hub, number)[-1] == ("assigned", "ORDER_ASSIGNED"))
