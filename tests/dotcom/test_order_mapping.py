"""Hub shipment → Dotcom order: the seed sample, field limits and formats, the shipping lookup."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import date
from typing import Any

import pytest
from defusedxml.ElementTree import fromstring
from pydantic import ValidationError

from simulators.dotcom.documents import parse_orders
from simulators.dotcom.schema import schema_problems
from tests.dotcom.conftest import seed_shipment_ready
from worker.basics.errors import HardError
from worker.hub.messages import ShipmentReady
from worker.integrations.dotcom.mapping import (
    dotcom_order,
    order_document,
    plain_text,
    shipping_methods,
)
from worker.integrations.us_states import region_code

TODAY = date(2013, 10, 28)
XSI = "http://www.w3.org/2001/XMLSchema-instance"
TOTALS = (
    "total-tax",
    "total-shipping-handling",
    "total-order-amount",
    "total-discount",
    "declared-value",
)
SEED_LOOKUP = {"Standard": "03", "UPS Two Day (USD)": "02"}


def ready(**shipment: Any) -> ShipmentReady:
    body = seed_shipment_ready()["payload"]
    body["shipment"].update(shipment)
    return ShipmentReady.model_validate(body)


def address(**fields: Any) -> dict[str, Any]:
    return {**seed_shipment_ready()["payload"]["shipment"]["shipping_address"], **fields}


def seed_document(**shipment: Any) -> ET.Element:
    order = dotcom_order(ready(**shipment), SEED_LOOKUP, TODAY)
    root = fromstring(order_document(order))
    assert root.tag == "orders"
    (element,) = root.findall("order")
    return element


def refusal(**shipment: Any) -> list[str]:
    with pytest.raises(HardError) as caught:
        dotcom_order(ready(**shipment), SEED_LOOKUP, TODAY)
    return caught.value.reasons


# -- the seed sample -----------------------------------------------------------------------------


def test_seed_sample_maps_to_a_dotcom_order() -> None:
    order = seed_document()

    assert order.findtext("order-number") == "H67606710123"  # the shipment number: 12 <= 20
    assert order.findtext("invoice-number") == "0"  # an integer: never the hub's R805661123
    assert order.findtext("po-number") == "R805661123"  # the hub order number
    assert order.findtext("order-date") == "2013-10-28"
    assert order.findtext("ship_date") == "2013-10-28"
    assert order.findtext("ship-method") == "03"


def test_seed_totals_come_from_its_items_and_cost() -> None:
    order = seed_document()  # items 29.00 + 27.00, cost 10.0, no tax given

    assert {name: order.findtext(name) for name in TOTALS} == {
        "total-tax": "0.00",
        "total-shipping-handling": "10.00",
        "total-order-amount": "66.00",
        "total-discount": "0.00",
        "declared-value": "0.00",  # inside the USA: no declared value (it buys insurance)
    }


def test_tax_the_hub_gives_and_quantities_count_in_the_totals() -> None:
    items = [
        {"sku": "9011CC", "quantity": 3, "price": 29},  # as jq writes 29.0
        {"sku": "2001SSBM", "quantity": 2, "price": "12.345"},  # cents, rounded half up
    ]
    order = seed_document(items=items, cost=7.5, totals={"tax": 9.1})

    assert order.findtext("total-tax") == "9.10"
    assert order.findtext("total-shipping-handling") == "7.50"
    assert order.findtext("total-order-amount") == "128.30"  # 87.00 + 24.70 + 7.50 + 9.10
    lines = order.findall("line-items/line-item")
    assert [line.findtext("price") for line in lines] == ["29.00", "12.35"]
    # The shipment's shipping and handling rides on the first line: the lines add up.
    assert [line.findtext("shipping-handling") for line in lines] == ["7.50", "0.00"]


def test_outside_the_usa_the_iso_code_and_the_goods_value_are_declared() -> None:
    canada = address(country="CA", state="Ontario", city="Toronto", zipcode="M5V 2T6")
    order = seed_document(shipping_address=canada)

    assert order.findtext("shipping-information/shipping-country") == "CA"
    assert order.findtext("shipping-information/shipping-iso-country-code") == "CA"
    assert order.findtext("declared-value") == "56.00"


def test_amounts_past_dotcoms_ranges_are_refused_naming_the_field() -> None:
    reasons = refusal(items=[{"sku": "9011CC", "quantity": 1, "price": "100000"}], cost="1000000")

    assert reasons == [
        "shipment.cost 1000000.00 is more than Dotcom's shipping-handling allows (999999.99)",
        "shipment.items[0].price 100000.00 is more than Dotcom's price allows (99999.99)",
    ]


def test_a_total_past_dotcoms_range_is_refused() -> None:
    items = [{"sku": "9011CC", "quantity": 1_000_000, "price": "99999.99"}]
    (reason,) = refusal(items=items)
    assert "total-order-amount allows (99999999.99)" in reason


def test_seed_shipping_information() -> None:
    shipping = seed_document().find("shipping-information")
    assert shipping is not None
    values = {child.tag: child.text or "" for child in shipping}
    assert values == {
        "shipping-customer-number": "",
        "shipping-name": "Brian Quinn",
        "shipping-company": "",
        "shipping-address1": "2 Wisconsin Cir.",
        "shipping-address2": "",
        "shipping-address3": "",
        "shipping-city": "Chevy Chase",
        "shipping-state": "MD",
        "shipping-zip": "20815",
        "shipping-country": "US",
        "shipping-iso-country-code": "US",
        "shipping-phone": "555-123-123",
        "shipping-email": "brian@spreecommerce.com",
    }


def test_billing_is_copied_from_shipping_when_the_hub_has_none() -> None:
    order = seed_document()
    billing = {
        c.tag.removeprefix("billing-"): c.text or "" for c in order.find("billing-information")
    }
    shipping = {
        c.tag.removeprefix("shipping-"): c.text or "" for c in order.find("shipping-information")
    }
    assert billing == {k: v for k, v in shipping.items() if k != "iso-country-code"}


def test_billing_address_of_the_shipment_or_the_order_is_used() -> None:
    body = seed_shipment_ready()["payload"]
    body["order"] = {"billing_address": address(firstname="Ada", lastname="Lovelace")}
    order = fromstring(
        order_document(dotcom_order(ShipmentReady.model_validate(body), SEED_LOOKUP, TODAY))
    )
    assert order.findtext("order/billing-information/billing-name") == "Ada Lovelace"
    assert order.findtext("order/shipping-information/shipping-name") == "Brian Quinn"

    order = seed_document(billing_address=address(firstname="Grace", lastname="Hopper"))
    assert order.findtext("billing-information/billing-name") == "Grace Hopper"


def test_seed_line_items() -> None:
    lines = seed_document().findall("line-items/line-item")
    assert [{child.tag: child.text for child in line} for line in lines] == [
        {
            "sku": "9011CC",
            "quantity": "1",
            "price": "29.00",
            "tax": "0.00",
            "shipping-handling": "10.00",
            "client-item": "4123",
            "line-number": "1",
            "gift-box-wrap-quantity": None,
            "gift-box-wrap-type": None,
        },
        {
            "sku": "2001SSBM",
            "quantity": "1",
            "price": "27.00",
            "tax": "0.00",
            "shipping-handling": "0.00",
            "client-item": "4321",
            "line-number": "2",
            "gift-box-wrap-quantity": None,
            "gift-box-wrap-type": None,
        },
    ]
    wrap = lines[0].find("gift-box-wrap-quantity")
    assert wrap is not None and wrap.get(f"{{{XSI}}}nil") == "true"


def test_seed_document_holds_every_element_of_dotcoms_schema() -> None:
    """Read by the Dotcom simulator's own schema (written apart from this builder)."""
    (order,) = parse_orders(order_document(dotcom_order(ready(), SEED_LOOKUP, TODAY)))
    assert schema_problems(order) == []


