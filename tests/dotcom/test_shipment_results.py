"""Dotcom's shipments XML → shipment:confirm payloads, on hand-written answers."""

from __future__ import annotations

import io
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from worker.integrations.dotcom.documents import (
    ChunkReader,
    Release,
    UnexpectedAnswer,
    parse_shipments,
)
from worker.integrations.dotcom.mapping import SentShipment, shipment_confirmation, shipped_at

NEW_YORK = ZoneInfo("America/New_York")
OPEN = (
    '<response xmlns="http://dcd/datacontracts/shipment" '
    'xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
    '<shipments xmlns:a="http://schemas.datacontract.org/2004/07/DCDAPIService">'
)
CLOSE = "</shipments></response>"


def item(
    sku: str = "SKU-1",
    quantity: str = "1.00",
    tracking: str | None = "1ZV2X5140300000001",
    carrier: str = "UPS",
    service: str = "Ground",
    carton: str = "C000000001",
) -> str:
    tracking_xml = (
        '<a:tracking_number i:nil="true"/>'
        if tracking is None
        else f"<a:tracking_number>{tracking}</a:tracking_number>"
    )
    return (
        f"<a:ship_item><a:carrier>{carrier}</a:carrier><a:carton_id>{carton}</a:carton_id>"
        f"<a:client_line_number/><a:order_line_number>1</a:order_line_number>"
        f"<a:quantity_shipped>{quantity}</a:quantity_shipped><a:serial_lot_number/>"
        f"<a:service>{service}</a:service><a:service_code>03</a:service_code>"
        f"<a:sku>{sku}</a:sku>{tracking_xml}</a:ship_item>"
    )


def shipment(number: str, *items: str, release: str = "01", dcd: str = "0202100001") -> str:
    return (
        f"<a:shipment><a:client_order_number>{number}</a:client_order_number>"
        f"<a:customer_number/><a:dcd_order_number>{dcd}</a:dcd_order_number>"
        f"<a:dcd_order_release_number>{release}</a:dcd_order_release_number>"
        f"<a:order_date>10/25/2012 12:00:00 AM</a:order_date>"
        f"<a:order_status>Shipped</a:order_status><a:ship_date>06/27/2012</a:ship_date>"
        f"<a:ship_items>{''.join(items)}</a:ship_items>"
        f"<a:shipto_name>Brian Quinn</a:shipto_name></a:shipment>"
    )


def releases(document: str, chunk: int = 16 * 1024) -> list[Release]:
    data = document.encode()
    chunks = (data[i : i + chunk] for i in range(0, len(data), chunk))
    return list(parse_shipments(ChunkReader(chunks)))


def confirmations(document: str, sent: SentShipment | None = None) -> list[dict[str, Any]]:
    found = [shipment_confirmation(r, NEW_YORK, sent) for r in releases(document)]
    return [c.to_hub() for c in found if c is not None]


# -- shapes of the answer ------------------------------------------------------------------------


def test_empty_self_closing_shipments_inside_response() -> None:
    document = (
        '<response xmlns="http://dcd/datacontracts/shipment" '
        'xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        '<shipments xmlns:a="http://schemas.datacontract.org/2004/07/DCDAPIService"/>'
        "</response>"
    )
    assert releases(document) == []


def test_one_shipment_with_one_item() -> None:
    (confirm,) = confirmations(OPEN + shipment("H1", item(quantity="2.00")) + CLOSE)
    assert confirm == {
        "number": "H1",
        "order_number": None,
        "status": "shipped",
        "tracking": "1ZV2X5140300000001",
        "tracking_numbers": ["1ZV2X5140300000001"],
        "tracking_url": None,  # Dotcom gives none
        "carrier": "UPS",
        "carriers": ["UPS"],
        "service": "Ground",
        "service_code": "03",
        "shipping_method": "UPS Ground",
        "shipped_at": "2012-06-27T00:00:00-04:00",
        "items": [{"sku": "SKU-1", "quantity": 2}],
        "cartons": [{"carton_id": "C000000001", "tracking_number": "1ZV2X5140300000001"}],
        "dotcom_order_number": "0202100001",
        "dotcom_release": "01",
    }


