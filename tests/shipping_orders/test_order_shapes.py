"""Reading the API's orders in both shapes (pure): the seed's samples and the vendor's real
objects (fixtures shaped like its documentation), every time format, and fields that cannot be
read, left out and named, never the reason an order is not read."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.shipping_orders.conftest import vendor_fixture
from worker.hub.status import ShipmentStatus
from worker.integrations.shipping_orders.mapping import (
    ApiOrder,
    HistoryEntry,
    answered_order,
    confirmation,
    iso_ms,
    moment_ms,
    observed,
    order_of,
    report,
    shipment_update,
)

S = ShipmentStatus
# The seed's Get Shipment sample, as far as we read it.
SEED_ORDER: dict[str, Any] = {
    "id": "5e1f1ef5167ab20010a74b94",
    "locationExternalId": "NYClocation101",
    "orderExternalId": "876581",
    "estimatedDeliveryTime": {"startsAt": 1598421638000, "endsAt": None},
    "estimatedPickupTime": {"startsAt": 1598421538000, "endsAt": None},
    "trackingId": "del_MoMtkAakB1LDVk",
    "referenceLinks": {"trackingUrl": "https://track.example.com/del_MoMtkAakB1LDVk"},
    "provider": {
        "name": "Point Pickup",
        "serviceId": "delivery",
        "serviceType": "Delivery",
        "displayName": "Point Pickup NYC",
        "id": "3322",
    },
    "status": "ORDER_DISPATCHED",
    "lastUpdatedAt": "2020-01-15T14:17:26.099Z",
    "createdAt": "2020-01-15T14:17:25.984Z",
}


def test_the_vendors_dispatched_order_is_read_field_by_field() -> None:
    order = order_of(vendor_fixture("order_dispatched"))

    assert order.unreadable == {}
    assert (order.carrier, order.provider_label, order.service) == ("UPS", "UPS", None)
    assert order.tracking_number == "1391249345"  # a JSON integer, as text
    assert order.tracking_url == "https://track.example.com/ups/1391249345"
    assert iso_ms(order.estimated_delivery_ms) == "2022-05-03T11:07:54.000+00:00"  # ...Ends
    assert (order.location, order.api_id) == ("100983", "6267cad7627f5f658c8b9c53")
    assert iso_ms(order.status_ms) == "2022-05-03T10:35:38.656+00:00"
    update = shipment_update(order, observed(order), 1)
    assert (update.carrier, update.provider, update.tracking) == ("UPS", "UPS", "1391249345")
    assert update.tracking_numbers == ["1391249345"]
    assert update.order_number == "R805661123"


def test_the_vendors_received_order_claims_no_provider_tracking_nor_time() -> None:
    order = order_of(vendor_fixture("order_received"))

    assert order.unreadable == {}
    assert order.carrier is order.tracking_number is order.tracking_url is None
    assert order.lastUpdatedAt is None and order.createdAt is None  # "" is not yet
    assert order.status_ms == 1679592628115  # receivedAtEpoch, for want of lastUpdatedAt
    told = report(order, None)
    (update,) = told.updates
    assert (update.status, update.provider_status) == (S.PENDING, "REQUEST_RECEIVED")
    assert update.provider is update.carrier is update.tracking is update.service is None
    assert update.tracking_numbers == [] and update.estimated_delivery_at is None
    assert told.confirm is None


def test_the_seeds_order_is_read_as_before() -> None:
    order = order_of(SEED_ORDER)

    assert order.unreadable == {}
    update = shipment_update(order, observed(order), 1)
    assert (update.carrier, update.provider, update.service) == (
        "Point Pickup",
        "Point Pickup NYC",
        "Delivery",
    )
    assert update.tracking == "del_MoMtkAakB1LDVk"
    assert update.tracking_url == "https://track.example.com/del_MoMtkAakB1LDVk"
    assert update.estimated_delivery_at == iso_ms(1598421638000)
    assert (order.location, order.api_id) == ("NYClocation101", "5e1f1ef5167ab20010a74b94")


def test_the_vendors_spelling_wins_when_both_are_there() -> None:
    order = order_of(
        {
            **SEED_ORDER,
            "trackingNumber": 42,
            "trackingUrl": "https://v/42",
            "storeExternalId": "S1",
            "orderId": "6267cad7627f5f658c8b9c5f",
        }
    )
    assert (order.tracking_number, order.tracking_url) == ("42", "https://v/42")
    assert (order.location, order.api_id) == ("S1", "6267cad7627f5f658c8b9c5f")


@pytest.mark.parametrize(
    ("estimates", "expected"),
    [
        ({"estimatedDeliveryTime": 1651576074000}, 1651576074000),
        ({"estimatedDeliveryTime": "2022-05-03T11:07:54Z"}, 1651576074000),
        ({"estimatedDeliveryTimeStarts": "1651576074000"}, 1651576074000),
        (
            {
                "estimatedDeliveryTimeStarts": 1651570000000,
                "estimatedDeliveryTimeEnds": 1651576074000,
            },
            1651576074000,
        ),
        ({"estimatedDeliveryTime": {"startsAt": 1651570000000, "endsAt": None}}, 1651570000000),
        ({"estimatedDeliveryTime": None, "estimatedDeliveryTimeEnds": ""}, None),
    ],
)
def test_an_estimated_delivery_is_read_in_every_shape(
    estimates: dict[str, Any], expected: int | None
) -> None:
    order = order_of({"orderExternalId": "H1", "status": "ORDER_DISPATCHED", **estimates})
    assert order.unreadable == {}
    assert order.estimated_delivery_ms == expected


@pytest.mark.parametrize(
    ("written", "ms"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        (1651574138656, 1651574138656),
        (1651574138656.0, 1651574138656),
        ("1651574138656", 1651574138656),
        ("2022-05-03T10:35:38.656Z", 1651574138656),
        ("2022-05-03T10:35:38Z", 1651574138000),
        ("2022-05-03T10:35:38.656+00:00", 1651574138656),
        ("2022-05-03T05:35:38.656-05:00", 1651574138656),
        ("2022-05-03T12:35:38+02:00", 1651574138000),
        ("2022-05-03T10:35:38.656", 1651574138656),  # no offset: UTC
        ("2022-05-03T10:35:38", 1651574138000),
        ("2022-05-03", 1651536000000),
    ],
)
def test_every_time_format_is_read(written: Any, ms: int | None) -> None:
    assert moment_ms(written) == ms
    order = order_of({"orderExternalId": "H1", "status": "IN_TRANSIT", "lastUpdatedAt": written})
    assert order.unreadable == {} and order.updated_ms == ms


@pytest.mark.parametrize(
    "written",
    ["April 27th 2022, 2:45:45 am CDT", "soon", "12abc", "1e5", True, [1], {"at": 1}, 1.5, 10**21],
)
def test_a_time_that_cannot_be_read_is_left_out_and_named(written: Any) -> None:
    with pytest.raises(ValueError):
        moment_ms(written)
    order = order_of({"orderExternalId": "H1", "status": "IN_TRANSIT", "actualPickupTime": written})
    assert set(order.unreadable) == {"actualPickupTime"}
    assert order.actualPickupTime is None
    assert report(order, None).updates  # the order is still reported


def test_fields_that_cannot_be_read_are_left_out_each_named_and_the_rest_read() -> None:
    raw = {
        **vendor_fixture("order_dispatched"),
        "trackingNumber": {"number": 1391249345},
        "provider": ["UPS"],
        "trackingUrl": ["https://x"],
        "estimatedDeliveryTimeEnds": "next Tuesday",
        "orderAttributes": "R1",
    }
    order = order_of(raw)

    assert set(order.unreadable) == {
        "trackingNumber",
        "provider",
        "trackingUrl",
        "estimatedDeliveryTimeEnds",
        "orderAttributes",
    }
    assert "next Tuesday" not in str(order.unreadable)  # named, never quoted
    update = shipment_update(order, observed(order), 1)
    assert update.tracking is update.carrier is update.tracking_url is None
    assert update.estimated_delivery_at == "2022-05-03T11:07:54.000+00:00"  # the time itself
    assert update.status_at == "2022-05-03T10:35:38.656+00:00"


def test_a_field_of_the_seeds_provider_that_cannot_be_read_is_named_within_it() -> None:
    order = order_of({**SEED_ORDER, "provider": {"name": "UPS", "serviceType": ["Ground"]}})
    assert order.unreadable == {"provider.serviceType": "Input should be a valid string"}
    assert (order.carrier, order.service) == ("UPS", None)


@pytest.mark.parametrize(
    "raw",
    [
        {"status": "ORDER_DISPATCHED"},
        {"orderExternalId": "H1"},
        {"orderExternalId": "", "status": "ORDER_DISPATCHED"},
        {"orderExternalId": "H1", "status": {"code": 1}},
    ],
)
def test_an_order_without_a_readable_id_or_status_is_not_read(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        order_of(raw)


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"orderExternalId": None, "status": {"code": 7}}, {"orderExternalId", "status"}),
        ({"provider": ["UPS"]}, {"provider", "orderExternalId", "status"}),
        (["not", "an", "order"], {"the answer"}),
        ("<html>", {"the answer"}),
    ],
)
def test_a_create_answer_that_cannot_be_read_falls_back_on_what_was_sent(
    raw: Any, named: set[str]
) -> None:
    read = answered_order(raw, "H1", "REQUEST_RECEIVED")

    assert read.order is not None
    assert (read.order.orderExternalId, read.order.status) == ("H1", "REQUEST_RECEIVED")
    assert set(read.unreadable) == named


def test_an_answer_without_a_readable_status_and_no_fallback_is_not_read_but_named() -> None:
    read = answered_order({"orderExternalId": "H1", "status": ""}, "H1")
    assert read.order is None and set(read.unreadable) == {"status"}
    assert answered_order({"orderExternalId": "H1", "status": "IN_TRANSIT"}, "H1").unreadable == {}


def test_a_picked_up_vendor_order_confirms_with_its_tracking_and_provider() -> None:
    order = order_of(
        {
            **vendor_fixture("order_dispatched"),
            "status": "PICKUP_COMPLETED",
            "actualPickupTime": "2022-05-03T10:40:00.000Z",
        }
    )
    confirm = confirmation(order)
    assert (confirm.tracking, confirm.carrier, confirm.carriers) == ("1391249345", "UPS", ["UPS"])
    assert confirm.shipped_at == "2022-05-03T10:40:00.000+00:00"


def test_history_entries_read_any_time_and_leave_out_what_they_cannot() -> None:
    entry = HistoryEntry.model_validate(
        {"status": "ORDER_DISPATCHED", "updatedAtEpoch": "1651574138656", "note": None}
    )
    assert entry.updatedAtEpoch == 1651574138656 and entry.unreadable == {}
    vague = HistoryEntry.model_validate(
        {"status": "ORDER_DISPATCHED", "updatedAt": "April 27th 2022, 2:45:47 am CDT"}
    )
    assert vague.updatedAtEpoch is None and vague.unreadable == {}
    odd = HistoryEntry.model_validate({"status": "IN_TRANSIT", "updatedAtEpoch": "soon"})
    assert set(odd.unreadable) == {"updatedAtEpoch"}


def test_the_webhook_payload_is_documented_with_both_shapes() -> None:
    fields = ApiOrder.model_json_schema()["properties"]
    assert {"trackingNumber", "trackingId", "trackingUrl", "storeExternalId"} <= set(fields)
    assert {"estimatedDeliveryTimeStarts", "estimatedDeliveryTimeEnds", "receivedAtEpoch"} <= set(
        fields
    )
    assert {"type": "string", "maxLength": 200} in fields["provider"]["anyOf"]
    assert {"type": "integer"} in fields["trackingNumber"]["anyOf"]
    assert {"type": "string", "maxLength": 100} in fields["trackingNumber"]["anyOf"]
    assert (fields["orderExternalId"]["maxLength"], fields["status"]["maxLength"]) == (100, 64)


@pytest.mark.parametrize(
    ("field", "value", "bound"),
    [
        ("trackingNumber", "9" * 101, 100),
        ("trackingId", "d" * 101, 100),
        ("trackingUrl", "https://t.example/" + "x" * 2048, 2048),
        ("provider", "U" * 201, 200),
        ("storeExternalId", "S" * 101, 100),
        ("orderId", "f" * 101, 100),
        ("lastUpdatedAt", "2022-05-03T10:35:38.656" + "0" * 60 + "Z", 64),
        ("orderAttributes", {"hubOrderNumber": "R" * 201}, 200),
    ],
)
def test_a_field_over_its_bound_is_left_out_naming_the_bound(
    field: str, value: Any, bound: int
) -> None:
    order = order_of({**vendor_fixture("order_dispatched"), field: value})

    (name, why), *_ = order.unreadable.items()
    assert name.startswith(field) and f"at most {bound} characters" in why, order.unreadable
    assert order.status == "ORDER_DISPATCHED"


@pytest.mark.parametrize(("field", "value"), [("orderExternalId", "H" * 101), ("status", "S" * 65)])
def test_an_order_or_status_over_its_bound_is_not_read(field: str, value: str) -> None:
    raw = {**vendor_fixture("order_dispatched"), field: value}

    with pytest.raises(ValidationError):
        order_of(raw)
    read = answered_order(raw, "H1")
    assert "at most" in read.unreadable[field]
    assert (read.order is None) == (field == "status")