def test_document_is_ascii_xml_with_a_declaration() -> None:
    order = dotcom_order(ready(), SEED_LOOKUP, TODAY)
    document = order_document(order)
    assert document.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert document.isascii()


def test_xml_special_characters_are_escaped_by_the_library() -> None:
    order = seed_document(shipping_address=address(address1='1 <Main> & "Co" St'))
    assert order.findtext("shipping-information/shipping-address1") == '1 <Main> & "Co" St'


# -- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Maryland", "MD"),
        ("new york", "NY"),
        ("  District   of Columbia ", "DC"),
        ("Washington, D.C.", "DC"),
        ("Puerto Rico", "PR"),
        ("Armed Forces Europe", "AE"),
        ("Québec", "QC"),
        ("Ontario", "ON"),
        ("Atlantis", None),
    ],
)
def test_region_names_become_two_letter_codes(name: str, code: str | None) -> None:
    assert region_code(name) == code


def test_state_codes_and_names_in_the_document() -> None:
    assert (
        seed_document(shipping_address=address(state="md")).findtext(
            "shipping-information/shipping-state"
        )
        == "MD"
    )
    assert (
        seed_document(shipping_address=address(state="New Jersey")).findtext(
            "shipping-information/shipping-state"
        )
        == "NJ"
    )


