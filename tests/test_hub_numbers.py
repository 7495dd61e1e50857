"""Item prices and quantities the hub sends: what intake takes, every provider's mapping can
send. A price or quantity out of range is a 422 naming its field, never a handler's traceback.

(The break this pins: ``price: 1e30`` on a ``shipment:update`` was taken, and the Shipping Order
API's mapping raised ``decimal.InvalidOperation`` rounding it to cents, in the worker.)"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from endpoint.app import create_app
from tests.conftest import Publisher, auth, unit_settings
from worker.basics.errors import HardError
from worker.hub.messages import MAX_ITEM_PRICE, MAX_ITEM_QUANTITY, ShipmentChanged, ShipmentReady
from worker.integrations.dotcom.mapping import CANNOT_SEND, dotcom_order, order_document
from worker.integrations.shipping_orders.mapping import create_body, edit_body
from worker.store.bundle import Store
from worker.store.schema import RECORD_PREFIX

READY = json.loads(Path("tests/fixtures/dotcom/shipment_ready.json").read_text())


@pytest.fixture
def receiver(db: Store, publisher: Publisher) -> Iterator[FlaskClient]:
    app = create_app(unit_settings(max_body_bytes=64 * 1024), db, publisher)
    with app.test_client() as test_client:
        yield test_client


def update_message(message_id: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "message": "shipment:update",
        "payload": {"shipment": {"number": "H1", "items": [item]}},
    }


def ready_message(message_id: str, item: dict[str, Any]) -> dict[str, Any]:
    message = copy.deepcopy(READY)
    message["message_id"] = message_id
    message["payload"]["shipment"]["items"] = [item]
    return message


@pytest.mark.parametrize(
    ("route", "build"),
    [
        ("/shipping_orders/update_shipment", update_message),
        ("/shipping_orders/send_shipment", ready_message),
        ("/dotcom/send_shipment", ready_message),
    ],
    ids=["shipping_orders-update", "shipping_orders-send", "dotcom-send"],
)
@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"sku": "S", "quantity": 1, "price": 1e30}, "price"),
        ({"sku": "S", "quantity": 1, "price": -1}, "price"),
        ({"sku": "S", "quantity": 10**30, "price": 1}, "quantity"),
        ({"sku": "S", "quantity": 0, "price": 1}, "quantity"),
    ],
    ids=["price-1e30", "price-negative", "quantity-1e30", "quantity-0"],
)
def test_a_price_or_quantity_out_of_range_is_422_naming_it(
    receiver: FlaskClient, db: Store, route: str, build: Any, item: Any, field: str
) -> None:
    response = receiver.post(route, json=build("numbers-1", item), headers=auth())

    assert response.status_code == 422, response.get_data(as_text=True)
    description = response.json["notifications"][0]["description"]
    assert f"payload.shipment.items.0.{field}" in description, description
    assert db.redis.keys(f"{RECORD_PREFIX}*") == []


@pytest.mark.parametrize(
    "item",
    [
        {"sku": "S", "quantity": MAX_ITEM_QUANTITY, "price": str(MAX_ITEM_PRICE)},
        {"sku": "S", "quantity": 1, "price": 0},
        {"sku": "S", "quantity": 1, "price": 1e-30},
        {"sku": "S", "quantity": 2},
    ],
    ids=["at-the-limits", "free", "tiny", "no-price"],
)
def test_prices_and_quantities_in_range_are_taken(
    receiver: FlaskClient, db: Store, item: Any
) -> None:
    response = receiver.post(
        "/shipping_orders/update_shipment", json=update_message("numbers-2", item), headers=auth()
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["status"] == "queued"
    assert db.redis.llen("shipping_orders") == 1


# Any number JSON can carry (finite: intake refuses the rest before any model sees it), with
# half of them drawn near the limits so that most examples are taken.
ANY_NUMBER = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
)
QUANTITIES = st.integers(min_value=1, max_value=MAX_ITEM_QUANTITY) | ANY_NUMBER
PRICES = st.decimals(min_value=0, max_value=MAX_ITEM_PRICE) | ANY_NUMBER


def items_taken(raw: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    return [{"sku": f"S{n}", "quantity": q, "price": p} for n, (q, p) in enumerate(raw)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(st.tuples(QUANTITIES, PRICES), min_size=1, max_size=5))
def test_every_shipment_intake_takes_maps_for_every_provider(raw: list[tuple[Any, Any]]) -> None:
    """Whatever numbers the models take, each provider's mapping turns into a body: the worker
    never meets a number it cannot send."""
    items = items_taken(raw)
    try:
        ready = ShipmentReady.model_validate(
            {**READY["payload"], "shipment": {**READY["payload"]["shipment"], "items": items}}
        )
        changed = ShipmentChanged.model_validate({"shipment": {"number": "H1", "items": items}})
    except ValidationError:
        return  # refused at intake with a 422, as the test above shows

    try:
        order_document(dotcom_order(ready, {"standard": "UPS"}, date(2026, 11, 23)))
    except HardError as refused:  # past Dotcom's ranges: refused naming the field, before a call
        assert refused.subject == CANNOT_SEND
        assert all("Dotcom's" in reason for reason in refused.reasons), refused.reasons
    create_body(ready, "L1")
    edit_body(changed.shipment)