def test_what_was_sent_names_the_order_and_method() -> None:
    sent = SentShipment(order_number="R805661123", shipping_method="UPS Ground (USD)")
    (confirm,) = confirmations(OPEN + shipment("H1", item()) + CLOSE, sent)
    assert confirm["order_number"] == "R805661123"
    assert confirm["shipping_method"] == "UPS Ground (USD)"


def test_several_releases_of_one_order_are_separate_shipments() -> None:
    document = (
        OPEN
        + shipment("H1", item("SKU-1", tracking="T1"), release="01")
        + shipment("H1", item("SKU-2", tracking="T2"), release="02")
        + CLOSE
    )
    found = releases(document)
    assert [r.key for r in found] == ["H1/0202100001/01", "H1/0202100001/02"]
    first, second = confirmations(document)
    assert (first["dotcom_release"], first["tracking"], first["items"]) == (
        "01",
        "T1",
        [{"sku": "SKU-1", "quantity": 1}],
    )
    assert (second["dotcom_release"], second["tracking"], second["items"]) == (
        "02",
        "T2",
        [{"sku": "SKU-2", "quantity": 1}],
    )


def test_several_cartons_keep_every_tracking_number() -> None:
    document = (
        OPEN
        + shipment(
            "H1",
            item("SKU-1", "2.00", tracking="T1", carton="C1"),
            item("SKU-2", "1.00", tracking="T2", carton="C2"),
            item("SKU-1", "1.00", tracking="T2", carton="C2"),
            item("SKU-3", "1.00", tracking="T3", carton="C3"),
        )
        + CLOSE
    )
    (confirm,) = confirmations(document)
    assert confirm["tracking"] == "T1"
    assert confirm["tracking_numbers"] == ["T1", "T2", "T3"]
    assert confirm["cartons"] == [
        {"carton_id": "C1", "tracking_number": "T1"},
        {"carton_id": "C2", "tracking_number": "T2"},
        {"carton_id": "C3", "tracking_number": "T3"},
    ]
    assert confirm["items"] == [
        {"sku": "SKU-1", "quantity": 3},
        {"sku": "SKU-2", "quantity": 1},
        {"sku": "SKU-3", "quantity": 1},
    ]


def test_carrier_without_tracking() -> None:
    document = (
        OPEN
        + shipment("H1", item(tracking=None, carrier="DCD Truck", service="LTL"))
        + shipment("H2", item(tracking="", carrier="USPS", service="First Class"))
        + CLOSE
    )
    first, second = confirmations(document)
    assert (first["tracking"], first["tracking_numbers"], first["carrier"]) == (
        None,
        [],
        "DCD Truck",
    )
    assert first["cartons"] == [{"carton_id": "C000000001", "tracking_number": None}]
    assert (second["tracking"], second["tracking_numbers"], second["shipping_method"]) == (
        None,
        [],
        "USPS First Class",
    )


def test_a_release_with_every_item_at_zero_is_not_a_shipment() -> None:
    document = (
        OPEN
        + shipment("H1", item("SKU-1", "0.00"), item("SKU-2", "0.00"), release="01")
        + shipment("H1", item("SKU-1", "1.00"), release="02")
        + CLOSE
    )
    found = releases(document)
    assert [r.shipped for r in found] == [False, True]
    assert shipment_confirmation(found[0], NEW_YORK, None) is None
    assert [c["dotcom_release"] for c in confirmations(document)] == ["02"]


def test_zero_lines_of_a_shipped_release_are_left_out() -> None:
    document = (
        OPEN
        + shipment("H1", item("SKU-1", "1.00", tracking="T1"), item("SKU-2", "0.00", tracking=""))
        + CLOSE
    )
    (confirm,) = confirmations(document)
    assert confirm["items"] == [{"sku": "SKU-1", "quantity": 1}]
    assert confirm["tracking_numbers"] == ["T1"]


