"""A hub confirmation as ecomdash's tracking record, and ecomdash's answer back to each record."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from worker.basics.errors import HardError
from worker.integrations.ecomdash.mapping import (
    EcomdashShipment,
    SubmitAnswer,
    TrackingConfirmation,
    carrier_ids,
    delivery_key,
    results_for,
    shipped_date,
    tracking_record,
)

UTC = ZoneInfo("UTC")
LOOKUP = {"UPS": 1, "FedEx": 2}
# The seed's 200 sample, verbatim.
SEED_ANSWER = {
    "status": "Success",
    "messages": [],
    "pagination": None,
    "data": [
        {
            "Request": {
                "ShipmentId": 20405,
                "CarrierId": None,
                "TrackingNumber": "ABC123XYZ",
                "ShippedDate": "2016-07-18T12:57:33",
                "EstimatedDeliveryDate": "2016-07-21T00:00:00",
                "LineItems": [],
            },
            "WasSuccessful": True,
            "Messages": None,
        },
        {
            "Request": {
                "ShipmentId": 20404,
                "CarrierId": None,
                "TrackingNumber": "XYZ123XYZ",
                "ShippedDate": "2016-07-18T12:57:33",
                "EstimatedDeliveryDate": "2016-07-21T00:00:00",
                "LineItems": [],
            },
            "WasSuccessful": True,
            "Messages": None,
        },
    ],
}


def confirmation(**shipment: Any) -> TrackingConfirmation:
    base: dict[str, Any] = {
        "number": "H100",
        "order_number": "R100",
        "status": "shipped",
        "tracking": "1Z999",
        "tracking_numbers": ["1Z999"],
        "carrier": "UPS",
        "shipped_at": "2024-05-01T10:15:00-04:00",
        "items": [{"sku": "SKU-1", "quantity": 1}],
        "ecomdash_shipment_id": 20405,
    }
    return TrackingConfirmation.model_validate({"shipment": {**base, **shipment}})


def record_of(**shipment: Any) -> dict[str, Any]:
    return tracking_record(confirmation(**shipment).shipment, LOOKUP, UTC).record


def test_a_whole_shipment_is_one_record_without_line_items() -> None:
    mapped = tracking_record(
        confirmation(tracking_url="https://ups.example/1Z999").shipment, LOOKUP, UTC
    )
    assert mapped.record == {
        "ShipmentId": 20405,
        "CarrierId": 1,
        "TrackingNumber": "1Z999",
        "TrackingURL": "https://ups.example/1Z999",
        "ShippedDate": "2024-05-01T14:15:00",
    }
    assert mapped.warnings == []


@pytest.mark.parametrize("given", [20405, 20405.0, "20405", "20405.0"])
def test_ids_typed_as_decimals_are_integers(given: Any) -> None:
    assert record_of(ecomdash_shipment_id=given)["ShipmentId"] == 20405


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "given",
    [
        *(20405.5, "abc", True, 0, -3, None, "1e999999999", 2**63, "9" * 40),
        *(" 20405 ", "20405 ", "\u0662\u0660\u0664\u0660\u0665", "1e5", "+20405", "20_405"),
        *(2.0**60, "0" * 5000 + "1"),  # a fraction that is no longer exact; 5,000 digits
    ],
)
def test_an_id_that_is_not_a_whole_positive_number_is_refused_naming_the_field(given: Any) -> None:
    """Ids are 64-bit: ``"1e999999999"``, a finite decimal whose conversion to a whole number
    would take hours, is refused before it is converted."""
    with pytest.raises(ValidationError) as caught:
        confirmation(ecomdash_shipment_id=given)
    assert any(e["loc"] == ("shipment", "ecomdash_shipment_id") for e in caught.value.errors())


def test_a_confirmation_without_the_ecomdash_shipment_id_is_refused_naming_it() -> None:
    body = confirmation().model_dump()
    del body["shipment"]["ecomdash_shipment_id"]
    with pytest.raises(ValidationError) as caught:
        TrackingConfirmation.model_validate(body)
    assert ("shipment", "ecomdash_shipment_id") in [e["loc"] for e in caught.value.errors()]


def test_dates_are_written_without_a_zone_as_wall_time_in_the_configured_zone() -> None:
    assert shipped_date("2024-05-01T10:15:00-04:00", UTC) == "2024-05-01T14:15:00"
    assert shipped_date("2024-05-01T14:15:00Z", ZoneInfo("America/Chicago")) == (
        "2024-05-01T09:15:00"
    )
    assert shipped_date("2024-05-01T10:15:00.123456", UTC) == "2024-05-01T10:15:00"
    assert shipped_date("2024-05-01", UTC) == "2024-05-01T00:00:00"
    assert shipped_date(None, UTC) is None


def test_an_unreadable_shipped_at_is_left_out_with_a_warning() -> None:
    mapped = tracking_record(confirmation(shipped_at="yesterday").shipment, LOOKUP, UTC)
    assert "ShippedDate" not in mapped.record
    assert any("yesterday" in w for w in mapped.warnings)


def test_a_carrier_missing_from_the_lookup_is_sent_without_carrier_id_and_warned() -> None:
    mapped = tracking_record(confirmation(carrier="DHL Express").shipment, LOOKUP, UTC)
    assert "CarrierId" not in mapped.record
    assert mapped.record["TrackingNumber"] == "1Z999"
    (warning,) = mapped.warnings
    assert "'DHL Express' is not in carrier_lookup" in warning and "'UPS'" in warning


def test_carrier_names_match_loosely() -> None:
    assert record_of(carrier="fedex")["CarrierId"] == 2
    assert record_of(carrier=" U.P.S ")["CarrierId"] == 1


@pytest.mark.parametrize(
    "raw",
    [
        '[{"UPS": 1}, {"FedEx": 2}]',
        [{"UPS": 1}, {"FedEx": "2"}],
        {"UPS": 1.0, "FedEx": 2},
        '{"UPS": 1, "FedEx": 2}',
    ],
)
def test_carrier_lookup_takes_the_hubs_list_of_hashes_or_one_mapping(raw: Any) -> None:
    assert carrier_ids(raw) == {"UPS": 1, "FedEx": 2}


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '{"UPS": "one"}', '{"UPS": 1.5}'])
def test_a_bad_carrier_lookup_is_a_hard_error(raw: str) -> None:
    with pytest.raises(HardError) as caught:
        carrier_ids(raw)
    assert caught.value.subject == "Invalid carrier_lookup"


def test_several_cartons_without_line_item_ids_send_the_first_number_and_warn() -> None:
    mapped = tracking_record(
        confirmation(
            tracking="1ZA", tracking_numbers=["1ZA", "1ZB"], cartons=[{"tracking_number": "1ZC"}]
        ).shipment,
        LOOKUP,
        UTC,
    )
    assert mapped.record["TrackingNumber"] == "1ZA"
    assert "LineItems" not in mapped.record
    assert any("not sent 1ZB, 1ZC" in w for w in mapped.warnings)


def test_a_partial_shipment_lists_only_its_line_items() -> None:
    record = record_of(
        items=[{"sku": "A", "quantity": 1, "ecomdash_line_item_id": "204051.0"}],
    )
    assert record["LineItems"] == [{"LineItemId": 204051}]  # inherits the record's number
    assert record["TrackingNumber"] == "1Z999"


def test_cartons_map_to_items_by_carton_id_then_own_number_then_position() -> None:
    record = record_of(
        tracking="1ZA",
        tracking_numbers=["1ZA", "1ZB"],
        cartons=[
            {"carton_id": "c1", "tracking_number": "1ZA"},
            {"carton_id": "c2", "tracking_number": "1ZB"},
        ],
        items=[
            {"sku": "A", "quantity": 1, "ecomdash_line_item_id": 1, "carton_id": "c2"},
            {"sku": "B", "quantity": 1, "ecomdash_line_item_id": 2, "tracking_number": "OWN"},
        ],
    )
    assert record["LineItems"] == [
        {"LineItemId": 1, "TrackingNumber": "1ZB"},
        {"LineItemId": 2, "TrackingNumber": "OWN"},
    ]
    by_position = record_of(
        tracking=None,
        tracking_numbers=[],
        cartons=[{"tracking_number": "T1"}, {"tracking_number": "T2"}],
        items=[
            {"sku": "A", "quantity": 1, "ecomdash_line_item_id": 1},
            {"sku": "B", "quantity": 1, "ecomdash_line_item_id": 2},
        ],
    )
    assert by_position["TrackingNumber"] == "T1"
    assert by_position["LineItems"] == [
        {"LineItemId": 1},
        {"LineItemId": 2, "TrackingNumber": "T2"},
    ]


def test_an_item_without_its_id_among_items_with_ids_is_a_hard_error_naming_it() -> None:
    with pytest.raises(HardError) as caught:
        record_of(
            items=[
                {"sku": "A", "quantity": 1, "ecomdash_line_item_id": 1},
                {"sku": "B", "quantity": 1},
            ]
        )
    assert "items[1] (sku B)" in caught.value.reasons[0]


def test_no_tracking_number_and_no_line_items_is_a_hard_error() -> None:
    with pytest.raises(HardError) as caught:
        record_of(tracking=None, tracking_numbers=[])
    assert "TrackingNumber" in caught.value.reasons[0]


def test_the_delivery_key_ignores_date_and_carrier_but_not_tracking_or_items() -> None:
    one = record_of()
    assert delivery_key(one) == delivery_key(record_of(carrier="FedEx", shipped_at=None))
    assert delivery_key(one) != delivery_key(record_of(tracking="OTHER", tracking_numbers=[]))
    partial = record_of(items=[{"sku": "A", "quantity": 1, "ecomdash_line_item_id": 7}])
    assert delivery_key(partial) == "20405:1Z999:7"


def test_results_match_records_by_position_or_by_shipment_id() -> None:
    answer = SubmitAnswer.model_validate(SEED_ANSWER)
    records = [{"ShipmentId": 20405}, {"ShipmentId": 20404}]
    assert [r.Request["ShipmentId"] for r in results_for(records, answer)] == [20405, 20404]
    fewer = SubmitAnswer.model_validate({**SEED_ANSWER, "data": SEED_ANSWER["data"][1:]})
    found = results_for(records, fewer)
    assert found[0] is None and found[1] is not None and found[1].WasSuccessful


def test_the_id_bound_is_in_json_schema_terms_for_clients_and_the_openapi_document() -> None:
    schema = EcomdashShipment.model_json_schema()["properties"]["ecomdash_shipment_id"]

    assert schema == {
        "exclusiveMinimum": 0,
        "maximum": 2**63 - 1,
        "title": "Ecomdash Shipment Id",
        "type": "integer",
    }
