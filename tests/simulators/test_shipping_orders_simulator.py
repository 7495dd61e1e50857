"""The Shipping Order API simulator: auth, orders, orchestration, listing, lifecycle, webhooks,
faults, rate limiting and the control API."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from simulators.shipping_orders import (
    EXTENSION,
    SCENARIO_PATHS,
    ShippingOrdersSimulator,
    SimulatorConfig,
    config_from_env,
    create_app,
    parse_accounts,
)

ROOT = Path(__file__).resolve().parents[2]
API_KEY, TENANT = "demo-so-key", "demo-tenant"
HEADERS = {"x-api-key": API_KEY, "tenantid": TENANT}
T0 = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
DAY_MS = 24 * 3600 * 1000

BOSTON = {
    "street1": "725 Albany Street",
    "street2": "",
    "city": "Boston",
    "state": "MA",
    "countryCode": "US",
    "postalCode": "02118",
    "latitude": 42.3346944,
    "longitude": -71.071818,
}
NEW_YORK = {
    "street1": "502 Park Avenue",
    "city": "New York",
    "state": "NY",
    "countryCode": "US",
    "postalCode": "10022",
}


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @property
    def ms(self) -> int:
        return int(self.now.timestamp() * 1000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def make_app(clock: FakeClock) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(**settings: Any) -> Flask:
        values: dict[str, Any] = {"step_seconds": 0, "clock": clock, **settings}
        app = create_app(SimulatorConfig(**values))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions[EXTENSION].stop()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def sim_of(client: FlaskClient) -> ShippingOrdersSimulator:
    return client.application.extensions[EXTENSION]


# -- helpers -----------------------------------------------------------------------------------


def order_body(order_id: str = "7709-001", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "locationExternalId": "store-1",
        "orderExternalId": order_id,
        "orderValue": 10,
        "deliveryContact": {"name": "asd", "phone": "+1 234-567-8900", "email": ""},
        "deliveryAddress": dict(BOSTON),
        "package": {
            "name": "Solid",
            "size": {"length": 10, "width": 10, "height": 10, "unit": "in"},
            "weight": {"value": 10, "unit": "lb"},
            "itemQuantity": 1,
            "description": "bungii pack 1",
        },
        "itemList": [{"sku": "sku 1", "quantity": 1, "price": 3, "title": "Watch"}],
        "pickupTime": None,
        "deliveryTime": None,
    }
    body.update(overrides)
    return body


def create(client: FlaskClient, order_id: str = "7709-001", **overrides: Any) -> Any:
    return client.post("/shipments", json=order_body(order_id, **overrides), headers=HEADERS)


def created(client: FlaskClient, order_id: str = "7709-001", **overrides: Any) -> dict[str, Any]:
    response = create(client, order_id, **overrides)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def scenario(name: str) -> dict[str, Any]:
    return {"orderAttributes": {"simScenario": name}}


def advance(client: FlaskClient, order_id: str, **payload: Any) -> Any:
    return client.post(f"/_sim/orders/{order_id}/advance", json=payload)


def advanced(client: FlaskClient, order_id: str, **payload: Any) -> dict[str, Any]:
    response = advance(client, order_id, **payload)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def history(client: FlaskClient, order_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/shipments/{order_id}/status-history", headers=HEADERS)
    assert response.status_code == 200
    return response.get_json()[0]["orderStatus"]


def statuses(client: FlaskClient, order_id: str) -> list[str]:
    return [entry["status"] for entry in history(client, order_id)]


def error_of(response: Any) -> tuple[int, str, str]:
    body = response.get_json()
    assert set(body) == {"type", "message", "errors"}
    assert body["errors"] and all({"type", "message"} <= set(item) for item in body["errors"])
    return response.status_code, body["type"], body["message"]


def set_rules(client: FlaskClient, **rules: Any) -> None:
    payload = {"locationExternalId": "store-1", "rules": rules}
    assert client.post("/_sim/locations", json=payload).status_code == 200


def configure(client: FlaskClient, **settings: Any) -> None:
    response = client.post("/_sim/config", json=settings)
    assert response.status_code == 200, response.get_json()


def queue_fault(client: FlaskClient, **payload: Any) -> None:
    response = client.post("/_sim/faults", json=payload)
    assert response.status_code == 201, response.get_json()


def list_orders(client: FlaskClient, **body: Any) -> Any:
    return client.post("/shipments/list", json=body, headers=HEADERS)


# -- auth --------------------------------------------------------------------------------------


def test_missing_api_key_is_403_forbidden(client: FlaskClient) -> None:
    response = client.get("/shipments/x", headers={"tenantId": TENANT})
    assert response.status_code == 403
    assert response.get_json() == {
        "type": "FORBIDDEN",
        "message": "Forbidden",
        "errors": [{"type": "FORBIDDEN", "message": "Forbidden"}],
    }


def test_wrong_api_key_is_401(client: FlaskClient) -> None:
    response = client.get("/shipments/x", headers={"x-api-key": "nope", "tenantId": TENANT})
    assert response.status_code == 401
    assert response.get_json() == {
        "type": "UNAUTHORIZED",
        "message": "Invalid Api Key!",
        "errors": [{"type": "UNAUTHORIZED", "message": "Invalid Api Key!"}],
    }


@pytest.mark.parametrize("tenant", [None, "other-tenant"])
def test_missing_or_foreign_tenant_is_401(client: FlaskClient, tenant: str | None) -> None:
    headers = {"x-api-key": API_KEY} | ({"tenantId": tenant} if tenant else {})
    response = client.post("/shipments", json=order_body(), headers=headers)
    assert error_of(response) == (401, "UNAUTHORIZED", "Invalid tenantId")
    assert client.get("/_sim/orders").get_json()["count"] == 0


def test_header_names_are_case_insensitive(client: FlaskClient) -> None:
    headers = {"X-API-KEY": API_KEY, "TenantId": TENANT}
    assert client.post("/shipments", json=order_body(), headers=headers).status_code == 201


# -- create ------------------------------------------------------------------------------------


def test_create_answers_201_with_the_dispatched_order(
    client: FlaskClient, clock: FakeClock
) -> None:
    body = order_body(deliveryInstructions="Leave at the door")
    response = client.post("/shipments", json=body, headers=HEADERS)
    assert response.status_code == 201
    order = response.get_json()
    assert re.fullmatch(r"[0-9a-f]{24}", order["id"])
    for name in ("locationExternalId", "orderExternalId", "orderValue", "deliveryContact"):
        assert order[name] == body[name]
    assert order["deliveryInstructions"] == "Leave at the door"
    assert order["deliveryAddress"] == BOSTON  # its own coordinates kept
    assert order["package"]["weight"] == {"value": 10, "unit": "lb"}
    assert order["package"]["temperatureControl"] == "none" and order["package"]["barcode"]
    assert order["itemList"] == body["itemList"]
    assert order["tenantId"] == TENANT and order["brandExternalId"] == TENANT
    assert order["pickupAddress"]["street1"] == "345 Harrison Avenue"
    assert order["pickupAddress"]["postalCode"] == "02118"
    assert order["pickupContact"]["name"] == "Store One"
    assert order["status"] == "ORDER_DISPATCHED"
    assert set(order["provider"]) == {"name", "id", "displayName", "serviceId", "serviceType"}
    assert order["provider"]["name"] == "DoorDash"  # local, cheapest
    assert order["trackingId"]
    assert order["referenceLinks"]["trackingUrl"].endswith(order["trackingId"])
    assert order["referenceLinks"]["qrcodeLink"] is None
    pickup, delivery = order["estimatedPickupTime"], order["estimatedDeliveryTime"]
    assert clock.ms < pickup["startsAt"] < pickup["endsAt"]
    assert pickup["startsAt"] <= delivery["startsAt"] < delivery["endsAt"]
    assert order["amount"] == order["fee"] > 0 and order["currencyCode"] == "USD"
    assert [p["name"] for p in order["proposedProviders"]] == ["UPS", "FedEx", "DoorDash", "Roadie"]
    assert order["proposedProviders"][0]["services"] == [{"id": "ground"}]
    assert order["createdAt"] == order["lastUpdatedAt"] == "2025-03-10T15:00:00.000Z"
    assert order["actualPickupTime"] is None and order["actualDeliveryTime"] is None
    assert statuses(client, "7709-001") == [
        "REQUEST_RECEIVED",
        "ESTIMATES_RECEIVED",
        "ORDER_DISPATCHED",
    ]
    got = client.get("/shipments/7709-001", headers=HEADERS)
    assert got.status_code == 200 and got.get_json() == order


def test_missing_coordinates_are_derived(client: FlaskClient) -> None:
    address = {k: v for k, v in BOSTON.items() if k not in ("latitude", "longitude")}
    first = created(client, "A1", deliveryAddress=address)["deliveryAddress"]
    second = created(client, "A2", deliveryAddress=address)["deliveryAddress"]
    assert first == second
    assert abs(first["latitude"] - 42.36) < 0.3 and abs(first["longitude"] + 71.06) < 0.3


def test_duplicate_order_id_is_422(client: FlaskClient) -> None:
    created(client)
    response = create(client)
    assert error_of(response) == (422, "DUPLICATE_ID", "Resource with provided id already exists.")


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("locationExternalId", lambda b: b.pop("locationExternalId")),
        ("orderExternalId", lambda b: b.update(orderExternalId="")),
        ("deliveryAddress", lambda b: b.pop("deliveryAddress")),
        ("deliveryAddress.postalCode", lambda b: b["deliveryAddress"].pop("postalCode")),
        ("deliveryAddress.street1", lambda b: b["deliveryAddress"].update(street1=" ")),
        ("deliveryContact.name", lambda b: b.update(deliveryContact={"phone": "1"})),
        ("orderValue", lambda b: b.update(orderValue=-1)),
    ],
)
def test_invalid_create_is_400_validation_error(
    client: FlaskClient, field: str, change: Callable[[dict[str, Any]], Any]
) -> None:
    body = order_body()
    change(body)
    response = client.post("/shipments", json=body, headers=HEADERS)
    status, type_, message = error_of(response)
    assert (status, type_) == (400, "VALIDATION_ERROR")
    assert field in message and response.get_json()["errors"][0]["field"] == field
    assert client.get("/_sim/orders").get_json()["count"] == 0


def test_body_that_is_not_an_object_is_400(client: FlaskClient) -> None:
    response = client.post("/shipments", data="[1]", headers=HEADERS)
    assert error_of(response)[:2] == (400, "VALIDATION_ERROR")


def test_unknown_location_is_422_invalid_data(client: FlaskClient) -> None:
    status, type_, message = error_of(create(client, locationExternalId="nowhere"))
    assert (status, type_) == (422, "INVALID_DATA")
    assert message.startswith("Invalid Data: No such locationExternalId exists in our system")


def test_no_provider_assigned_is_422(client: FlaskClient) -> None:
    set_rules(client, providers=[])
    assert error_of(create(client)) == (
        422,
        "NO_PROVIDER_ASSIGNED",
        "No Provider has been assigned to the mentioned location.",
    )


@pytest.mark.parametrize(
    ("spelling", "expected"), [("seed", "NO_PROVIDER_MATCHED"), ("vendor", "NO_DSP_MATCHED")]
)
def test_price_cap_leaves_no_provider_matched(
    client: FlaskClient, spelling: str, expected: str
) -> None:
    configure(client, error_spelling=spelling)
    set_rules(client, price_cap=5.0)
    assert error_of(create(client)) == (
        422,
        expected,
        "No Provider matched the criteria for the requested delivery.",
    )
    assert client.get("/_sim/orders").get_json()["count"] == 0  # a refused create stores nothing


@pytest.mark.parametrize(
    "change",
    [
        {"postalCode": "2118"},
        {"postalCode": "ABCDE"},
        {"postalCode": "02118-12"},
        {"street1": "1 Unknown Road"},
        {"countryCode": "USA"},
        {"countryCode": "GB", "postalCode": "12345"},
    ],
)
def test_ungeocodable_address_is_422(client: FlaskClient, change: dict[str, str]) -> None:
    response = create(client, deliveryAddress={**BOSTON, **change})
    assert error_of(response) == (
        422,
        "GEOCODING_FAILED",
        "Geocoding Service for the given address failed.",
    )


def test_zip_plus_four_and_foreign_postal_codes_geocode(client: FlaskClient) -> None:
    set_rules(client, providers=["UPS"])
    created(client, "Z1", deliveryAddress={**BOSTON, "postalCode": "02118-1234"})
    london = {
        "street1": "1 Strand",
        "city": "London",
        "countryCode": "GB",
        "postalCode": "WC2N 5HR",
    }
    assert created(client, "Z2", deliveryAddress=london)["provider"]["name"] == "UPS"


# -- orchestration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "provider"),
    [
        ({"strategy": "cheapest"}, "UPS"),
        ({"strategy": "fastest"}, "Roadie"),
        ({"strategy": "preferred", "preferred_provider": "FedEx"}, "FedEx"),
        # DoorDash gives no estimate outside the location's state: cheapest instead.
        ({"strategy": "preferred", "preferred_provider": "DoorDash"}, "UPS"),
        ({"strategy": "fastest", "price_cap": 50}, "FedEx"),
        ({"strategy": "cheapest", "providers": ["FedEx", "Roadie"]}, "FedEx"),
    ],
)
def test_rules_choose_the_provider(
    client: FlaskClient, rules: dict[str, Any], provider: str
) -> None:
    set_rules(client, **rules)
    order = created(client, deliveryAddress=dict(NEW_YORK))
    assert order["provider"]["name"] == provider
    proposed = [p["name"] for p in order["proposedProviders"]]
    assert "DoorDash" not in proposed and provider in proposed


def test_local_delivery_goes_to_doordash_and_heavy_parcels_skip_roadie(
    client: FlaskClient,
) -> None:
    assert created(client, "L1")["provider"]["name"] == "DoorDash"
    set_rules(client, strategy="preferred", preferred_provider="Roadie")
    assert created(client, "L2")["provider"]["name"] == "Roadie"
    heavy = order_body()["package"] | {"weight": {"value": 80, "unit": "lb"}}
    order = created(client, "L3", package=heavy)
    assert order["provider"]["name"] != "Roadie"
    assert "Roadie" not in [p["name"] for p in order["proposedProviders"]]


def test_estimates_are_deterministic(client: FlaskClient) -> None:
    first = created(client, "D1", deliveryAddress=dict(NEW_YORK))
    second = created(client, "D2", deliveryAddress=dict(NEW_YORK))
    for name in ("amount", "estimatedPickupTime", "estimatedDeliveryTime", "provider"):
        assert first[name] == second[name]


# -- list --------------------------------------------------------------------------------------


def test_list_pages_with_limit_and_tokens(client: FlaskClient, clock: FakeClock) -> None:
    for n in range(1, 6):
        created(client, f"P{n}")
        clock.advance(1)
    first = list_orders(client, limit=2).get_json()
    assert [o["orderExternalId"] for o in first["data"]] == ["P1", "P2"]
    assert first["paginationToken"]["previous"] is None
    second = list_orders(client, limit=2, paginationToken=first["paginationToken"]["next"])
    second_page = second.get_json()
    assert [o["orderExternalId"] for o in second_page["data"]] == ["P3", "P4"]
    back = list_orders(client, limit=2, paginationToken=second_page["paginationToken"]["previous"])
    assert [o["orderExternalId"] for o in back.get_json()["data"]] == ["P1", "P2"]
    third = list_orders(client, limit=2, paginationToken=second_page["paginationToken"]["next"])
    third_page = third.get_json()
    assert [o["orderExternalId"] for o in third_page["data"]] == ["P5"]
    assert third_page["paginationToken"]["next"] is None
    assert third_page["paginationToken"]["previous"] is not None


def test_orders_updated_while_paging_are_not_skipped(client: FlaskClient, clock: FakeClock) -> None:
    for n in range(1, 6):
        created(client, f"P{n}")
        clock.advance(1)
    page = list_orders(client, limit=2).get_json()
    seen = [o["orderExternalId"] for o in page["data"]]
    advanced(client, "P1")  # seen already: comes again
    advanced(client, "P3")  # not seen yet: moves behind the cursor, still comes
    token = page["paginationToken"]["next"]
    while token:
        page = list_orders(client, limit=2, paginationToken=token).get_json()
        seen += [o["orderExternalId"] for o in page["data"]]
        token = page["paginationToken"]["next"]
    assert seen == ["P1", "P2", "P4", "P5", "P1", "P3"]


def test_list_defaults_to_orders_created_in_the_last_24_hours(
    client: FlaskClient, clock: FakeClock
) -> None:
    created(client, "OLD")
    clock.advance(25 * 3600)
    created(client, "NEW")
    listed = list_orders(client).get_json()
    assert [o["orderExternalId"] for o in listed["data"]] == ["NEW"]
    window = {"startsAt": clock.ms - 2 * DAY_MS, "endsAt": clock.ms}
    listed = list_orders(client, lastUpdatedAt=window).get_json()
    assert [o["orderExternalId"] for o in listed["data"]] == ["OLD", "NEW"]


def test_list_filters(client: FlaskClient, clock: FakeClock) -> None:
    created(client, "F1")
    created(
        client,
        "F2",
        pickupTime={"startsAt": clock.ms + 3600_000},
        deliveryTime={"endsAt": clock.ms + 7200_000},
    )
    advanced(client, "F1", to="ORDER_ASSIGNED")

    def ids(**body: Any) -> list[str]:
        response = list_orders(client, **body)
        assert response.status_code == 200, response.get_json()
        return [o["orderExternalId"] for o in response.get_json()["data"]]

    assert ids(status=["ORDER_ASSIGNED"]) == ["F1"]
    assert ids(orderExternalIds=["F2", "nope"]) == ["F2"]
    assert ids(locationExternalIds=["store-1"]) == ["F2", "F1"]
    both = {"pickupTime": {"startsAt": clock.ms}, "deliveryTime": {"endsAt": clock.ms + 8000_000}}
    assert ids(**both) == ["F2"]
    assert ids(createdAt={"startsAt": clock.ms - 1000}) == ["F2", "F1"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"limit": 1001}, "limit cannot be greater than 1000"),
        ({"limit": 0}, "limit"),
        (
            {"lastUpdatedAt": {"startsAt": -31 * DAY_MS, "endsAt": 0}},
            "lastUpdatedAt date range cannot be greater than 30 days",
        ),
        (
            {"createdAt": {"startsAt": -31 * DAY_MS}},
            "createdAt date range cannot be greater than 30 days",
        ),
        (
            {"lastUpdatedAt": {"startsAt": -400 * DAY_MS, "endsAt": -399 * DAY_MS}},
            "older than 1 year",
        ),
        ({"lastUpdatedAt": {"startsAt": 0, "endsAt": -1000}}, "cannot be after"),
        ({"orderExternalIds": [str(n) for n in range(101)]}, "more than 100"),
        ({"locationExternalIds": [str(n) for n in range(101)]}, "more than 100"),
        ({"pickupTime": {"startsAt": 0}}, "together"),
        ({"deliveryTime": {"endsAt": 0}}, "together"),
        ({"paginationToken": "not a token!"}, "paginationToken"),
        ({"paginationToken": "eyJ2IjoxfQ=="}, "paginationToken"),  # base64 of {"v":1}
    ],
)
def test_bad_list_requests_are_400_invalid_data(
    client: FlaskClient, clock: FakeClock, body: dict[str, Any], needle: str
) -> None:
    for name in ("lastUpdatedAt", "createdAt"):
        if name in body:
            body[name] = {k: clock.ms + v for k, v in body[name].items()}
    status, type_, message = error_of(list_orders(client, **body))
    assert (status, type_) == (400, "INVALID_DATA")
    assert needle in message


def test_pagination_token_of_another_tenant_is_refused(make_app: Callable[..., Flask]) -> None:
    app = make_app(accounts={API_KEY: TENANT, "other-key": "other"})
    client = app.test_client()
    for n in range(3):
        created(client, f"T{n}")
    token = list_orders(client, limit=1).get_json()["paginationToken"]["next"]
    other = {"x-api-key": "other-key", "tenantId": "other"}
    response = client.post("/shipments/list", json={"paginationToken": token}, headers=other)
    assert error_of(response)[:2] == (400, "INVALID_DATA")


# -- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIO_PATHS))
def test_each_scenario_runs_its_path(client: FlaskClient, name: str) -> None:
    created(client, "S1", **scenario(name))
    path = SCENARIO_PATHS[name]
    for expected in path[1:]:
        assert advanced(client, "S1")["status"] == expected
    assert statuses(client, "S1") == ["REQUEST_RECEIVED", "ESTIMATES_RECEIVED", *path]
    assert advance(client, "S1").status_code == 400  # nothing after the end
    entries = history(client, "S1")
    assert all(isinstance(e["updatedAtEpoch"], int) for e in entries)
    assert re.fullmatch(
        r"[A-Z][a-z]+ \d{1,2}(st|nd|rd|th) \d{4}, \d{1,2}:\d\d:\d\d [ap]m C[DS]T",
        entries[-1]["updatedAt"],
    )


def test_undeliverable_step_carries_the_reason(client: FlaskClient) -> None:
    created(client, "U1", **scenario("undeliverable"))
    advanced(client, "U1", to="ORDER_UNDELIVERABLE")
    last = history(client, "U1")[-1]
    assert last["eventReason"]["code"] == "CUSTOMER_REJECTED"
    assert last["subStatus"] == "RETURN_AT_LOCATION"
    assert last["statusUser"] == "DoorDash"


def test_steps_set_times_and_move_last_updated(client: FlaskClient, clock: FakeClock) -> None:
    order = created(client, "T1")
    clock.advance(60)
    picked = advanced(client, "T1", to="PICKUP_COMPLETED")
    assert picked["actualPickupTime"] == clock.ms and picked["actualDeliveryTime"] is None
    assert picked["lastUpdatedAt"] > order["lastUpdatedAt"]
    clock.advance(60)
    delivered = advanced(client, "T1", to="ORDER_DELIVERED")
    assert delivered["actualDeliveryTime"] == clock.ms
    assert statuses(client, "T1")[-4:] == [
        "PICKUP_COMPLETED",
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "ORDER_DELIVERED",
    ]


def test_redelivery_jump_stops_at_the_next_occurrence(client: FlaskClient) -> None:
    created(client, "R1", **scenario("redelivery"))
    advanced(client, "R1", to="OUT_FOR_DELIVERY")
    advanced(client, "R1", to="OUT_FOR_DELIVERY")
    assert statuses(client, "R1")[-2:] == ["ORDER_REDELIVERY", "OUT_FOR_DELIVERY"]
    assert advance(client, "R1", to="IN_TRANSIT").status_code == 400  # behind it


def test_advance_control_errors(client: FlaskClient) -> None:
    assert advance(client, "nope").status_code == 404
    created(client, "C1")
    assert advance(client, "C1", to="ORDER_FAILED").status_code == 400
    assert advance(client, "C1", to="BOGUS", force=True).status_code == 400
    assert advanced(client, "C1", to="PENDING_AUTORETRY", force=True)["status"] == (
        "PENDING_AUTORETRY"
    )


def test_the_clock_steps_orders_by_itself(make_app: Callable[..., Flask], clock: FakeClock) -> None:
    app = make_app(step_seconds=5)
    client = app.test_client()
    created(client, "K1")
    sim = sim_of(client)
    assert sim.tick() == 0
    clock.advance(5)
    assert sim.tick() == 1
    assert client.get("/shipments/K1", headers=HEADERS).get_json()["status"] == "ORDER_ASSIGNED"
    clock.advance(4)
    assert sim.tick() == 0


def test_the_clock_thread_runs(make_app: Callable[..., Flask]) -> None:
    app = make_app(step_seconds=0.05, clock=lambda: datetime.now(UTC))
    client = app.test_client()
    created(client, "K2", **scenario("failed"))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if client.get("/shipments/K2", headers=HEADERS).get_json()["status"] == "ORDER_FAILED":
            break
        time.sleep(0.02)
    assert client.get("/shipments/K2", headers=HEADERS).get_json()["status"] == "ORDER_FAILED"


# -- cancel ------------------------------------------------------------------------------------


def cancel(client: FlaskClient, order_id: str) -> Any:
    return client.delete(f"/shipments/{order_id}", headers=HEADERS)


@pytest.mark.parametrize("status", ["ORDER_DISPATCHED", "ORDER_ASSIGNED", "PICKUP_STARTED"])
def test_cancel_before_pickup(client: FlaskClient, status: str) -> None:
    created(client, "X1")
    if status != "ORDER_DISPATCHED":
        advanced(client, "X1", to=status)
    response = cancel(client, "X1")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ORDER_CANCELLED"
    assert statuses(client, "X1")[-1] == "ORDER_CANCELLED"
    assert advance(client, "X1").status_code == 400  # terminal: the clock leaves it


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [("seed", "ORDER_ALREADY_CANCELED"), ("vendor", "ORDER_ALREADY_CANCELLED")],
)
def test_cancel_twice_is_409(client: FlaskClient, spelling: str, expected: str) -> None:
    configure(client, error_spelling=spelling)
    created(client, "X2")
    assert cancel(client, "X2").status_code == 200
    assert error_of(cancel(client, "X2")) == (
        409,
        expected,
        "Requested order is already in Cancelled state.",
    )


@pytest.mark.parametrize("status", ["PICKUP_COMPLETED", "IN_TRANSIT", "OUT_FOR_DELIVERY"])
def test_cancel_after_pickup_fails_at_the_provider(client: FlaskClient, status: str) -> None:
    set_rules(client, providers=["UPS"])
    created(client, "X3")
    advanced(client, "X3", to=status)
    response = cancel(client, "X3")
    assert response.status_code == 422
    assert response.get_json() == {
        "type": "ORDER_CANCELLATION_FAILED",
        "message": "Provider failed to cancel order",
        "errors": [
            {
                "provider": "UPS Shipping",
                "type": "NON_CANCELABLE_DELIVERY",
                "message": "No shipment found within the allowed void period",
                "code": 400,
            }
        ],
    }
    assert client.get("/shipments/X3", headers=HEADERS).get_json()["status"] == status


@pytest.mark.parametrize(
    ("name", "final"), [("delivered", "ORDER_DELIVERED"), ("undeliverable", "ORDER_UNDELIVERABLE")]
)
def test_cancel_when_finished_is_403(client: FlaskClient, name: str, final: str) -> None:
    created(client, "X4", **scenario(name))
    advanced(client, "X4", to=final)
    assert error_of(cancel(client, "X4")) == (
        403,
        "CANCELLATION_NOT_ALLOWED",
        "Provider does not allow cancellation of orders.",
    )


def test_cancel_unknown_is_404(client: FlaskClient) -> None:
    assert error_of(cancel(client, "nope")) == (
        404,
        "NOT_FOUND",
        "Order with id, nope, is not found",
    )


# -- retry -------------------------------------------------------------------------------------


def retry(client: FlaskClient, order_id: str) -> Any:
    return client.post(f"/shipments/{order_id}/retry", headers=HEADERS)


def test_retry_after_failure_dispatches_again(client: FlaskClient) -> None:
    first = created(client, "Y1", **scenario("failed"))
    assert advanced(client, "Y1")["status"] == "ORDER_FAILED"
    response = retry(client, "Y1")
    assert response.status_code == 201
    order = response.get_json()
    assert order["status"] == "ORDER_DISPATCHED"
    assert order["trackingId"] != first["trackingId"]
    assert statuses(client, "Y1")[-3:] == ["ORDER_FAILED", "ESTIMATES_RECEIVED", "ORDER_DISPATCHED"]
    assert history(client, "Y1")[-1]["retry"] is True
    assert advanced(client, "Y1", to="ORDER_DELIVERED")["status"] == "ORDER_DELIVERED"


def test_retry_from_pending_autoretry(client: FlaskClient) -> None:
    created(client, "Y2")
    advanced(client, "Y2", to="PENDING_AUTORETRY", force=True)
    assert retry(client, "Y2").status_code == 201


def test_retry_refused_when_not_failed(client: FlaskClient) -> None:
    created(client, "Y3")
    assert error_of(retry(client, "Y3")) == (
        409,
        "INVALID_OPERATION",
        "The Order can no longer be retried",
    )
    assert error_of(retry(client, "nope"))[:2] == (404, "NOT_FOUND")


def test_retry_that_finds_no_provider_leaves_estimates_failed(client: FlaskClient) -> None:
    created(client, "Y4", **scenario("failed"))
    advanced(client, "Y4")
    set_rules(client, price_cap=1)
    assert error_of(retry(client, "Y4"))[:2] == (422, "NO_PROVIDER_MATCHED")
    assert client.get("/shipments/Y4", headers=HEADERS).get_json()["status"] == "ESTIMATES_FAILED"
    set_rules(client, price_cap=None)
    assert retry(client, "Y4").status_code == 201


# -- edit --------------------------------------------------------------------------------------


def edit(client: FlaskClient, order_id: str, **body: Any) -> Any:
    return client.put(f"/shipments/{order_id}", json=body, headers=HEADERS)


def test_edit_changes_only_the_fields_sent(client: FlaskClient, clock: FakeClock) -> None:
    order = created(client, "E1")
    clock.advance(1)
    response = edit(client, "E1", orderValue=160.99, deliveryInstructions="Ring twice")
    assert response.status_code == 200
    changed = response.get_json()
    assert changed["orderValue"] == 160.99 and changed["deliveryInstructions"] == "Ring twice"
    assert changed["deliveryContact"] == order["deliveryContact"]
    assert changed["trackingId"] == order["trackingId"]
    assert changed["lastUpdatedAt"] == "2025-03-10T15:00:01.000Z" > order["lastUpdatedAt"]
    assert client.get("/shipments/E1", headers=HEADERS).get_json() == changed


def test_edit_of_the_address_reruns_orchestration(client: FlaskClient) -> None:
    order = created(client, "E2")
    assert order["provider"]["name"] == "DoorDash"
    changed = edit(client, "E2", deliveryAddress=dict(NEW_YORK)).get_json()
    assert changed["provider"]["name"] == "UPS"
    assert changed["trackingId"] != order["trackingId"]
    set_rules(client, price_cap=5)
    response = edit(client, "E2", deliveryAddress=dict(BOSTON))
    assert error_of(response)[:2] == (422, "NO_PROVIDER_MATCHED")
    response = edit(client, "E2", deliveryAddress={**BOSTON, "postalCode": "1"})
    assert error_of(response)[:2] == (422, "GEOCODING_FAILED")
    assert client.get("/shipments/E2", headers=HEADERS).get_json() == changed


def test_edit_of_the_package_after_pickup_is_refused(client: FlaskClient) -> None:
    order = created(client, "E3")
    advanced(client, "E3", to="PICKUP_COMPLETED")
    package = order["package"] | {"weight": {"value": 2, "unit": "lb"}}
    assert error_of(edit(client, "E3", package=package)) == (
        400,
        "VALIDATION_ERROR",
        "packages parameter cannot be changed post order dispatch",
    )
    assert error_of(edit(client, "E3", itemList=[]))[:2] == (400, "VALIDATION_ERROR")
    # The same package again is no change; other fields can still change.
    resent = {
        k: v for k, v in order["package"].items() if k not in ("barcode", "temperatureControl")
    }
    assert edit(client, "E3", package=resent, deliveryInstructions="x").status_code == 200


def test_edit_errors(client: FlaskClient) -> None:
    created(client, "E4")
    status, type_, message = error_of(edit(client, "E4", orderValue=-5))
    assert (status, type_) == (400, "INVALID_DATA") and "orderValue" in message
    assert error_of(edit(client, "nope", orderValue=1)) == (
        404,
        "NOT_FOUND",
        "Order with id, nope, is not found",
    )
    assert error_of(edit(client, "E4", orderExternalId="other"))[:2] == (400, "VALIDATION_ERROR")
    assert error_of(edit(client, "E4", locationExternalId="nowhere"))[:2] == (422, "INVALID_DATA")


# -- get and history ---------------------------------------------------------------------------


def test_get_unknown_is_404(client: FlaskClient) -> None:
    response = client.get("/shipments/1908241-0061", headers=HEADERS)
    assert error_of(response) == (
        404,
        "NOT_FOUND",
        "Not Found: Order with id, 1908241-0061, is not found",
    )


def test_overlong_order_id_is_422_invalid_data(client: FlaskClient) -> None:
    long_id = "x" * 101
    response = client.get(f"/shipments/{long_id}", headers=HEADERS)
    assert error_of(response) == (422, "INVALID_DATA", "Invalid data: Invalid Order Id")
    assert error_of(retry(client, long_id)) == (422, "INVALID_DATA", "Order Id value is invalid")
    assert error_of(create(client, long_id))[:2] == (400, "VALIDATION_ERROR")


def test_history_of_unknown_order_is_empty(client: FlaskClient) -> None:
    response = client.get("/shipments/nope/status-history", headers=HEADERS)
    assert response.status_code == 200 and response.get_json() == []


def test_history_answer_shape(client: FlaskClient) -> None:
    order = created(client, "H1")
    answer = client.get("/shipments/H1/status-history", headers=HEADERS).get_json()
    assert len(answer) == 1
    assert answer[0]["orderId"] == order["id"] and answer[0]["tenantId"] == TENANT
    assert answer[0]["trackingUrl"] == order["referenceLinks"]["trackingUrl"]
    first = answer[0]["orderStatus"][0]
    assert first["statusUser"] == "Default_Business_Key"
    assert first["updatedAt"] == "March 10th 2025, 10:00:00 am CDT"


# -- webhooks ----------------------------------------------------------------------------------


class Receiver:
    """A real HTTP server that records webhooks; answers ``statuses`` in turn, then 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def hooked(make_app: Callable[..., Flask], receiver: Receiver) -> FlaskClient:
    app = make_app(webhook_url=receiver.url, webhook_retry_delays=(0.01, 0.01))
    return app.test_client()