def test_unknown_state_name_is_refused_naming_the_field() -> None:
    reasons = refusal(shipping_address=address(state="Atlantis"))
    assert len(reasons) == 1
    assert "shipment.shipping_address.state" in reasons[0]
    assert "'Atlantis'" in reasons[0]


def test_us_address_needs_a_state() -> None:
    reasons = refusal(shipping_address=address(state=None))
    assert reasons == [
        "shipment.shipping_address.state is required for a US address (Dotcom's shipping-state)"
    ]


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("José Müller", "Jose Muller"),
        ("Straße 5", "Strasse 5"),
        ("Łódź", "Lodz"),
        ("Søren", "Soren"),
        ("Québec", "Quebec"),
        ("Ærøskøbing", "Aeroskobing"),
        ("Đorđe Þórsson", "Dorde Thorsson"),
        ("Москва, ул. Тверская", "Moskva, ul. Tverskaya"),
        ("李 Wang", "Li Wang"),
        ("tab\there\nnewline\x85next", "tab here newline next"),
        ("  spaced \u00a0 out  ", "spaced out"),
        ("zero\u200bwidth", "zerowidth"),
        (None, ""),
    ],
)
def test_letters_are_transliterated_never_dropped(text: str | None, plain: str) -> None:
    assert plain_text(text) == plain


def test_transliterated_text_in_the_document() -> None:
    order = seed_document(
        shipping_address=address(
            firstname="Søren", address1="Hauptstraße 5", city="Łódź", state=None, country="PL"
        )
    )
    assert order.findtext("shipping-information/shipping-name") == "Soren Quinn"
    assert order.findtext("shipping-information/shipping-address1") == "Hauptstrasse 5"
    assert order.findtext("shipping-information/shipping-city") == "Lodz"


def test_text_that_no_longer_fits_once_transliterated_is_refused_not_cut() -> None:
    city = "Großweißenbach Nord"  # 19 characters; 21 once "ß" is "ss"
    reasons = refusal(shipping_address=address(city=city))
    assert reasons == [
        "shipment.shipping_address.city 'Grossweissenbach Nord' (as ASCII, from "
        "'Großweißenbach Nord') is 21 characters; Dotcom's shipping-city allows at most 20"
    ]


def test_a_name_with_nothing_left_in_ascii_is_refused() -> None:
    reasons = refusal(shipping_address=address(firstname="\u200b", lastname="\u200b"))
    assert reasons == [
        "shipment.shipping_address.firstname + lastname has no ASCII characters left "
        "(Dotcom's shipping-name)"
    ]


# -- limits --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "dotcom_field"),
    [
        ({"number": "H" + "1" * 20}, "shipment.number", "order-number"),
        (
            {"shipping_address": address(city="C" * 21)},
            "shipment.shipping_address.city",
            "shipping-city",
        ),
        (
            {"shipping_address": address(address1="A" * 31)},
            "shipment.shipping_address.address1",
            "shipping-address1",
        ),
        (
            {"shipping_address": address(firstname="F" * 15, lastname="L" * 15)},
            "shipment.shipping_address.firstname + lastname",
            "shipping-name",
        ),
        (
            {"shipping_address": address(zipcode="1" * 11)},
            "shipment.shipping_address.zipcode",
            "shipping-zip",
        ),
        (
            {"shipping_address": address(phone="5" * 20)},
            "shipment.shipping_address.phone",
            "shipping-phone",
        ),
        ({"email": "e" * 40 + "@example.com"}, "shipment.email", "shipping-email"),
        ({"items": [{"sku": "S" * 18, "quantity": 1}]}, "shipment.items[0].sku", "sku"),
    ],
)
def test_too_long_field_is_refused_naming_it(
    changes: dict[str, Any], field: str, dotcom_field: str
) -> None:
    reasons = refusal(**changes)
    assert len(reasons) == 1
    assert reasons[0].startswith(f"{field} ")
    assert f"Dotcom's {dotcom_field} allows at most" in reasons[0]