def test_items_that_disagree_on_the_carrier_keep_the_first_and_list_all() -> None:
    document = (
        OPEN
        + shipment(
            "H1",
            item("SKU-1", tracking="1Z1", carrier="UPS", service="Ground"),
            item("SKU-2", tracking="9400", carrier="USPS", service="Priority", carton="C2"),
        )
        + CLOSE
    )
    (confirm,) = confirmations(document)
    assert (confirm["carrier"], confirm["service"], confirm["carriers"]) == (
        "UPS",
        "Ground",
        ["UPS", "USPS"],
    )


def test_item_without_a_list_wrapper_and_without_namespaces() -> None:
    document = (
        "<shipments><shipment><client_order_number>H9</client_order_number>"
        "<dcd_order_number>0000000009</dcd_order_number>"
        "<dcd_order_release_number>01</dcd_order_release_number>"
        "<ship_date>01/02/2013</ship_date>"
        "<ship_item><sku>SKU-1</sku><quantity_shipped>2.50</quantity_shipped>"
        "<carrier>UPS</carrier><tracking_number>1Z9</tracking_number></ship_item>"
        "</shipment></shipments>"
    )
    (confirm,) = confirmations(document)
    assert confirm["items"] == [{"sku": "SKU-1", "quantity": 2.5}]
    assert confirm["shipped_at"] == "2013-01-02T00:00:00-05:00"  # EST in January


def test_many_shipments_stream_in_small_chunks() -> None:
    body = "".join(shipment(f"H{n}", item(tracking=f"1Z{n}"), dcd=f"{n:010d}") for n in range(5000))
    started = time.monotonic()
    found = releases(OPEN + body + CLOSE, chunk=997)
    assert len(found) == 5000
    assert found[-1].key == "H4999/0000004999/01"
    assert time.monotonic() - started < 5


# -- answers that are not a shipments list ---------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        "",
        "<html><body><h1>Server Error in '/dcd_api_test' Application.</h1></body></html>",
        OPEN + shipment("H1", item()),  # cut off
        "not xml at all",
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><shipments>&a;</shipments>',
    ],
)
def test_an_answer_that_is_not_a_shipments_list_is_transient(document: str) -> None:
    with pytest.raises(UnexpectedAnswer):
        list(parse_shipments(io.BytesIO(document.encode())))


def test_an_unreadable_quantity_is_transient() -> None:
    with pytest.raises(UnexpectedAnswer) as caught:
        releases(OPEN + shipment("H1", item(quantity="two")) + CLOSE)
    assert "quantity" in str(caught.value)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("quantity", ["1e999999999", "1000001", "-1"])
def test_an_impossible_quantity_is_transient_and_costs_no_time(quantity: str) -> None:
    """``1e999999999`` is a finite decimal whose conversion to a whole number would take
    hours: refused before it is converted."""
    with pytest.raises(UnexpectedAnswer) as caught:
        confirmations(OPEN + shipment("H1", item(quantity=quantity)) + CLOSE)
    assert "impossible quantity" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("06/27/2012", "2012-06-27T00:00:00-04:00"),
        ("12/24/2012", "2012-12-24T00:00:00-05:00"),
        ("06/27/2012 3:04:05 PM", "2012-06-27T15:04:05-04:00"),
        ("2012-06-27", "2012-06-27T00:00:00-04:00"),
        ("", None),
        ("someday", None),
    ],
)
def test_ship_date_becomes_iso_8601(raw: str, iso: str | None) -> None:
    assert shipped_at(raw, NEW_YORK) == iso


# -- the shapes of the answers recorded from Dotcom's test service (2013) -----------------------


def recorded_item(
    line: str, sku: str, quantity: str, price: str, carton: str, tracking: str
) -> str:
    """A ship_item with every field the recorded answers carry (the service names the
    carrier; the order line and unit price are there)."""
    return (
        f"<a:ship_item><a:carrier>UPS</a:carrier><a:carton_id>{carton}</a:carton_id>"
        f"<a:client_line_number>{line}</a:client_line_number>"
        f"<a:item_description>Non stock</a:item_description>"
        f"<a:item_unit_price>{price}</a:item_unit_price>"
        f"<a:order_line_number>{line}</a:order_line_number>"
        f"<a:quantity_shipped>{quantity}</a:quantity_shipped><a:serial_lot_number/>"
        f"<a:service>UPS Ground</a:service><a:service_code>03</a:service_code>"
        f"<a:sku>{sku}</a:sku><a:tracking_number>{tracking}</a:tracking_number><a:upc/>"
        f"</a:ship_item>"
    )