def settle(client: FlaskClient) -> list[dict[str, Any]]:
    assert sim_of(client).webhooks.wait_idle(5)
    return client.get("/_sim/webhooks").get_json()["webhooks"]


def test_webhooks_are_signed_with_the_secret(hooked: FlaskClient, receiver: Receiver) -> None:
    configure(hooked, webhook_secret="s3cret")
    order = created(hooked, "W1")
    advanced(hooked, "W1")
    settle(hooked)
    assert [p["status"] for p in receiver.payloads()] == ["ORDER_DISPATCHED", "ORDER_ASSIGNED"]
    headers, body = receiver.received[0]
    assert headers["Content-Type"] == "application/json"
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-DS-Signature"] == expected
    payload = json.loads(body)
    assert payload["storeExternalId"] == "store-1"
    assert {k: v for k, v in payload.items() if k != "storeExternalId"} == order


def test_webhook_signature_is_empty_without_a_secret(
    hooked: FlaskClient, receiver: Receiver
) -> None:
    created(hooked, "W2")
    log = settle(hooked)
    headers, _ = receiver.received[0]
    assert "X-DS-Signature" in headers and headers["X-DS-Signature"] == ""
    assert log == [
        log[0]
        | {
            "orderExternalId": "W2",
            "status": "ORDER_DISPATCHED",
            "outcome": "delivered",
            "http_status": 200,
            "attempts": 1,
        }
    ]


