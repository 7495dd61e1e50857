"""Whatever a payload model takes at intake, the mapping its handler calls either maps it or
raises ``HardError``: never another exception, which the worker would retry until the message
is dead, and never minutes of CPU.

Property tests, one per handler: payloads are drawn from a valid one with any field replaced by
an odd value (extreme numbers, dates at the ends of the calendar, long or odd Unicode text,
empty strings, null, lists, extra keys), those the model refuses are dropped (a 422 at intake),
the rest go through the mapping. The breaks they found are pinned below them.
"""

from __future__ import annotations

import contextlib
import copy
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from endpoint.app import create_app
from simulators.dotcom.documents import parse_orders
from simulators.dotcom.schema import schema_problems
from tests.conftest import Publisher, auth, unit_settings
from worker.basics.errors import HardError
from worker.hub.messages import ShipmentChanged, ShipmentReady
from worker.integrations.dotcom.mapping import DotcomOrder, dotcom_order, order_document
from worker.integrations.dotcom.mapping import parse_cursor as dotcom_cursor
from worker.integrations.dotcom.mapping import poll_window as dotcom_window
from worker.integrations.dotcom.settings import DotcomSettings
from worker.integrations.duoplane.mapping import (
    ShipmentConfirm,
    create_body,
    delivered_key,
    query_time,
    window_start,
)
from worker.integrations.duoplane.mapping import parse_cursor as duoplane_cursor
from worker.integrations.ecomdash.mapping import TrackingConfirmation, tracking_record
from worker.integrations.shipping_orders import mapping as orders
from worker.integrations.spectrum.mapping import ShipmentConfirmed, ship_notification
from worker.store.bundle import Store
from worker.store.schema import RECORD_PREFIX

ZONE = ZoneInfo("America/New_York")

# Text a field may hold: odd Unicode, numbers and dates as text, the ends of the calendar.
ODD_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\u202e",
            "1e999999999",
            "-1",
            "0",
            "NaN",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01",
            "9999-12-31",
            "2024-05-01T10:15:00Z",
            "x" * 5000,
            "ß" * 300,
        ]
    ),
)
ODD_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**99), max_value=10**99),
    st.floats(allow_nan=False, allow_infinity=False),
    ODD_TEXT,
)
ODD_VALUE = st.one_of(
    ODD_SCALAR,
    st.lists(ODD_SCALAR, max_size=3),
    st.dictionaries(ODD_TEXT, ODD_SCALAR, max_size=2),
)


def paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``value`` (its containers too)."""
    found = [at]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths(inner, (*at, key))
    elif isinstance(value, list):
        for position, inner in enumerate(value):
            found += paths(inner, (*at, position))
    return found


def put(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    """``value`` with the place ``at`` holding ``new``."""
    if not at:
        return new
    head, rest = at[0], at[1:]
    copied = copy.copy(value)
    copied[head] = put(value[head], rest, new) if rest else new
    return copied


# Keys that ride as extras on some models (a mapping may read them), added with any value.
EXTRA_KEYS = ("carriers", "purchase_order_number", "shipped_at", "order", "x")


@st.composite
def odd(draw: st.DrawFn, valid: Any) -> Any:
    """``valid`` with one to three of its places replaced by an odd value, or an extra key
    added to one of its objects."""
    value = copy.deepcopy(valid)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.sampled_from(paths(value)))
        current = _at(value, at)
        if isinstance(current, dict) and draw(st.booleans()):
            key = draw(st.sampled_from(EXTRA_KEYS))
            value = put(value, (*at, key), draw(ODD_VALUE))
        elif isinstance(current, list) and current and draw(st.booleans()):
            value = put(value, at, [*current, *current])  # repeats
        else:
            value = put(value, at, draw(ODD_VALUE))
    return value


def _at(value: Any, at: tuple[Any, ...]) -> Any:
    for step in at:
        value = value[step]
    return value


def taken(model: type[BaseModel], raw: Any) -> Any:
    """The payload as the model takes it at intake, or None when intake refuses it (422)."""
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


ADDRESS = {
    "firstname": "Ann",
    "lastname": "Lee",
    "company": "Acme",
    "address1": "1 Main St",
    "address2": "Suite 2",
    "city": "Bethesda",
    "state": "Maryland",
    "zipcode": "20815",
    "country": "US",
    "phone": "555-0100",
}
ITEM = {"sku": "SKU-1", "quantity": 2, "price": "9.99", "variant_id": "V1", "name": "Mug"}
SHIPMENT = {
    "number": "H1",
    "order_number": "R1",
    "email": "ann@example.com",
    "shipping_method": "UPS Ground",
    "shipping_address": ADDRESS,
    "billing_address": ADDRESS,
    "items": [ITEM],
}
READY = {"shipment": SHIPMENT, "order": {"billing_address": ADDRESS}}
CHANGED = {"shipment": {**SHIPMENT}}
CONFIRMED = {
    "number": "H1",
    "order_number": "R1",
    "tracking": "1Z1",
    "tracking_numbers": ["1Z1", "1Z2"],
    "tracking_url": "https://ups.example/1Z1",
    "carrier": "UPS",
    "service": "Ground",
    "shipped_at": "2024-05-01T10:15:00-04:00",
    "cartons": [{"carton_id": "C1", "tracking_number": "1Z2"}],
}
ECOMDASH = {
    "shipment": {
        **CONFIRMED,
        "ecomdash_shipment_id": 20405,
        "items": [
            {
                "sku": "S1",
                "quantity": 1,
                "ecomdash_line_item_id": 5,
                "tracking_number": "1Z3",
                "carton_id": "C1",
            }
        ],
    }
}
DUOPLANE = {
    "shipment": {
        **CONFIRMED,
        "duoplane_purchase_order_id": 987,
        "items": [{"sku": "S1", "quantity": 1, "duoplane_order_item_id": 7}],
    }
}
SPECTRUM = {
    "shipment": {
        **CONFIRMED,
        "purchase_order_number": "PO1",
        "items": [
            {
                "sku": "S1",
                "quantity": 1,
                "spectrum_recipe_set_id": "ABCD1234",
                "serial_numbers": ["SN1", "SN2"],
            }
        ],
    }
}
WEBHOOK = {
    "orderExternalId": "H1",
    "status": "PICKUP_COMPLETED",
    "lastUpdatedAt": "2022-05-03T10:35:38.656Z",
    "trackingId": "T1",
    "provider": {"name": "Uber", "displayName": "Uber Direct", "serviceType": "car"},
    "referenceLinks": {"trackingUrl": "https://track.example/T1"},
    "estimatedDeliveryTime": {"startsAt": 1651574138656, "endsAt": 1651577738656},
    "actualPickupTime": 1651574138656,
    "orderAttributes": {"hubOrderNumber": "R1", "shippingMethod": "UPS"},
}
PROPERTY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


def only_hard_errors(call: Any) -> None:
    """Run ``call``: it may map or raise HardError, nothing else."""
    with contextlib.suppress(HardError):
        call()


@PROPERTY
@given(odd(READY))
def test_dotcom_and_shipping_orders_map_any_shipment_ready_intake_takes(raw: Any) -> None:
    ready = taken(ShipmentReady, raw)
    if ready is None:
        return
    methods = {"UPS Ground": "03", str(ready.shipment.shipping_method): "01"}
    only_hard_errors(lambda: valid_for_dotcom(dotcom_order(ready, methods, date(2026, 11, 23))))
    only_hard_errors(lambda: orders.create_body(ready, "L1"))


def valid_for_dotcom(order: DotcomOrder) -> None:
    """Every order document made is one Dotcom's schema takes (the simulator's reading of it,
    written apart from the builder)."""
    (element,) = parse_orders(order_document(order))
    assert schema_problems(element) == []


@PROPERTY
@given(odd(CHANGED))
def test_shipping_orders_maps_any_shipment_update_intake_takes(raw: Any) -> None:
    changed = taken(ShipmentChanged, raw)
    if changed is not None:
        only_hard_errors(lambda: orders.edit_body(changed.shipment))


@PROPERTY
@given(odd(ECOMDASH), st.sampled_from([{}, {"UPS": 3, "FedEx": 2}]))
def test_ecomdash_maps_any_confirmation_intake_takes(raw: Any, lookup: dict[str, int]) -> None:
    confirmation = taken(TrackingConfirmation, raw)
    if confirmation is not None:
        only_hard_errors(lambda: tracking_record(confirmation.shipment, lookup, ZONE))


@PROPERTY
@given(odd(DUOPLANE))
def test_duoplane_maps_any_confirmation_intake_takes(raw: Any) -> None:
    confirmation = taken(ShipmentConfirm, raw)
    if confirmation is not None:
        only_hard_errors(lambda: create_body(confirmation.shipment))
        only_hard_errors(lambda: delivered_key(confirmation.shipment))


@PROPERTY
@given(odd(SPECTRUM))
def test_spectrum_maps_any_confirmation_intake_takes(raw: Any) -> None:
    confirmation = taken(ShipmentConfirmed, raw)
    if confirmation is not None:
        only_hard_errors(lambda: ship_notification(confirmation.shipment))


@PROPERTY
@given(odd(WEBHOOK))
def test_shipping_orders_reports_any_webhook_order_intake_takes(raw: Any) -> None:
    order = taken(orders.ApiOrder, raw)
    if order is not None:
        only_hard_errors(lambda: orders.report(order, None))
        only_hard_errors(lambda: orders.shipment_update(order, orders.observed(order), 1))


# ---------------------------------------------------------------------------------------------
# The breaks found


def ecomdash_confirmation(**fields: Any) -> TrackingConfirmation:
    shipment = copy.deepcopy(ECOMDASH["shipment"])
    shipment["items"] = [{"sku": "S1", "quantity": 1}]
    return TrackingConfirmation.model_validate({"shipment": {**shipment, **fields}})


@pytest.mark.parametrize("carriers", [5, True, "UPS", [None], ["UPS", {"a": 1}]])
def test_ecomdash_carriers_that_are_not_a_list_of_names_are_refused_naming_them(
    carriers: Any,
) -> None:
    """``carriers: 5`` was taken as an extra key, and the mapping raised TypeError iterating it
    (``[5]``: AttributeError, ``5.casefold``; ``"UPS"`` named carrier ``"U"``)."""
    with pytest.raises(ValidationError) as refused:
        ecomdash_confirmation(carriers=carriers)

    assert any(e["loc"][:2] == ("shipment", "carriers") for e in refused.value.errors())


def test_ecomdash_carriers_that_are_not_names_are_a_422_naming_them_at_intake(
    db: Store, publisher: Publisher
) -> None:
    message = {
        "message_id": "carriers-1",
        "message": "shipment:confirm",
        "payload": {"shipment": {**ECOMDASH["shipment"], "carriers": 5}},
    }
    app = create_app(unit_settings(), db, publisher)
    with app.test_client() as client:
        response = client.post("/ecomdash/send_tracking", json=message, headers=auth())

    assert response.status_code == 422, response.get_data(as_text=True)
    assert "payload.shipment.carriers" in response.json["notifications"][0]["description"]
    assert db.redis.keys(f"{RECORD_PREFIX}*") == []


def test_ecomdash_carriers_name_the_carrier_when_carrier_is_absent() -> None:
    mapped = tracking_record(
        ecomdash_confirmation(carrier=None, carriers=["FedEx", "UPS"]).shipment,
        {"FedEx": 2},
        ZONE,
    )

    assert mapped.record["CarrierId"] == 2
    number = ecomdash_confirmation(carrier=None, carriers=[5]).shipment
    assert tracking_record(number, {"5": 9}, ZONE).record["CarrierId"] == 9  # numbers are text


@pytest.mark.parametrize("shipped_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_ecomdash_a_shipped_at_out_of_the_calendar_in_the_zone_is_left_out_with_a_warning(
    shipped_at: str,
) -> None:
    """Read, but a year 0 or 10000 in the configured zone: astimezone raised OverflowError."""
    mapped = tracking_record(ecomdash_confirmation(shipped_at=shipped_at).shipment, {}, ZONE)

    assert "ShippedDate" not in mapped.record
    assert any("shipped_at" in w for w in mapped.warnings)


@pytest.mark.parametrize(
    "fields",
    [
        {"actualPickupTime": 10**20},
        {"actualPickupTime": 10**99},
        {"estimatedDeliveryTime": {"endsAt": -(10**18)}},
        {"lastUpdatedAt": "0001-01-01T00:00:00+01:00", "actualPickupTime": None},
        {"lastUpdatedAt": "9999-12-31T23:59:59-10:00", "actualPickupTime": None},
    ],
)
def test_shipping_orders_an_order_time_out_of_the_calendar_is_an_unknown_time(
    fields: dict[str, Any],
) -> None:
    """A webhook's (or the API's) epoch milliseconds past the calendar raised OSError,
    OverflowError or ValueError turning them into ISO 8601; they are unknown times now, as
    unreadable ones were."""
    order = orders.ApiOrder.model_validate({**WEBHOOK, **fields})

    told = orders.report(order, None)

    assert told.updates and told.confirm is not None
    assert orders.iso_ms(10**99) is None


# Cursors (``last_polling_datetime``): a hub parameter, taken as the message carries it.
FAR_CURSORS = [
    "0001-01-01",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
]


@pytest.mark.parametrize("raw", [*FAR_CURSORS, "9" * 30, "9" * 4000])
def test_shipping_orders_a_cursor_out_of_range_is_a_value_error(raw: str) -> None:
    """``0001-01-01`` raised OverflowError taking the overlap off it; epoch milliseconds of 30
    digits raised OverflowError (cursor_of turns only ValueError into a HardError)."""
    with pytest.raises(ValueError, match="out of range"):
        moment = orders.parse_cursor(raw)
        orders.poll_windows(moment, datetime.now(UTC), timedelta(hours=1), timedelta(hours=1))


@pytest.mark.parametrize(
    "raw", ["0001-01-01", "0001-01-01 00:00 +2359", "9999-12-31 23:59:59 -2359"]
)
def test_dotcom_a_cursor_out_of_range_is_a_value_error(raw: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        dotcom_window(dotcom_cursor(raw, ZONE), datetime.now(ZONE), DotcomSettings())


@pytest.mark.parametrize("raw", FAR_CURSORS)
def test_duoplane_a_cursor_out_of_range_is_a_value_error(raw: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        query_time(
            window_start(
                duoplane_cursor(raw), datetime.now(UTC), timedelta(hours=1), timedelta(hours=1)
            )
        )


def test_spectrum_serial_numbers_are_gathered_in_linear_time() -> None:
    """Two items of one recipe set with 60,000 serial numbers each (a body under 1 MiB) took
    about 20 s: each serial was looked for in a list of those before it."""
    serials = [[f"{i}" for i in range(60_000)], [f"x{i}" for i in range(60_000)]]
    items = [
        {"sku": "S", "quantity": 1, "spectrum_recipe_set_id": "ABCD1234", "serial_numbers": s}
        for s in serials
    ]
    shipment = {**SPECTRUM["shipment"], "items": items}
    confirmation = ShipmentConfirmed.model_validate({"shipment": shipment})

    started = time.monotonic()
    (line,) = ship_notification(confirmation.shipment)["lineItems"]

    assert time.monotonic() - started < 1.0
    assert line["serialNumbers"] == [*serials[0], *serials[1]]


def test_spectrum_a_serial_number_repeated_in_one_item_is_sent_once() -> None:
    item = {
        "sku": "S",
        "quantity": 1,
        "spectrum_recipe_set_id": "ABCD1234",
        "serial_numbers": ["SN1", " SN1", "SN2"],
    }
    shipment = {**SPECTRUM["shipment"], "items": [item]}
    confirmation = ShipmentConfirmed.model_validate({"shipment": shipment})

    (line,) = ship_notification(confirmation.shipment)["lineItems"]

    assert line["serialNumbers"] == ["SN1", "SN2"]