def recorded_release(number: str, release: str, *items: str) -> str:
    return (
        f"<a:shipment><a:client_order_number>{number}</a:client_order_number>"
        f"<a:customer_number>wang91011</a:customer_number>"
        f"<a:dcd_order_number>0202103776</a:dcd_order_number>"
        f"<a:dcd_order_release_number>{release}</a:dcd_order_release_number>"
        f"<a:order_date>10/25/2012 12:00:00 AM</a:order_date>"
        f"<a:order_shipping_handling>9.24</a:order_shipping_handling>"
        f"<a:order_status>Shipped</a:order_status><a:order_subtotal>47.4000</a:order_subtotal>"
        f"<a:order_tax>4.63</a:order_tax><a:order_total>71.1900</a:order_total>"
        f"<a:ship_date>10/25/2012</a:ship_date><a:ship_items>{''.join(items)}</a:ship_items>"
        f"<a:ship_weight>1.00</a:ship_weight><a:shipto_addr1>600 Hillcrest Ave</a:shipto_addr1>"
        f"<a:shipto_name>Esther Hwang</a:shipto_name></a:shipment>"
    )


def test_one_sku_on_two_order_lines_stays_two_items() -> None:
    document = (
        OPEN
        + recorded_release(
            "21404",
            "01",
            recorded_item("1", "9999", "2.00", "47.40", "C007525989", "1ZV2X5140300001986"),
            recorded_item("2", "9999", "1.00", "0.00", "C007525989", "1ZV2X5140300001986"),
        )
        + CLOSE
    )
    (confirm,) = confirmations(document)
    assert confirm["items"] == [
        {"sku": "9999", "quantity": 2, "line_number": "1"},
        {"sku": "9999", "quantity": 1, "line_number": "2"},
    ]


def test_a_line_split_over_cartons_is_one_item() -> None:
    document = (
        OPEN
        + recorded_release(
            "21404",
            "01",
            recorded_item("1", "9999", "2.00", "47.40", "C1", "1ZV2X5140300000001"),
            recorded_item("1", "9999", "3.00", "47.40", "C2", "1ZV2X5140300000002"),
        )
        + CLOSE
    )
    (confirm,) = confirmations(document)
    assert confirm["items"] == [{"sku": "9999", "quantity": 5, "line_number": "1"}]
    assert confirm["tracking_numbers"] == ["1ZV2X5140300000001", "1ZV2X5140300000002"]


def test_a_service_that_names_its_carrier_is_not_prefixed_again() -> None:
    document = (
        OPEN
        + recorded_release("21404", "01", recorded_item("1", "9999", "2.00", "47.40", "C1", "T1"))
        + CLOSE
    )
    (confirm,) = confirmations(document)  # a release this endpoint did not send
    assert (confirm["carrier"], confirm["service"]) == ("UPS", "UPS Ground")
    assert confirm["shipping_method"] == "UPS Ground"


def test_two_releases_of_one_order_both_confirm_with_their_own_cartons() -> None:
    sent = SentShipment(order_number="R805661123", shipping_method="UPS Ground (USD)")
    document = (
        OPEN
        + recorded_release("H1", "01", recorded_item("1", "9999", "2.00", "47.40", "C1", "T1"))
        + recorded_release("H1", "02", recorded_item("2", "8888", "1.00", "9.00", "C2", "T2"))
        + CLOSE
    )
    first, second = confirmations(document, sent)
    assert [(c["number"], c["order_number"], c["dotcom_release"]) for c in (first, second)] == [
        ("H1", "R805661123", "01"),
        ("H1", "R805661123", "02"),
    ]
    assert (first["tracking_numbers"], first["items"]) == (
        ["T1"],
        [{"sku": "9999", "quantity": 2, "line_number": "1"}],
    )
    assert (second["tracking_numbers"], second["items"]) == (
        ["T2"],
        [{"sku": "8888", "quantity": 1, "line_number": "2"}],
    )