def test_every_api_change_sends_a_webhook(hooked: FlaskClient, receiver: Receiver) -> None:
    created(hooked, "W3", **scenario("failed"))
    edit(hooked, "W3", orderValue=20)
    advanced(hooked, "W3")
    retry(hooked, "W3")
    cancel(hooked, "W3")
    settle(hooked)
    assert [(p["status"], p["orderValue"]) for p in receiver.payloads()] == [
        ("ORDER_DISPATCHED", 10),
        ("ORDER_DISPATCHED", 20),
        ("ORDER_FAILED", 20),
        ("ORDER_DISPATCHED", 20),
        ("ORDER_CANCELLED", 20),
    ]


def test_webhook_retried_after_an_error_answer(hooked: FlaskClient, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    created(hooked, "W4")
    log = settle(hooked)
    assert len(receiver.received) == 3
    assert (log[0]["outcome"], log[0]["attempts"], log[0]["http_status"]) == ("delivered", 3, 200)


def test_webhook_given_up_after_the_retries(hooked: FlaskClient, receiver: Receiver) -> None:
    receiver.statuses = [500, 500, 500]
    created(hooked, "W5")
    log = settle(hooked)
    assert (log[0]["outcome"], log[0]["attempts"], log[0]["http_status"]) == ("failed", 3, 500)


def test_drop_fault_loses_the_next_webhook(hooked: FlaskClient, receiver: Receiver) -> None:
    queue_fault(hooked, route="webhook", kind="drop")
    created(hooked, "W6")
    advanced(hooked, "W6")
    log = settle(hooked)
    assert [p["status"] for p in receiver.payloads()] == ["ORDER_ASSIGNED"]
    assert [(e["status"], e["outcome"]) for e in log] == [
        ("ORDER_DISPATCHED", "dropped"),
        ("ORDER_ASSIGNED", "delivered"),
    ]


def test_duplicate_fault_sends_it_twice(hooked: FlaskClient, receiver: Receiver) -> None:
    queue_fault(hooked, route="webhook", kind="duplicate")
    created(hooked, "W7")
    log = settle(hooked)
    assert [p["status"] for p in receiver.payloads()] == ["ORDER_DISPATCHED"] * 2
    assert receiver.received[0][1] == receiver.received[1][1]
    assert [e["duplicate"] for e in log] == [False, True]


def test_delay_fault_delivers_out_of_order(hooked: FlaskClient, receiver: Receiver) -> None:
    queue_fault(hooked, route="webhook", kind="delay", delay_seconds=0.2)
    created(hooked, "W8")
    advanced(hooked, "W8")
    advanced(hooked, "W8")
    log = settle(hooked)
    assert [p["status"] for p in receiver.payloads()] == [
        "ORDER_ASSIGNED",
        "PICKUP_STARTED",
        "ORDER_DISPATCHED",
    ]
    assert log[-1]["delayed"] is True


def test_no_webhooks_without_a_url(client: FlaskClient) -> None:
    created(client, "W9")
    assert client.get("/_sim/webhooks").get_json() == {"webhooks": [], "pending": 0}


# -- faults ------------------------------------------------------------------------------------


def test_http_500_fault_does_nothing(client: FlaskClient) -> None:
    queue_fault(client, route="create", kind="http_500")
    response = create(client, "F1")
    assert error_of(response)[:2] == (500, "INTERNAL_SERVER_ERROR")
    assert client.get("/_sim/orders").get_json()["count"] == 0
    assert create(client, "F1").status_code == 201


@pytest.mark.parametrize(
    ("route", "type_", "status"),
    [
        ("create", "PLACE_ORDER_FAILED", 422),
        ("create", "UNMAPPED_ERROR", 422),
        ("create", "TOO_MANY_REQUESTS", 429),
        ("create", "NO_DSP_MATCHED", 422),
        ("cancel", "ORDER_ALREADY_CANCELLED", 409),
        ("edit", "GEOCODING_FAILED", 422),
        ("retry", "INVALID_OPERATION", 409),
        ("list", "INVALID_DATA", 400),
        ("get", "INVALID_DATA", 422),
        ("history", "INTERNAL_SERVER_ERROR", 500),
    ],
)
def test_error_fault_answers_the_table_entry(
    client: FlaskClient, route: str, type_: str, status: int
) -> None:
    created(client, "F2")
    queue_fault(client, route=route, kind="error", type=type_)
    calls = {
        "create": lambda: create(client, "F3"),
        "cancel": lambda: cancel(client, "F2"),
        "edit": lambda: edit(client, "F2", orderValue=1),
        "retry": lambda: retry(client, "F2"),
        "list": lambda: list_orders(client),
        "get": lambda: client.get("/shipments/F2", headers=HEADERS),
        "history": lambda: client.get("/shipments/F2/status-history", headers=HEADERS),
    }
    code, got_type, _ = error_of(calls[route]())
    assert (code, got_type) == (status, type_)
    assert client.get("/shipments/F2", headers=HEADERS).get_json()["status"] == "ORDER_DISPATCHED"
    assert client.get("/_sim/orders").get_json()["count"] == 1


def test_error_fault_messages_come_from_the_table(client: FlaskClient) -> None:
    queue_fault(client, route="get", kind="error", type="NOT_FOUND")
    response = client.get("/shipments/1908241-0061", headers=HEADERS)
    assert error_of(response) == (
        404,
        "NOT_FOUND",
        "Not Found: Order with id, 1908241-0061, is not found",
    )
    queue_fault(client, route="create", kind="error", type="PLACE_ORDER_FAILED", message="boom")
    assert error_of(create(client)) == (422, "PLACE_ORDER_FAILED", "boom")


def test_slow_fault_delays_then_answers(client: FlaskClient) -> None:
    queue_fault(client, route="get", kind="slow", delay_seconds=0.15)
    created(client, "F4")
    started = time.monotonic()
    response = client.get("/shipments/F4", headers=HEADERS)
    assert time.monotonic() - started >= 0.15 and response.status_code == 200


def test_lost_answer_fault_stores_the_order_but_answers_502(client: FlaskClient) -> None:
    queue_fault(client, route="create", kind="lost_answer")
    response = create(client, "F5")
    assert response.status_code == 502 and response.mimetype == "text/html"
    assert b"502 Bad Gateway" in response.data
    assert client.get("/shipments/F5", headers=HEADERS).status_code == 200
    assert error_of(create(client, "F5"))[:2] == (422, "DUPLICATE_ID")


def test_faults_count_and_route_filter(client: FlaskClient) -> None:
    queue_fault(client, route="get", kind="http_500", count=2)
    created(client, "F6")
    assert client.get("/_sim/faults").get_json()["faults"][0]["count"] == 2
    assert client.get("/shipments/F6", headers=HEADERS).status_code == 500
    assert client.get("/shipments/F6", headers=HEADERS).status_code == 500
    assert client.get("/shipments/F6", headers=HEADERS).status_code == 200
    assert client.get("/_sim/faults").get_json() == {"faults": []}


def test_faults_wait_for_an_authenticated_request(client: FlaskClient) -> None:
    queue_fault(client, route="get", kind="http_500")
    assert client.get("/shipments/x", headers={"tenantId": TENANT}).status_code == 403
    assert client.get("/shipments/x", headers=HEADERS).status_code == 500


@pytest.mark.parametrize(
    "payload",
    [
        {"route": "create", "kind": "boom"},
        {"kind": "http_500"},
        {"route": "nowhere", "kind": "http_500"},
        {"route": "create", "kind": "drop"},
        {"route": "webhook", "kind": "http_500"},
        {"route": "create", "kind": "error"},
        {"route": "create", "kind": "error", "type": "NOT_FOUND"},
        {"route": "history", "kind": "error", "type": "NOT_FOUND"},
        {"route": "get", "kind": "slow", "delay_seconds": -1},
        {"route": "get", "kind": "http_500", "count": 0},
    ],
)
def test_bad_fault_requests_are_400(client: FlaskClient, payload: dict[str, Any]) -> None:
    response = client.post("/_sim/faults", json=payload)
    assert response.status_code == 400 and "error" in response.get_json()


# -- rate limiting -----------------------------------------------------------------------------


def test_rate_limit_answers_429_within_the_second(client: FlaskClient, clock: FakeClock) -> None:
    configure(client, rate_limit_per_second=2)
    assert client.get("/shipments/x", headers=HEADERS).status_code == 404
    assert client.get("/shipments/x", headers=HEADERS).status_code == 404
    response = client.get("/shipments/x", headers=HEADERS)
    assert error_of(response) == (
        429,
        "TOO_MANY_REQUESTS",
        "Too many requests received per second.",
    )
    assert "Retry-After" not in response.headers
    clock.advance(1)
    assert client.get("/shipments/x", headers=HEADERS).status_code == 404
    assert client.get("/_sim/requests").get_json()["rate_limited"] == 1


# -- control -----------------------------------------------------------------------------------


def test_control_reports_and_reset(client: FlaskClient) -> None:
    created(client, "C1")
    client.get("/shipments/C1", headers=HEADERS)
    queue_fault(client, route="get", kind="http_500")
    orders = client.get("/_sim/orders").get_json()
    assert orders["count"] == 1 and orders["orders"][0]["status"] == "ORDER_DISPATCHED"
    assert orders["orders"][0]["statusHistory"][-1]["status"] == "ORDER_DISPATCHED"
    one = client.get("/_sim/orders/C1").get_json()
    assert one["scenario"] == "delivered" and one["order"]["orderExternalId"] == "C1"
    assert client.get("/_sim/orders/nope").status_code == 404
    counts = client.get("/_sim/requests").get_json()
    assert counts["requests"]["create"] == 1 and counts["requests"]["get"] == 1
    assert client.post("/_sim/reset").get_json() == {"ok": True}
    assert client.get("/_sim/orders").get_json() == {"orders": [], "count": 0}
    assert client.get("/_sim/faults").get_json() == {"faults": []}
    assert client.get("/_sim/requests").get_json()["total"] == 0
    assert client.get("/_sim/health").get_json() == {"ok": True}
    assert create(client, "C1").status_code == 201


def test_locations_can_be_added(client: FlaskClient) -> None:
    payload = {
        "locationExternalId": "store-ny",
        "name": "NY",
        "address": {
            "street1": "1 Broadway",
            "city": "New York",
            "state": "NY",
            "postalCode": "10004",
            "countryCode": "US",
        },
        "rules": {"strategy": "fastest"},
    }
    answer = client.post("/_sim/locations", json=payload).get_json()
    assert answer["tenantId"] == TENANT and "latitude" in answer["address"]
    assert answer["rules"]["providers"] == ["UPS", "FedEx", "DoorDash", "Roadie"]
    order = created(client, "N1", locationExternalId="store-ny", deliveryAddress=dict(NEW_YORK))
    assert order["pickupAddress"]["street1"] == "1 Broadway"
    assert order["provider"]["name"] == "DoorDash"  # same state now
    ids = [
        loc["locationExternalId"] for loc in client.get("/_sim/locations").get_json()["locations"]
    ]
    assert ids == ["store-1", "store-ny"]


@pytest.mark.parametrize(
    "payload",
    [
        {"locationExternalId": "s", "rules": {"strategy": "random"}},
        {"locationExternalId": "s", "rules": {"providers": ["Pony Express"]}},
        {"locationExternalId": "s", "address": {"street1": "x"}},
        {"locationExternalId": "s", "address": {**NEW_YORK, "postalCode": "1"}},
        {"rules": {}},
    ],
)
def test_bad_locations_are_400(client: FlaskClient, payload: dict[str, Any]) -> None:
    assert client.post("/_sim/locations", json=payload).status_code == 400


@pytest.mark.parametrize(
    "payload",
    [
        {"base_path": "/v2"},
        {"step_seconds": -1},
        {"error_spelling": "british"},
        {"rate_limit_per_second": 0},
        {"scenario": "lost"},
        {"shape": "vendor-ish"},
        {"webhook_url": "ftp://x"},
        {"accounts": {}},
    ],
)
def test_bad_config_is_400(client: FlaskClient, payload: dict[str, Any]) -> None:
    assert client.post("/_sim/config", json=payload).status_code == 400


def test_new_accounts_get_the_default_location(client: FlaskClient) -> None:
    configure(client, accounts={"k2": "t2"})
    headers = {"x-api-key": "k2", "tenantId": "t2"}
    assert client.post("/shipments", json=order_body(), headers=headers).status_code == 201
    assert client.get("/shipments/x", headers=HEADERS).status_code == 401  # old key gone
    report = client.get("/_sim/config").get_json()
    assert report["tenants"] == ["t2"] and report["webhook_secret_set"] is False


def test_locations_through_the_config_route(client: FlaskClient) -> None:
    rules = {"providers": ["FedEx"]}
    report = client.post(
        "/_sim/config", json={"locations": [{"locationExternalId": "s9", "rules": rules}]}
    )
    assert report.status_code == 200
    assert [loc["locationExternalId"] for loc in report.get_json()["locations"]] == [
        "store-1",
        "s9",
    ]
    assert created(client, "L9", locationExternalId="s9")["provider"]["name"] == "FedEx"
    bad = {"scenario": "failed", "locations": [{"rules": {}}]}
    assert client.post("/_sim/config", json=bad).status_code == 400
    assert client.get("/_sim/config").get_json()["scenario"] == "delivered"  # all or nothing


def test_orders_are_per_tenant(make_app: Callable[..., Flask]) -> None:
    client = make_app(accounts={API_KEY: TENANT, "k2": "t2"}).test_client()
    other = {"x-api-key": "k2", "tenantId": "t2"}
    created(client, "Same")
    assert client.post("/shipments", json=order_body("Same"), headers=other).status_code == 201
    assert client.get("/shipments/Same", headers=other).get_json()["tenantId"] == "t2"
    assert len(list_orders(client).get_json()["data"]) == 1


def test_base_path(make_app: Callable[..., Flask]) -> None:
    client = make_app(base_path="/api/v2/").test_client()
    assert client.post("/api/v2/shipments", json=order_body(), headers=HEADERS).status_code == 201
    assert client.get("/api/v2/shipments/7709-001", headers=HEADERS).status_code == 200


def test_config_from_env() -> None:
    location = {"locationExternalId": "s2", "rules": {"strategy": "fastest"}}
    config = config_from_env(
        {
            "SHIPPING_ORDERS_SIM_ACCOUNTS": "k1:t1, k2:t2",
            "SHIPPING_ORDERS_SIM_BASE_PATH": "/v1",
            "SHIPPING_ORDERS_SIM_STEP_SECONDS": "0",
            "SHIPPING_ORDERS_SIM_WEBHOOK_URL": "http://127.0.0.1:9/hooks",
            "SHIPPING_ORDERS_SIM_WEBHOOK_SECRET": "s",
            "SHIPPING_ORDERS_SIM_ERROR_SPELLING": "vendor",
            "SHIPPING_ORDERS_SIM_SHAPE": "vendor",
            "SHIPPING_ORDERS_SIM_RATE_LIMIT_PER_SECOND": "10",
            "SHIPPING_ORDERS_SIM_SCENARIO": "delayed",
            "SHIPPING_ORDERS_SIM_WEBHOOK_RETRY_DELAYS": "0.1,0.2",
            "SHIPPING_ORDERS_SIM_LOCATIONS": json.dumps([location]),
        }
    )
    assert config.accounts == {"k1": "t1", "k2": "t2"} and config.base_path == "/v1"
    assert config.step_seconds == 0 and config.webhook_secret == "s"
    assert config.error_spelling == "vendor" and config.rate_limit_per_second == 10
    assert config.shape == "vendor" and config_from_env({}).shape == "seed"
    assert config.scenario == "delayed" and config.webhook_retry_delays == (0.1, 0.2)
    assert sorted(config.locations["t1"]) == ["s2", "store-1"]
    assert config.locations["t1"]["s2"].rules.strategy == "fastest"
    assert sorted(config.locations["t2"]) == ["store-1"]
    defaults = config_from_env({})
    assert defaults.accounts == {"demo-so-key": "demo-tenant"} and defaults.step_seconds == 5.0
    with pytest.raises(ValueError):
        config_from_env({"SHIPPING_ORDERS_SIM_SCENARIO": "nope"})
    with pytest.raises(ValueError):
        config_from_env({"SHIPPING_ORDERS_SIM_SHAPE": "nope"})
    with pytest.raises(ValueError):
        parse_accounts("no-tenant-here")


# -- the vendor's shapes -----------------------------------------------------------------------

SEED_ONLY = ("id", "locationExternalId", "trackingId")
ISO_MS_Z = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture
def vendor(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app(shape="vendor").test_client()


def test_a_vendor_create_answers_201_request_received_with_empty_strings(
    vendor: FlaskClient, clock: FakeClock
) -> None:
    response = create(vendor, "V1")
    assert response.status_code == 201
    order = response.get_json()
    assert order["status"] == "REQUEST_RECEIVED"
    assert (order["provider"], order["trackingNumber"]) == ("", "")
    assert (order["createdAt"], order["lastUpdatedAt"]) == ("", "")
    assert order["receivedAtEpoch"] == clock.ms
    assert order["trackingUrl"] is None and "trackingUrl" not in order["referenceLinks"]
    assert re.fullmatch(r"[0-9a-f]{24}", order["orderId"])
    assert order["storeExternalId"] == "store-1"
    assert not set(SEED_ONLY) & set(order)
    for name in ("estimatedPickupTime", "estimatedDeliveryTime"):
        assert order[name] is order[f"{name}Starts"] is order[f"{name}Ends"] is None
    assert statuses(vendor, "V1") == ["REQUEST_RECEIVED"]
    got = vendor.get("/shipments/V1", headers=HEADERS).get_json()
    assert got["createdAt"] == got["lastUpdatedAt"] == "2025-03-10T15:00:00.000Z"  # times now
    assert got["provider"] == "" and got["trackingNumber"] == ""


def test_a_vendor_order_is_dispatched_later_with_a_string_provider_and_a_tracking_number(
    vendor: FlaskClient, clock: FakeClock
) -> None:
    set_rules(vendor, strategy="preferred", preferred_provider="FedEx")
    create(vendor, "V2")
    clock.advance(30)
    assert advanced(vendor, "V2")["status"] == "ESTIMATES_RECEIVED"
    order = advanced(vendor, "V2")
    assert order["status"] == "ORDER_DISPATCHED"
    assert order["provider"] == "FedEx"
    assert isinstance(order["trackingNumber"], int)  # all digits: a JSON integer
    assert order["trackingUrl"].endswith(str(order["trackingNumber"]))
    pickup, delivery = order["estimatedPickupTime"], order["estimatedDeliveryTime"]
    assert isinstance(pickup, int) and pickup == order["estimatedPickupTimeStarts"]
    assert order["estimatedPickupTimeEnds"] > pickup
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-0[56]:00", delivery)
    assert re.fullmatch(ISO_MS_Z, order["estimatedDeliveryTimeEnds"])
    assert re.fullmatch(ISO_MS_Z, order["estimatedDeliveryTimeStarts"])
    ends = datetime.fromisoformat(order["estimatedDeliveryTimeEnds"])
    assert datetime.fromisoformat(delivery) == ends.replace(microsecond=0)  # no ms
    assert statuses(vendor, "V2") == ["REQUEST_RECEIVED", "ESTIMATES_RECEIVED", "ORDER_DISPATCHED"]
    listed = list_orders(vendor).get_json()["data"]
    assert listed == [vendor.get("/shipments/V2", headers=HEADERS).get_json()]
    assert not set(SEED_ONLY) & set(listed[0])
    report = vendor.get("/_sim/orders/V2").get_json()
    assert report["order"]["trackingNumber"] == order["trackingNumber"]
    assert report["path"][:3] == ["REQUEST_RECEIVED", "ESTIMATES_RECEIVED", "ORDER_DISPATCHED"]


def test_other_providers_tracking_numbers_stay_text(vendor: FlaskClient) -> None:
    set_rules(vendor, strategy="preferred", preferred_provider="UPS")
    create(vendor, "V3")
    order = advanced(vendor, "V3", to="ORDER_DISPATCHED")
    assert order["provider"] == "UPS" and order["trackingNumber"].startswith("1Z")


@pytest.mark.parametrize("name", sorted(SCENARIO_PATHS))
def test_each_scenario_runs_its_path_after_the_dispatch_in_the_vendor_shape(
    vendor: FlaskClient, name: str
) -> None:
    create(vendor, "S1", **scenario(name))
    path = ("REQUEST_RECEIVED", "ESTIMATES_RECEIVED", *SCENARIO_PATHS[name])
    for expected in path[1:]:
        assert advanced(vendor, "S1")["status"] == expected
    assert statuses(vendor, "S1") == list(path)
    assert advance(vendor, "S1").status_code == 400


def test_the_clock_dispatches_vendor_orders_by_itself(
    make_app: Callable[..., Flask], clock: FakeClock
) -> None:
    client = make_app(shape="vendor", step_seconds=5).test_client()
    create(client, "K1")
    for expected in ("ESTIMATES_RECEIVED", "ORDER_DISPATCHED"):
        clock.advance(5)
        assert sim_of(client).tick() == 1
        assert client.get("/shipments/K1", headers=HEADERS).get_json()["status"] == expected


def test_a_vendor_order_cancelled_before_its_dispatch_never_gets_a_provider(
    vendor: FlaskClient,
) -> None:
    create(vendor, "V4")
    cancelled = cancel(vendor, "V4")
    assert cancelled.status_code == 200
    order = cancelled.get_json()
    assert order["status"] == "ORDER_CANCELLED" and order["provider"] == ""
    assert order["trackingNumber"] == "" and order["trackingUrl"] is None
    assert advance(vendor, "V4").status_code == 400


def test_an_address_edited_before_the_dispatch_is_dispatched_from_the_new_estimates(
    vendor: FlaskClient,
) -> None:
    create(vendor, "V5")  # Boston to Boston: DoorDash, local
    changed = edit(vendor, "V5", deliveryAddress=dict(NEW_YORK))
    assert changed.status_code == 200
    assert changed.get_json()["status"] == "REQUEST_RECEIVED"
    assert changed.get_json()["provider"] == ""
    order = advanced(vendor, "V5", to="ORDER_DISPATCHED")
    assert order["provider"] != "DoorDash"  # out of state now
    refused = edit(vendor, "V5", deliveryAddress={**NEW_YORK, "postalCode": "1"})
    assert error_of(refused)[:2] == (422, "GEOCODING_FAILED")


def test_vendor_answers_edit_cancel_and_retry_in_its_shape(vendor: FlaskClient) -> None:
    create(vendor, "V6", **scenario("failed"))
    advanced(vendor, "V6", to="ORDER_FAILED")
    retried = retry(vendor, "V6")
    assert retried.status_code == 201
    order = retried.get_json()
    assert order["status"] == "ORDER_DISPATCHED" and isinstance(order["provider"], str)
    assert order["provider"] and order["trackingNumber"] and order["trackingUrl"]
    edited = edit(vendor, "V6", orderValue=20).get_json()
    assert edited["orderValue"] == 20 and not set(SEED_ONLY) & set(edited)
    assert not set(SEED_ONLY) & set(cancel(vendor, "V6").get_json())
    answer = vendor.get("/shipments/V6/status-history", headers=HEADERS).get_json()
    assert answer[0]["orderId"] == order["orderId"]
    assert answer[0]["trackingUrl"] == order["trackingUrl"]


def test_vendor_invalid_data_and_cancellation_failed_are_400(vendor: FlaskClient) -> None:
    unknown = create(vendor, "V7", locationExternalId="nowhere")
    assert error_of(unknown)[:2] == (400, "INVALID_DATA")
    assert error_of(vendor.get(f"/shipments/{'x' * 101}", headers=HEADERS))[:2] == (
        400,
        "INVALID_DATA",
    )
    create(vendor, "V8")
    advanced(vendor, "V8", to="IN_TRANSIT")
    refused = cancel(vendor, "V8")
    assert error_of(refused)[:2] == (400, "ORDER_CANCELLATION_FAILED")
    assert refused.get_json()["errors"][0]["provider"] == "DoorDash"
    queue_fault(vendor, route="retry", kind="error", type="INVALID_DATA")
    assert error_of(retry(vendor, "V8"))[:2] == (400, "INVALID_DATA")
    queue_fault(vendor, route="create", kind="error", type="NO_PROVIDER_MATCHED")
    assert error_of(create(vendor, "V9"))[:2] == (422, "NO_PROVIDER_MATCHED")  # as the seed


def test_vendor_webhooks_carry_the_vendors_shape(
    make_app: Callable[..., Flask], receiver: Receiver
) -> None:
    client = make_app(
        shape="vendor", webhook_url=receiver.url, webhook_retry_delays=(0.01,)
    ).test_client()
    create(client, "W1")
    advanced(client, "W1", to="ORDER_DISPATCHED")
    settle(client)
    payloads = receiver.payloads()
    assert [p["status"] for p in payloads] == [
        "REQUEST_RECEIVED",
        "ESTIMATES_RECEIVED",
        "ORDER_DISPATCHED",
    ]
    assert all(p["storeExternalId"] == "store-1" for p in payloads)
    assert all(not set(SEED_ONLY) & set(p) for p in payloads)
    assert payloads[0]["provider"] == "" and payloads[0]["lastUpdatedAt"]
    assert payloads[-1] == client.get("/shipments/W1", headers=HEADERS).get_json()
    assert payloads[-1]["provider"] == "DoorDash" and payloads[-1]["trackingNumber"]


def test_the_shape_can_change_at_run_time(client: FlaskClient) -> None:
    created(client, "M1")
    configure(client, shape="vendor")
    assert client.get("/_sim/config").get_json()["shape"] == "vendor"
    order = client.get("/shipments/M1", headers=HEADERS).get_json()
    assert isinstance(order["provider"], str) and "trackingNumber" in order
    assert create(client, "M2").get_json()["status"] == "REQUEST_RECEIVED"
    configure(client, shape="seed")
    assert client.get("/shipments/M2", headers=HEADERS).get_json()["provider"] is None


def test_odd_answer_fault_writes_its_fields_into_the_answer(client: FlaskClient) -> None:
    queue_fault(client, route="create", kind="odd_answer", set={"status": None}, remove=["id"])
    order = create(client, "O1")
    assert order.status_code == 201
    assert order.get_json()["status"] is None and "id" not in order.get_json()
    assert client.get("/_sim/orders/O1").get_json()["status"] == "ORDER_DISPATCHED"  # stored
    queue_fault(client, route="list", kind="odd_answer", set={"trackingId": ["x"]})
    assert list_orders(client).get_json()["data"][0]["trackingId"] == ["x"]
    queue_fault(client, route="history", kind="odd_answer", set={"updatedAtEpoch": "soon"})
    assert {e["updatedAtEpoch"] for e in history(client, "O1")} == {"soon"}
    for bad in ({"set": []}, {"remove": "id"}, {}):
        response = client.post("/_sim/faults", json={"route": "get", "kind": "odd_answer", **bad})
        assert response.status_code == 400


# -- the command line --------------------------------------------------------------------------


@pytest.mark.pipeline  # starts a process of its own
def test_python_dash_m_serves_the_simulator() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHIPPING_ORDERS_SIM_STEP_SECONDS": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.shipping_orders", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"{url}/_sim/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        answer = requests.post(f"{url}/shipments", json=order_body(), headers=HEADERS, timeout=5)
        assert answer.status_code == 201 and answer.json()["status"] == "ORDER_DISPATCHED"
    finally:
        process.terminate()
        process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
