"""Hub ``shipment:confirm`` to Spectrum's ship notification: pure functions, and what the
payload model refuses at intake."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from worker.integrations.spectrum.client import unknown_ids
from worker.integrations.spectrum.mapping import (
    ShipmentConfirmed,
    odd_looking,
    sent_summary,
    ship_notification,
    unknown_reasons,
)


def shipment(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "number": "H67606710123",
        "order_number": "R805661123",
        "status": "shipped",
        "tracking": "1ZAAA",
        "tracking_numbers": ["1ZAAA"],
        "items": [
            {"sku": "9011CC", "quantity": 1, "spectrum_recipe_set_id": "ABCD1234"},
            {"sku": "8022DD", "quantity": 2, "spectrum_recipe_set_id": "EFGH5678"},
        ],
        "cartons": [],
    }
    return {**base, **changes}


def confirmed(**changes: Any) -> ShipmentConfirmed:
    return ShipmentConfirmed.model_validate({"shipment": shipment(**changes)})


def test_the_seed_sample_shape_is_what_is_sent() -> None:
    body = ship_notification(
        confirmed(
            order_number="HA-US-DEV00011101",
            tracking="234324234324",
            tracking_numbers=[],
            items=[
                {
                    "sku": "X",
                    "quantity": 1,
                    "spectrum_recipe_set_id": "ABCD1234",
                    "serial_numbers": ["BR7MWPKFZP76NK8U"],
                }
            ],
        ).shipment
    )
    assert body == {  # the seed's example request body
        "purchaseOrderNumber": "HA-US-DEV00011101",
        "lineItems": [
            {
                "recipeSetReadableId": "ABCD1234",
                "shipmentTracking": "234324234324",
                "serialNumbers": ["BR7MWPKFZP76NK8U"],
            }
        ],
    }


def test_every_tracking_number_once_joined_by_commas_on_every_line() -> None:
    body = ship_notification(
        confirmed(
            tracking="1ZAAA",
            tracking_numbers=["1ZAAA", " 1ZBBB "],
            cartons=[{"carton_id": "1", "tracking_number": "1ZCCC"}, {"carton_id": "2"}],
        ).shipment
    )
    assert [line["shipmentTracking"] for line in body["lineItems"]] == ["1ZAAA,1ZBBB,1ZCCC"] * 2
    assert all("serialNumbers" not in line for line in body["lineItems"])


def test_items_of_one_recipe_set_are_one_line_with_their_serial_numbers() -> None:
    items = [
        {"sku": "A", "quantity": 1, "spectrum_recipe_set_id": "ABCD1234", "serial_numbers": ["S1"]},
        {"sku": "B", "quantity": 1, "spectrum_recipe_set_id": "EFGH5678"},
        {
            "sku": "C",
            "quantity": 1,
            "spectrum_recipe_set_id": "ABCD1234",
            "serial_numbers": ["S2", "S1"],
        },
    ]
    body = ship_notification(confirmed(items=items).shipment)
    assert [
        (line["recipeSetReadableId"], line.get("serialNumbers")) for line in body["lineItems"]
    ] == [
        ("ABCD1234", ["S1", "S2"]),
        ("EFGH5678", None),
    ]


def test_the_purchase_order_number_comes_first_then_the_order_number() -> None:
    assert (
        ship_notification(confirmed(purchase_order_number="PO-1").shipment)["purchaseOrderNumber"]
        == "PO-1"
    )
    assert ship_notification(confirmed().shipment)["purchaseOrderNumber"] == "R805661123"


def test_an_item_without_its_recipe_set_is_refused_naming_the_field() -> None:
    items = [{"sku": "A", "quantity": 1}]
    with pytest.raises(ValidationError) as caught:
        confirmed(items=items)
    (error,) = caught.value.errors()
    assert error["loc"] == ("shipment", "items", 0, "spectrum_recipe_set_id")
    assert error["type"] == "missing"


@pytest.mark.parametrize("order", [{"order_number": None}, {"order_number": "  "}])
def test_a_shipment_without_a_purchase_order_is_refused_naming_both_fields(
    order: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError) as caught:
        confirmed(**order)
    assert "purchase_order_number or order_number is required" in str(caught.value)


def test_a_shipment_without_tracking_or_items_is_refused() -> None:
    with pytest.raises(ValidationError, match="a tracking number is required"):
        confirmed(tracking=None, tracking_numbers=[], cartons=[{"carton_id": "1"}])
    with pytest.raises(ValidationError, match="items"):
        confirmed(items=[])


def test_unknown_ids_are_read_from_spectrums_words() -> None:
    assert unknown_ids("Unable to find recipeSetReadableId(s): MUEMVK2U.") == ["MUEMVK2U"]
    assert unknown_ids("Unable to find recipeSetReadableId(s): A1, B2 C3.") == ["A1", "B2", "C3"]
    assert unknown_ids("Ship Notification processing for X encountered an error.") is None


def test_unknown_reasons_quote_spectrum_name_the_ids_and_flag_odd_ones() -> None:
    body = ship_notification(confirmed().shipment)
    reasons = unknown_reasons(body, ["EFGH5678", "sku-1"], "Unable to find ...: EFGH5678.", 409)
    assert reasons[0] == "Unable to find ...: EFGH5678."
    assert "EFGH5678, sku-1" in reasons[1] and "R805661123" in reasons[1]
    assert "nothing in the order was updated" in reasons[1]
    assert reasons[2].startswith("sku-1 do(es) not look like")
    assert odd_looking(["ABCD1234", "abcd1234", "ABCD123", "MUEMVK2U"]) == ["abcd1234", "ABCD123"]


def test_the_summary_names_order_recipe_sets_tracking_and_spectrums_words() -> None:
    body = ship_notification(confirmed().shipment)
    text = sent_summary("H1", body, "Updated tracking number for recipeSetReadableId(s): X.")
    assert "H1" in text and "R805661123" in text and "ABCD1234, EFGH5678" in text
    assert "1ZAAA" in text and "Updated tracking number" in text