def test_limits_are_inclusive() -> None:
    order = seed_document(
        number="H" + "1" * 19,
        shipping_address=address(city="C" * 20, address1="A" * 30, zipcode="20815-1234"),
    )
    assert order.findtext("order-number") == "H" + "1" * 19
    assert order.findtext("shipping-information/shipping-city") == "C" * 20


def test_every_problem_is_listed() -> None:
    reasons = refusal(
        shipping_method="Teleport",
        shipping_address=address(city="C" * 21, country="USA"),
    )
    assert len(reasons) == 3
    assert reasons[0].startswith("Shipping method 'Teleport'")
    assert any("shipment.shipping_address.country 'USA'" in r for r in reasons)
    assert any("shipment.shipping_address.city" in r for r in reasons)


def test_identifiers_are_never_altered() -> None:
    reasons = refusal(items=[{"sku": "CAFÉ-1", "quantity": 1}])
    assert reasons == [
        "shipment.items[0].sku 'CAFÉ-1' has characters Dotcom cannot take (ASCII only)"
    ]


# -- the shipping lookup -------------------------------------------------------------------------


def test_missing_shipping_method_names_it_and_the_known_ones() -> None:
    reasons = refusal(shipping_method="Teleport")
    assert reasons == [
        "Shipping method 'Teleport' is not in shipping_lookup; "
        "known methods: 'Standard', 'UPS Two Day (USD)'"
    ]


def test_shipping_method_matches_loosely() -> None:
    assert seed_document(shipping_method="ups two day").findtext("ship-method") == "02"
    assert seed_document(shipping_method=" standard (USD)").findtext("ship-method") == "03"


@pytest.mark.parametrize(
    "raw",
    [
        [{"UPS Ground (USD)": "03"}, {"UPS Two Day (USD)": "02"}],
        {"UPS Ground (USD)": "03", "UPS Two Day (USD)": "02"},
        json.dumps([{"UPS Ground (USD)": "03"}, {"UPS Two Day (USD)": "02"}]),
        json.dumps({"UPS Ground (USD)": "03", "UPS Two Day (USD)": "02"}),
    ],
)
def test_shipping_lookup_shapes(raw: Any) -> None:
    assert shipping_methods(raw) == {"UPS Ground (USD)": "03", "UPS Two Day (USD)": "02"}


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", "42", [["a", "b"]]])
def test_bad_shipping_lookup_is_a_hard_error(raw: Any) -> None:
    with pytest.raises(HardError) as caught:
        shipping_methods(raw)
    assert "shipping_lookup" in caught.value.reasons[0]


def test_ship_method_code_must_fit() -> None:
    with pytest.raises(HardError) as caught:
        dotcom_order(ready(), {"Standard": "ABCD"}, TODAY)
    assert caught.value.reasons == [
        "shipping_lookup maps 'Standard' to 'ABCD'; Dotcom's ship-method is a code of "
        "1 to 3 ASCII characters"
    ]


# -- the hub's shapes ----------------------------------------------------------------------------


def test_shipment_ready_requires_its_fields() -> None:
    body = seed_shipment_ready()["payload"]
    del body["shipment"]["shipping_address"]["city"]
    body["shipment"]["items"] = []
    del body["shipment"]["number"]
    with pytest.raises(ValidationError) as caught:
        ShipmentReady.model_validate(body)
    failing = {".".join(map(str, e["loc"])) for e in caught.value.errors()}
    assert failing == {"shipment.number", "shipment.shipping_address.city", "shipment.items"}


def test_numbers_where_text_is_expected_are_taken() -> None:
    order = seed_document(shipping_address=address(zipcode=20815))
    assert order.findtext("shipping-information/shipping-zip") == "20815"
