"""Duoplane's mapping: hub shipment:confirm → the create body (carrier by the seed's table,
items added up, every tracking number), Duoplane's shipments → shipment:confirm, matching what
Duoplane already holds, the poll window, and error reasons in Duoplane's words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from pydantic import ValidationError

from worker.basics.errors import HardError
from worker.integrations.duoplane.client import error_reasons
from worker.integrations.duoplane.mapping import (
    ApiShipment,
    ShipmentConfirm,
    carrier_of,
    confirmation,
    create_body,
    delivered_key,
    existing,
    matches,
    query_time,
    shipper,
    window_start,
)

# The seed's sample create request, as the body our mapping must produce for it.
SEED_ITEMS = [{"order_item_id": 239417, "quantity": 1}, {"order_item_id": 239418, "quantity": 2}]


def confirm(**fields: Any) -> ShipmentConfirm:
    shipment = {
        "number": "H1",
        "tracking": "1234",
        "tracking_numbers": ["1234", "5678"],
        "carrier": "UPS",
        "duoplane_purchase_order_id": 987654,
        "items": [
            {"sku": "A", "quantity": 1, "duoplane_order_item_id": 239417},
            {"sku": "B", "quantity": 2, "duoplane_order_item_id": "239418"},
        ],
        **fields,
    }
    return ShipmentConfirm.model_validate({"shipment": shipment})


def test_the_seeds_sample_is_what_a_confirmation_becomes() -> None:
    assert create_body(confirm().shipment) == {
        "shipment": {
            "shipper_id": 1,
            "shipment_items_attributes": SEED_ITEMS,
            "shipment_trackings_attributes": [{"tracking": "1234"}, {"tracking": "5678"}],
        }
    }


@pytest.mark.parametrize(
    ("carrier", "expected"),
    [
        ("UPS", {"shipper_id": 1}),
        ("ups", {"shipper_id": 1}),
        ("United Parcel Service", {"shipper_id": 1}),
        ("FedEx", {"shipper_id": 2}),
        ("FEDX", {"shipper_id": 2}),
        ("US Postal", {"shipper_id": 17}),
        ("USPS", {"shipper_id": 17}),
        ("U.S.P.S.", {"shipper_id": 17}),
        ("DHL eCommerce", {"shipper_id": 395}),
        ("DHL Express", {"shipper_name": "DHL Express"}),
        (" OnTrac ", {"shipper_name": "OnTrac"}),
    ],
)
def test_carriers_of_the_seeds_table_go_by_id_others_by_name(
    carrier: str, expected: dict[str, Any]
) -> None:
    assert shipper(carrier) == expected


def test_exactly_one_carrier_key_is_sent() -> None:
    fields = create_body(confirm(carrier="OnTrac").shipment)["shipment"]
    assert [k for k in fields if k.startswith("shipper")] == ["shipper_name"]


def test_carriers_list_is_used_when_carrier_is_missing() -> None:
    body = create_body(confirm(carrier=None, carriers=["FedEx"]).shipment)
    assert body["shipment"]["shipper_id"] == 2


def test_every_tracking_number_goes_once_cartons_included() -> None:
    shipment = confirm(
        tracking="T1",
        tracking_numbers=["T1", "T2"],
        cartons=[{"carton_id": "C3", "tracking_number": "T3"}, {"tracking_number": "T2"}],
    ).shipment
    trackings = create_body(shipment)["shipment"]["shipment_trackings_attributes"]
    assert trackings == [{"tracking": "T1"}, {"tracking": "T2"}, {"tracking": "T3"}]


def test_an_item_split_over_cartons_is_one_line_with_its_quantities_added() -> None:
    items = [
        {"sku": "A", "quantity": 1, "duoplane_order_item_id": 7},
        {"sku": "A", "quantity": 2, "duoplane_order_item_id": 7},
    ]
    body = create_body(confirm(items=items).shipment)
    assert body["shipment"]["shipment_items_attributes"] == [{"order_item_id": 7, "quantity": 3}]


def test_no_tracking_or_no_carrier_is_a_hard_error_naming_both() -> None:
    shipment = confirm(tracking=None, tracking_numbers=[], carrier=None).shipment
    with pytest.raises(HardError) as raised:
        create_body(shipment)
    assert len(raised.value.reasons) == 2
    assert "no tracking number" in raised.value.reasons[0]
    assert "no carrier" in raised.value.reasons[1]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"duoplane_purchase_order_id": None}, "duoplane_purchase_order_id"),
        ({"duoplane_purchase_order_id": "abc"}, "duoplane_purchase_order_id"),
        ({"duoplane_purchase_order_id": 2**63}, "duoplane_purchase_order_id"),  # 64-bit ids
        ({"duoplane_purchase_order_id": True}, "duoplane_purchase_order_id"),  # not id 1
        ({"duoplane_purchase_order_id": " 7 "}, "duoplane_purchase_order_id"),
        ({"duoplane_purchase_order_id": "\u0667"}, "duoplane_purchase_order_id"),  # Arabic-Indic 7
        ({"items": [{"sku": "A", "quantity": 1, "duoplane_order_item_id": True}]}, "item_id"),
        ({"items": [{"sku": "A", "quantity": 1, "duoplane_order_item_id": 10**30}]}, "item_id"),
        ({"items": []}, "items"),
        ({"items": [{"sku": "A", "quantity": 1}]}, "duoplane_order_item_id"),
    ],
)
def test_duoplanes_ids_are_required(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        confirm(**change)
    assert field in str(raised.value)


def test_the_delivered_key_does_not_depend_on_the_order_of_tracking_numbers() -> None:
    one = confirm(tracking="B", tracking_numbers=["A"]).shipment
    other = confirm(tracking="A", tracking_numbers=["B"]).shipment
    assert delivered_key(one) == delivered_key(other)
    assert delivered_key(one) != delivered_key(confirm(tracking="C", tracking_numbers=[]).shipment)


LISTED = {
    "id": 55,
    "purchase_order_id": 987654,
    "purchase_order_public_reference": "1001-1",
    "created_at": "2026-11-23T05:00:00.000Z",
    "updated_at": "2026-11-23T05:10:00.000Z",
    "shipper_id": 17,
    "shipper_name": None,
    "shipper_scac_code": "USPS",
    "shipment_trackings_attributes": [
        {"id": 1, "tracking": "9400A"},
        {"id": 2, "tracking": "9400B"},
    ],
    "shipment_items_attributes": [
        {"id": 3, "order_item_id": 239417, "quantity": 1, "order_item_name": "Blue Mug"}
    ],
}


def test_a_listed_shipment_becomes_a_confirmation_with_every_tracking_number() -> None:
    shipment = confirmation(ApiShipment.model_validate(LISTED)).to_hub()
    assert shipment["number"] == "1001-1"
    assert shipment["tracking"] == "9400A"
    assert shipment["tracking_numbers"] == ["9400A", "9400B"]
    assert shipment["carrier"] == "US Postal"  # by id, from the seed's table
    assert shipment["shipped_at"] == "2026-11-23T05:00:00+00:00"
    assert shipment["items"] == [
        {"name": "Blue Mug", "quantity": 1, "duoplane_order_item_id": 239417}
    ]
    assert shipment["duoplane_shipment_id"] == 55
    assert shipment["duoplane_purchase_order_id"] == 987654


def test_carrier_names_come_from_name_else_id_else_scac() -> None:
    assert carrier_of(1, "My UPS", None) == "My UPS"
    assert carrier_of(2, None, None) == "FedEx"
    assert carrier_of(None, None, "UPSN") == "UPS"
    assert carrier_of(None, None, "ZZZZ") == "ZZZZ"
    assert carrier_of(None, None, None) is None


def test_only_exact_tracking_numbers_on_the_same_purchase_order_match() -> None:
    listed = [
        ApiShipment.model_validate({**LISTED, "id": 1, "purchase_order_id": 1}),
        ApiShipment.model_validate(
            {**LISTED, "id": 2, "shipment_trackings_attributes": [{"tracking": "9400AX"}]}
        ),
        ApiShipment.model_validate(LISTED),
    ]
    match = existing(listed, 987654, ["9400A", "9400B"])
    assert match is not None and match.shipment.id == 55 and match.complete
    partial = existing(listed, 987654, ["9400A", "9400C"])
    assert partial is not None and partial.missing == ["9400C"]
    assert existing(listed, 987654, ["9400"]) is None


def test_every_shipment_holding_our_tracking_is_matched_the_most_complete_first() -> None:
    def listed(shipment_id: int, *numbers: str) -> ApiShipment:
        trackings = [{"tracking": n} for n in numbers]
        return ApiShipment.model_validate(
            {**LISTED, "id": shipment_id, "shipment_trackings_attributes": trackings}
        )

    shipments = [
        listed(1, "9400A"),
        listed(2, "9400A", "9400B"),
        listed(3, "9400X"),
        listed(4, "9400A", "9400B"),
    ]
    found = matches(shipments, 987654, ["9400A", "9400B"])
    assert [(m.shipment.id, m.complete) for m in found] == [(2, True), (4, True), (1, False)]
    assert matches([listed(5, "9400X")], 987654, ["9400A"]) == []


def test_the_window_starts_an_overlap_before_the_cursor_or_a_day_back() -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    cursor = datetime(2026, 11, 23, 11, tzinfo=UTC)
    overlap, lookback = timedelta(seconds=300), timedelta(hours=24)
    assert window_start(cursor, now, overlap, lookback) == cursor - overlap
    assert window_start(None, now, overlap, lookback) == now - lookback


def test_query_times_always_carry_their_offset() -> None:
    eastern = datetime.fromisoformat("2026-11-23T07:00:00-05:00")
    assert query_time(eastern) == "2026-11-23T12:00:00+00:00"


def response(status: int, body: bytes) -> requests.Response:
    made = requests.Response()
    made.status_code = status
    made._content = body
    return made


@pytest.mark.parametrize(
    ("body", "reasons"),
    [
        (
            b'{"errors": {"shipper": ["Nope does not match a carrier"], "base": ["Bad"]}}',
            ["shipper Nope does not match a carrier", "Bad"],
        ),
        (
            b'{"errors": ["Shipment items must contain at least one item"]}',
            ["Shipment items must contain at least one item"],
        ),
        (b'{"error": "Not found"}', ["Not found"]),
        (b'{"errors": [{"field": "tracking", "message": "is blank"}]}', ["tracking is blank"]),
    ],
)
def test_errors_are_read_as_an_object_or_a_list(body: bytes, reasons: list[str]) -> None:
    assert error_reasons(response(422, body)) == reasons
