"""The Dotcom Distribution simulator: signing, orders, delayed shipments, control API, faults."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests
from defusedxml.ElementTree import fromstring
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from simulators.dotcom import (
    DCD_NS,
    DEFAULT_BASE_PATH,
    ORDER,
    POST_ORDER_NS,
    XSI_NS,
    SimulatorConfig,
    authorization_header,
    config_from_env,
    create_app,
    parse_accounts,
    sign,
)
from tests.support.stack import ROOT

HOST = "https://cwa.dotcomdistribution.com"
BASE = HOST + DEFAULT_BASE_PATH
API_KEY, PASSWORD = "demo-api-key", "demo-password"
A = f"{{{DCD_NS}}}"  # ElementTree prefix for Dotcom's data-contract namespace

# 2013-10-28 12:00 in New York (EDT, -04:00).
T0 = datetime(2013, 10, 28, 16, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def app(clock: FakeClock) -> Flask:
    return create_app(
        SimulatorConfig(ship_after_seconds=0.0, visible_after_seconds=600.0, clock=clock)
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# -- helpers -----------------------------------------------------------------------------------


ORDER_REQUEST = ROOT / "tests" / "fixtures" / "dotcom" / "order_request.xml"
NIL = object()  # an override that makes the element xsi:nil


def order_xml(
    number: str = "R100",
    *,
    sku: str = "9011CC",
    quantity: str = "2",
    ship_method: str = "03",
    billing: bool = True,
    **overrides: str | object | None,
) -> str:
    """One valid <order> (tests/fixtures/dotcom/order_request.xml) with changes: ``overrides``
    maps element names (underscores for hyphens, but in ``ship_date`` and ``ship_via``) to
    their text, to None (the element is left out) or to NIL."""
    root = fromstring(ORDER_REQUEST.read_bytes())
    order = root.find("order")
    assert order is not None
    names = {element.tag for element in order.iter()}
    changes: dict[str, str | object | None] = {
        "order-number": number,
        "sku": sku,
        "quantity": quantity,
        "ship-method": ship_method,
        **({} if billing else {"billing-information": None}),
        **{(k if k in names else k.replace("_", "-")): v for k, v in overrides.items()},
    }
    for name, value in changes.items():
        parent = next(p for p in order.iter() if any(c.tag == name for c in p))
        element = next(c for c in parent if c.tag == name)
        if value is None:
            parent.remove(element)
        elif value is NIL:
            element.text = None
            element.set(f"{{{XSI_NS}}}nil", "true")
        else:
            element.attrib.pop(f"{{{XSI_NS}}}nil", None)
            element.text = str(value)
    return ET.tostring(order, encoding="unicode")


def orders_body(*orders: str) -> str:
    return f'<orders xmlns:xsi="{XSI_NS}">{"".join(orders)}</orders>'


def signed(url: str, api_key: str = API_KEY, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": authorization_header(api_key, password, url)}


def post_orders(client: FlaskClient, body: str, headers: dict[str, str] | None = None) -> Any:
    url = f"{BASE}/order"
    return client.post(
        url, data=body, headers=headers or signed(url), content_type="application/xml"
    )


def get_shipments(client: FlaskClient, query: str) -> Any:
    url = f"{BASE}/shipment?{query}"
    return client.get(url, headers=signed(url))


def order_errors(response: Any) -> list[tuple[str, str]]:
    """(description, order number) pairs, read namespace-aware from the real envelope."""
    assert response.status_code == 200
    root = fromstring(response.data)
    assert root.tag == f"{{{POST_ORDER_NS}}}response"
    box = root.find(f"{{{POST_ORDER_NS}}}order_errors")
    assert box is not None
    return [
        (entry.findtext(f"{A}error_description"), entry.findtext(f"{A}order_number"))
        for entry in box.findall(f"{A}order_error")
    ]


def shipments(response: Any) -> list[ET.Element]:
    assert response.status_code == 200
    box = fromstring(response.data).find("{*}shipments")
    assert box is not None
    return box.findall(f"{A}shipment")


def ship_items(shipment: ET.Element) -> list[ET.Element]:
    return shipment.findall(f"{A}ship_items/{A}ship_item")


def stored_orders(client: FlaskClient) -> dict[str, Any]:
    return client.get("/_sim/orders").get_json()


def inject(client: FlaskClient, **payload: Any) -> dict[str, Any]:
    response = client.post("/_sim/shipments", json=payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def item(**fields: Any) -> dict[str, Any]:
    base = {
        "sku": "9011CC",
        "quantity_shipped": 1,
        "carrier": "UPS",
        "service": "Ground",
        "service_code": "03",
        "tracking_number": "1ZTEST0000000001",
        "carton_id": "C000000001",
    }
    return base | fields


WHOLE_DAY = "fromShipDate=2013-10-28&toShipDate=2013-10-28"


# -- signing -----------------------------------------------------------------------------------


def test_signature_vector_for_order_url() -> None:
    url = f"{BASE}/order"
    assert f"{API_KEY}:{sign(url, PASSWORD)}" == "demo-api-key:7NIrsGHy7KHm1rvj1qBw5A=="


def test_signature_vector_for_shipment_url_with_escapes() -> None:
    url = f"{BASE}/shipment?fromShipDate=2013-10-28&toShipDate=2013-10-29%2003:00:21%20-0400"
    assert authorization_header(API_KEY, PASSWORD, url) == "demo-api-key:UNRGx1K817atQaReAChWpw=="


def test_app_accepts_the_vector_header_for_the_raw_url(client: FlaskClient) -> None:
    url = f"{BASE}/shipment?fromShipDate=2013-10-28&toShipDate=2013-10-29%2003:00:21%20-0400"
    response = client.get(url, headers={"Authorization": "demo-api-key:UNRGx1K817atQaReAChWpw=="})
    assert response.status_code == 200


def test_signature_over_a_re_encoded_url_is_refused(client: FlaskClient) -> None:
    sent = f"{BASE}/shipment?fromShipDate=2013-10-28&toShipDate=2013-10-29%2003:00:21%20-0400"
    reencoded = sent.replace("%20", "+")
    response = client.get(sent, headers=signed(reencoded))
    assert response.status_code == 401


def test_bad_signature_is_401(client: FlaskClient) -> None:
    response = post_orders(client, orders_body(order_xml()), {"Authorization": f"{API_KEY}:AAAA"})
    assert response.status_code == 401
    assert stored_orders(client)["count"] == 0


def test_wrong_password_is_401(client: FlaskClient) -> None:
    url = f"{BASE}/order"
    response = post_orders(client, orders_body(order_xml()), signed(url, password="other"))
    assert response.status_code == 401


def test_unknown_key_is_401(client: FlaskClient) -> None:
    url = f"{BASE}/order"
    headers = signed(url, api_key="someone-else")
    assert post_orders(client, orders_body(order_xml()), headers).status_code == 401


def test_missing_authorization_is_401(client: FlaskClient) -> None:
    assert client.get(f"{BASE}/shipment?{WHOLE_DAY}").status_code == 401


def test_signature_for_another_path_is_401(client: FlaskClient) -> None:
    response = post_orders(client, orders_body(order_xml()), signed(f"{BASE}/item"))
    assert response.status_code == 401


# -- orders ------------------------------------------------------------------------------------


def test_good_order_gets_empty_order_errors_and_is_stored(client: FlaskClient) -> None:
    response = post_orders(client, orders_body(order_xml("R100")))
    assert order_errors(response) == []
    box = fromstring(response.data).find(f"{{{POST_ORDER_NS}}}order_errors")
    assert box is not None and len(box) == 0
    assert response.data.decode().endswith(f'<order_errors xmlns:a="{DCD_NS}" /></response>')
    report = stored_orders(client)
    assert report["count"] == 1 and report["order_requests"] == 1
    stored = report["orders"][0]
    assert stored["order_number"] == "R100"
    assert len(stored["dcd_order_number"]) == 10 and stored["dcd_order_number"].isdigit()
    assert "<sku>9011CC</sku>" in stored["xml"]
    assert stored["received_at"] == T0.isoformat()


def test_envelope_declares_the_wcf_namespaces(client: FlaskClient) -> None:
    text = post_orders(client, orders_body(order_xml())).data.decode()
    assert text.startswith(f'<response xmlns="{POST_ORDER_NS}" xmlns:i="{XSI_NS}">')


def test_unknown_sku_is_a_business_error_with_http_200(client: FlaskClient) -> None:
    response = post_orders(client, orders_body(order_xml("R101", sku="NOPE-1")))
    assert response.status_code == 200
    assert order_errors(response) == [
        ("Invalid Item. Item NOPE-1 does not exist in the item master.", "R101")
    ]
    assert stored_orders(client)["count"] == 0


def test_too_long_order_number_is_an_error(client: FlaskClient) -> None:
    number = "R" + "1" * 20
    errors = order_errors(post_orders(client, orders_body(order_xml(number))))
    assert len(errors) == 1
    description, reported_number = errors[0]
    assert "'order-number'" in description and "MaxLength" in description
    assert reported_number == number
    assert stored_orders(client)["count"] == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sku": "S" * 21}, "sku"),  # the schema's 20 (the specification's text says 17)
        ({"billing_name": "N" * 31}, "billing-name"),
        ({"shipping_address1": "A" * 31}, "shipping-address1"),
        ({"shipping_city": "C" * 21}, "shipping-city"),
        ({"shipping_state": "Maryland"}, "shipping-state"),
        ({"billing_zip": "1" * 11}, "billing-zip"),
        ({"shipping_country": "USA"}, "shipping-country"),
        ({"shipping_phone": "5" * 20}, "shipping-phone"),
        ({"billing_email": "e" * 45 + "@x.com"}, "billing-email"),
        ({"shipping_email": "e" * 45 + "@x.com"}, "shipping-email"),
        ({"ship_method": "0123"}, "ship-method"),
        ({"ship_method": ""}, "ship-method"),
        ({"billing_name": ""}, "billing-name"),
    ],
)
def test_field_limits_name_the_field(
    client: FlaskClient, overrides: dict[str, str], field: str
) -> None:
    errors = order_errors(post_orders(client, orders_body(order_xml("R102", **overrides))))
    assert [d for d, _ in errors if f"'{field}'" in d], errors
    assert stored_orders(client)["count"] == 0


def test_limits_are_inclusive(client: FlaskClient) -> None:
    order = order_xml(
        "R" + "1" * 19, ship_method="01S", billing_name="N" * 30, shipping_city="C" * 20
    )
    assert order_errors(post_orders(client, orders_body(order))) == []


def test_missing_billing_information_is_an_error(client: FlaskClient) -> None:
    errors = order_errors(post_orders(client, orders_body(order_xml("R103", billing=False))))
    assert len(errors) == 1 and "'billing-information'" in errors[0][0]
    assert errors[0][1] == "R103"


def test_bad_quantity_is_an_error(client: FlaskClient) -> None:
    errors = order_errors(post_orders(client, orders_body(order_xml("R104", quantity="two"))))
    assert len(errors) == 1 and "'quantity'" in errors[0][0]


def test_a_repeated_order_number_is_stored_again_by_default(client: FlaskClient) -> None:
    # What Dotcom does with a number it holds is not documented: the worst case by default.
    assert order_errors(post_orders(client, orders_body(order_xml("R105")))) == []
    assert order_errors(post_orders(client, orders_body(order_xml("R105")))) == []
    report = stored_orders(client)
    assert [o["order_number"] for o in report["orders"]] == ["R105", "R105"]
    assert len({o["dcd_order_number"] for o in report["orders"]}) == 2


def test_a_repeated_order_number_can_be_refused(client: FlaskClient) -> None:
    assert client.post("/_sim/config", json={"duplicate_orders": "refuse"}).status_code == 200
    assert order_errors(post_orders(client, orders_body(order_xml("R105")))) == []
    errors = order_errors(post_orders(client, orders_body(order_xml("R105"))))
    assert errors == [("Order R105 already exists.", "R105")]
    report = stored_orders(client)
    assert report["count"] == 1 and report["order_requests"] == 2


def test_each_order_of_a_batch_stands_alone(client: FlaskClient) -> None:
    client.post("/_sim/config", json={"duplicate_orders": "refuse"})
    body = orders_body(order_xml("R106"), order_xml("R107", sku="NOPE"), order_xml("R106"))
    errors = order_errors(post_orders(client, body))
    assert [number for _, number in errors] == ["R107", "R106"]
    assert [o["order_number"] for o in stored_orders(client)["orders"]] == ["R106"]


def test_one_error_per_problem(client: FlaskClient) -> None:
    order = order_xml("R108", shipping_state="Maryland", shipping_zip="1" * 11)
    errors = order_errors(post_orders(client, orders_body(order)))
    assert len(errors) == 2 and {n for _, n in errors} == {"R108"}


def test_dotcoms_own_rules_come_once_the_schema_holds(client: FlaskClient) -> None:
    schema_broken = order_xml("R110", sku="NOPE", invoice_number="R805661123")
    (error,) = order_errors(post_orders(client, orders_body(schema_broken)))
    assert "'invoice-number'" in error[0]
    order = order_xml("R110", sku="NOPE", quantity="0")
    assert [d for d, _ in order_errors(post_orders(client, orders_body(order)))] == [
        "Invalid Item. Item NOPE does not exist in the item master.",
        "Invalid quantity 0: the quantity must be greater than zero.",
    ]


# -- the order schema: what .NET's validation refuses ------------------------------------------


def schema_elements() -> list[str]:
    """Every element the schema lists, groups and line items included."""
    names: list[str] = []

    def walk(group: Any) -> None:
        for name, kind in group.children:
            names.append(name)
            if hasattr(kind, "children"):
                walk(kind)
            elif hasattr(kind, "item"):
                names.append(kind.name)
                walk(kind.item)

    walk(ORDER)
    return names


def test_the_fixture_holds_every_element_of_the_schema() -> None:
    order = fromstring(ORDER_REQUEST.read_bytes()).find("order")
    assert order is not None
    assert sorted(e.tag for e in order.iter() if e is not order) == sorted(schema_elements())


@pytest.mark.parametrize("name", schema_elements())
def test_every_element_is_required(client: FlaskClient, name: str) -> None:
    errors = order_errors(post_orders(client, orders_body(order_xml("R120", **{name: None}))))
    (error,) = errors
    assert "has incomplete content" in error[0] and f"'{name}'" in error[0]
    assert stored_orders(client)["count"] == 0


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (
            {"invoice_number": "R805661123"},
            "The 'invoice-number' element is invalid - The value 'R805661123' is invalid "
            "according to its datatype 'Integer'",
        ),
        ({"invoice_number": "1" * 14}, "TotalDigits"),
        ({"tax_percent": "100"}, "TotalDigits"),
        (
            {"order_date": "2011/03/12"},
            "The value '2011/03/12' is invalid according to its datatype 'Date'",
        ),
        ({"order_date": "2013-02-30"}, "datatype 'Date'"),
        ({"cancel_date": ""}, "The value '' is invalid according to its datatype 'Date'"),
        ({"total_tax": ""}, "The value '' is invalid according to its datatype 'Decimal'"),
        ({"total_tax": NIL}, "the 'xsi:nil' attribute must not be present"),
        ({"total_order_amount": "63.005"}, "FractionDigits"),
        ({"total_order_amount": "100000000.00"}, "MaxInclusive"),
        ({"price": "100000.00"}, "MaxInclusive"),
        ({"shipping_handling": "1000000.00"}, "MaxInclusive"),
        ({"quantity": "123456789"}, "TotalDigits"),
        ({"shipping_name": "Zoë Quinn"}, "The Pattern constraint failed"),
        ({"special_instructions": "x" * 41}, "MaxLength"),
        ({"po_number": "x" * 21}, "MaxLength"),
        ({"client_item": "x" * 21}, "MaxLength"),
    ],
)
def test_what_the_schema_refuses_in_dotnets_words(
    client: FlaskClient, overrides: dict[str, Any], words: str
) -> None:
    errors = order_errors(post_orders(client, orders_body(order_xml("R121", **overrides))))
    assert [d for d, _ in errors if words in d], errors
    assert stored_orders(client)["count"] == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"cancel_date": NIL, "promise_date": "2013-11-01", "ship_date": NIL},
        {"invoice_number": NIL, "declared_value": NIL, "gift_box_wrap_quantity": "2"},
        {"invoice_number": "1234567890123", "tax_percent": "99", "quantity": "99999999"},
        {"total_order_amount": "99999999.99", "price": "99999.99", "total_tax": "1.5"},
        {"po_number": NIL, "client_item": NIL, "store_name": NIL, "custom_field_1": NIL},
    ],
)
def test_what_the_schema_allows(client: FlaskClient, overrides: dict[str, Any]) -> None:
    assert order_errors(post_orders(client, orders_body(order_xml("R122", **overrides)))) == []


def test_an_element_the_schema_does_not_list_is_refused(client: FlaskClient) -> None:
    order = order_xml("R123").replace("<pool />", "<pool /><email>b@example.com</email>")
    (error,) = order_errors(post_orders(client, orders_body(order)))
    assert error[0] == "The element 'order' has invalid child element 'email'."


def test_an_element_twice_is_refused(client: FlaskClient) -> None:
    order = order_xml("R124").replace("<pool />", "<pool /><pool />")
    (error,) = order_errors(post_orders(client, orders_body(order)))
    assert error[0] == "The element 'order' has invalid child element 'pool'."


def test_outside_the_usa_the_iso_code_and_a_declared_value_are_required(
    client: FlaskClient,
) -> None:
    abroad = {"shipping_country": "CA", "shipping_state": "ON"}
    order = order_xml("R125", **abroad, shipping_iso_country_code="", declared_value=NIL)
    assert [d for d, _ in order_errors(post_orders(client, orders_body(order)))] == [
        "Shipping ISO country code is required for an international order.",
        "Declared value is required for an international order.",
    ]
    valid = order_xml("R126", **abroad, shipping_iso_country_code="CA", declared_value="58.00")
    assert order_errors(post_orders(client, orders_body(valid))) == []


# -- GET /order/{order-number} ----------------------------------------------------------------


def held(client: FlaskClient, number: str) -> list[dict[str, str | None]]:
    url = f"{BASE}/order/{quote(number, safe='')}"
    response = client.get(url, headers=signed(url))
    assert response.status_code == 200
    box = fromstring(response.data).find("{*}orders")
    assert box is not None
    return [
        {child.tag.rpartition("}")[2]: child.text for child in order}
        for order in box.findall(f"{A}order")
    ]


def test_the_orders_held_under_a_number(client: FlaskClient) -> None:
    assert held(client, "R130") == []
    post_orders(client, orders_body(order_xml("R130")))
    post_orders(client, orders_body(order_xml("R130")))  # stored again (duplicate_orders)
    orders = held(client, "R130")
    dcd_numbers = [o["dcd_order_number"] for o in stored_orders(client)["orders"]]
    assert [(o["client_order_number"], o["dcd_order_number"]) for o in orders] == [
        ("R130", dcd_numbers[0]),
        ("R130", dcd_numbers[1]),
    ]
    assert held(client, "R131") == []


def test_the_order_status_route_is_signed(client: FlaskClient) -> None:
    url = f"{BASE}/order/R130"
    assert client.get(url, headers=signed(f"{BASE}/order/R131")).status_code == 401


def test_item_master_can_change_at_run_time(client: FlaskClient) -> None:
    assert order_errors(post_orders(client, orders_body(order_xml("R109", sku="NEW-1"))))
    answer = client.post("/_sim/config", json={"item_master": ["NEW-1"]})
    assert answer.status_code == 200 and answer.get_json()["item_master"] == ["NEW-1"]
    assert order_errors(post_orders(client, orders_body(order_xml("R109", sku="NEW-1")))) == []


@pytest.mark.parametrize(
    "body",
    [
        "<orders><order><order-number>R1</order-number>",
        "not xml at all",
        "<order><order-number>R1</order-number></order>",
        '<!DOCTYPE o [<!ENTITY e "x">]><orders>&e;</orders>',
    ],
)
def test_unreadable_order_body_is_400(client: FlaskClient, body: str) -> None:
    assert post_orders(client, body).status_code == 400
    assert stored_orders(client)["count"] == 0


# -- shipments ---------------------------------------------------------------------------------


def test_stored_order_ships_only_after_the_visibility_lag(
    client: FlaskClient, clock: FakeClock
) -> None:
    post_orders(client, orders_body(order_xml("R200", quantity="2")))
    empty = get_shipments(client, WHOLE_DAY)
    assert shipments(empty) == []
    assert empty.data.decode().endswith(f'<shipments xmlns:a="{DCD_NS}" /></response>')
    clock.advance(599)
    assert shipments(get_shipments(client, WHOLE_DAY)) == []
    clock.advance(1)
    [shipment] = shipments(get_shipments(client, WHOLE_DAY))
    dcd_number = stored_orders(client)["orders"][0]["dcd_order_number"]
    assert shipment.findtext(f"{A}client_order_number") == "R200"
    assert shipment.findtext(f"{A}dcd_order_number") == dcd_number
    assert shipment.findtext(f"{A}dcd_order_release_number") == "01"
    assert shipment.findtext(f"{A}order_status") == "Shipped"
    assert shipment.findtext(f"{A}ship_date") == "10/28/2013"
    [ship_item] = ship_items(shipment)
    assert ship_item.findtext(f"{A}carrier") == "UPS"
    assert ship_item.findtext(f"{A}service") == "UPS Ground"  # as Dotcom's recorded answers
    assert ship_item.findtext(f"{A}service_code") == "03"
    assert ship_item.findtext(f"{A}sku") == "9011CC"
    assert ship_item.findtext(f"{A}quantity_shipped") == "2.00"
    tracking = ship_item.findtext(f"{A}tracking_number") or ""
    assert tracking.startswith("1Z") and len(tracking) == 18
    assert ship_item.findtext(f"{A}carton_id")
    assert ship_item.find(f"{A}serial_lot_number") is not None


def test_ship_delay_comes_from_config(app: Flask, client: FlaskClient, clock: FakeClock) -> None:
    client.post("/_sim/config", json={"ship_after_seconds": 3600, "visible_after_seconds": 0})
    post_orders(client, orders_body(order_xml("R201")))
    window = "fromShipDate=2013-10-28%2012:00:00%20-0400&toShipDate=2013-10-28%2013:00:00%20-0400"
    clock.advance(3599)
    assert shipments(get_shipments(client, window)) == []
    clock.advance(1)
    assert len(shipments(get_shipments(client, window))) == 1


@pytest.mark.parametrize(
    ("start", "end", "found"),
    [
        ("2013-10-28", "2013-10-28", True),
        ("2013-10-27", "2013-10-27", False),
        ("2013-10-29", "2013-10-30", False),
        ("2013-10-28 11:59:59 -0400", "2013-10-28 12:00:00 -0400", True),
        ("2013-10-28 16:00:00 +0000", "2013-10-29", True),
        ("2013-10-28 12:00:01 -0400", "2013-10-29", False),
        ("2013-10-27", "2013-10-28 11:59:59 -0400", False),
        ("2013-10-27 3:15:21 -0400", "2013-10-28", True),
        ("2013-1-1", "2013-12-31", True),
    ],
)
def test_date_formats_and_window(
    client: FlaskClient, clock: FakeClock, start: str, end: str, found: bool
) -> None:
    inject(client, client_order_number="R202", ship_datetime=T0.isoformat(), items=[item()])
    clock.advance(600)
    query = f"fromShipDate={quote(start, safe=':')}&toShipDate={quote(end, safe=':')}"
    assert len(shipments(get_shipments(client, query))) == (1 if found else 0)


def test_date_only_upper_bound_covers_the_whole_local_day(
    client: FlaskClient, clock: FakeClock
) -> None:
    late = datetime.fromisoformat("2013-10-28T23:59:59-04:00")
    inject(client, client_order_number="R203", ship_datetime=late.isoformat(), items=[item()])
    clock.now = late + timedelta(days=1)
    [shipment] = shipments(get_shipments(client, WHOLE_DAY))
    assert shipment.findtext(f"{A}ship_date") == "10/28/2013"


@pytest.mark.parametrize(
    "query",
    [
        "fromShipDate=2013-10-28",
        "toShipDate=2013-10-28",
        "dept=A",
        "fromShipDate=2013-10-28T00:00:00&toShipDate=2013-10-29",
        "fromShipDate=10/28/2013&toShipDate=2013-10-29",
        "fromShipDate=2013-10-28&toShipDate=yesterday",
        "fromShipDate=2013-10-28&toShipDate=2013-10-29%2003:00:21",
    ],
)
def test_missing_or_unparseable_dates_are_400(client: FlaskClient, query: str) -> None:
    assert get_shipments(client, query).status_code == 400


def test_injected_releases_and_cartons(client: FlaskClient, clock: FakeClock) -> None:
    post_orders(client, orders_body(order_xml("R300")))
    dcd_number = stored_orders(client)["orders"][0]["dcd_order_number"]
    inject(
        client,
        client_order_number="R300",
        release="01",
        ship_datetime=T0.isoformat(),
        items=[
            item(sku="9011CC", quantity_shipped=1, carton_id="C1", tracking_number="1ZAAA"),
            item(sku="2001SSBM", quantity_shipped=2, carton_id="C2", tracking_number="1ZBBB"),
        ],
    )
    inject(
        client,
        client_order_number="R300",
        release="02",
        ship_datetime=(T0 + timedelta(hours=2)).isoformat(),
        items=[item(sku="HAT-01", quantity_shipped=1, carton_id="C3", tracking_number="1ZCCC")],
    )
    clock.advance(3 * 3600)
    found = shipments(get_shipments(client, WHOLE_DAY))
    assert [s.findtext(f"{A}dcd_order_release_number") for s in found] == ["01", "02"]
    assert {s.findtext(f"{A}dcd_order_number") for s in found} == {dcd_number}
    first, second = (ship_items(s) for s in found)
    assert [i.findtext(f"{A}tracking_number") for i in first] == ["1ZAAA", "1ZBBB"]
    assert [i.findtext(f"{A}carton_id") for i in first] == ["C1", "C2"]
    assert [i.findtext(f"{A}quantity_shipped") for i in first] == ["1.00", "2.00"]
    assert [i.findtext(f"{A}sku") for i in second] == ["HAT-01"]


def test_injected_release_replaces_the_automatic_one(client: FlaskClient, clock: FakeClock) -> None:
    post_orders(client, orders_body(order_xml("R301")))
    inject(client, client_order_number="R301", items=[item(quantity_shipped=0)])
    clock.advance(600)
    [shipment] = shipments(get_shipments(client, WHOLE_DAY))
    assert [i.findtext(f"{A}quantity_shipped") for i in ship_items(shipment)] == ["0.00"]


def test_zero_quantity_release(client: FlaskClient, clock: FakeClock) -> None:
    inject(
        client,
        client_order_number="R302",
        release="02",
        items=[item(sku="SKU-1", quantity_shipped=0), item(sku="SKU-2", quantity_shipped=0.0)],
    )
    clock.advance(600)
    [shipment] = shipments(get_shipments(client, WHOLE_DAY))
    assert [i.findtext(f"{A}quantity_shipped") for i in ship_items(shipment)] == ["0.00", "0.00"]
    assert shipment.findtext(f"{A}dcd_order_release_number") == "02"


def test_shipments_without_tracking(client: FlaskClient, clock: FakeClock) -> None:
    inject(
        client,
        client_order_number="R303",
        items=[
            item(carrier="LTL", tracking_number=None, carton_id="C1"),
            item(carrier="Local", tracking_number="", carton_id="C2"),
        ],
    )
    clock.advance(600)
    [shipment] = shipments(get_shipments(client, WHOLE_DAY))
    nil_item, empty_item = ship_items(shipment)
    nil_tracking = nil_item.find(f"{A}tracking_number")
    assert nil_tracking is not None and nil_tracking.get(f"{{{XSI_NS}}}nil") == "true"
    assert not nil_tracking.text
    empty_tracking = empty_item.find(f"{A}tracking_number")
    assert empty_tracking is not None and not empty_tracking.text and not empty_tracking.attrib


def test_injected_visibility_is_respected(client: FlaskClient, clock: FakeClock) -> None:
    later = (T0 + timedelta(hours=1)).isoformat()
    inject(client, client_order_number="R304", visible_at=later, items=[item()])
    clock.advance(3599)
    assert shipments(get_shipments(client, WHOLE_DAY)) == []
    clock.advance(1)
    assert len(shipments(get_shipments(client, WHOLE_DAY))) == 1


def test_one_shipment_with_one_item_keeps_the_list_shape(
    client: FlaskClient, clock: FakeClock
) -> None:
    inject(client, client_order_number="R305", items=[item()])
    clock.advance(600)
    box = fromstring(get_shipments(client, WHOLE_DAY).data).find("{*}shipments")
    assert box is not None and [child.tag for child in box] == [f"{A}shipment"]
    items = box.find(f"{A}shipment/{A}ship_items")
    assert items is not None and [child.tag for child in items] == [f"{A}ship_item"]


@pytest.mark.parametrize(
    "payload",
    [
        {"items": []},
        {"client_order_number": "R1", "items": [{"quantity_shipped": 1}]},
        {"client_order_number": "R1", "items": [item(quantity_shipped="lots")]},
        {"client_order_number": "R1", "items": [item(quantity_shipped=-1)]},
        {"client_order_number": "R1", "ship_datetime": "yesterday", "items": []},
        {"client_order_number": "R1", "items": "none"},
    ],
)
def test_bad_injections_are_400(client: FlaskClient, payload: dict[str, Any]) -> None:
    assert client.post("/_sim/shipments", json=payload).status_code == 400


# -- faults ------------------------------------------------------------------------------------


def queue_fault(client: FlaskClient, **payload: Any) -> None:
    assert client.post("/_sim/faults", json=payload).status_code == 201


def test_http_500_fault_then_normal_service(client: FlaskClient) -> None:
    queue_fault(client, kind="http_500", count=2)
    body = orders_body(order_xml("R400"))
    assert post_orders(client, body).status_code == 500
    assert post_orders(client, body).status_code == 500
    assert stored_orders(client)["count"] == 0
    assert order_errors(post_orders(client, body)) == []
    assert stored_orders(client)["order_requests"] == 3


def test_http_503_fault(client: FlaskClient) -> None:
    queue_fault(client, kind="http_503")
    assert get_shipments(client, WHOLE_DAY).status_code == 503
    assert get_shipments(client, WHOLE_DAY).status_code == 200


def test_malformed_xml_fault_is_200_and_unparseable(client: FlaskClient) -> None:
    queue_fault(client, kind="malformed_xml", route="order")
    response = post_orders(client, orders_body(order_xml("R401")))
    assert response.status_code == 200
    with pytest.raises(ET.ParseError):
        fromstring(response.data)
    # The order went through; only the answer was cut.
    assert stored_orders(client)["count"] == 1


def test_html_error_page_fault(client: FlaskClient) -> None:
    queue_fault(client, kind="html_error_page", route="shipment")
    response = get_shipments(client, WHOLE_DAY)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"<html" in response.data.lower()


def test_fault_route_filter(client: FlaskClient) -> None:
    queue_fault(client, kind="http_500", route="shipment")
    assert post_orders(client, orders_body(order_xml("R402"))).status_code == 200
    assert get_shipments(client, WHOLE_DAY).status_code == 500
    assert client.get("/_sim/faults").get_json() == {"faults": []}


def test_slow_fault_delays_then_answers(client: FlaskClient) -> None:
    queue_fault(client, kind="slow", delay_seconds=0.3)
    started = time.monotonic()
    response = get_shipments(client, WHOLE_DAY)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200


@pytest.mark.parametrize(
    "payload",
    [{"kind": "boom"}, {"kind": "http_500", "count": 0}, {"kind": "http_500", "route": "item"}],
)
def test_bad_fault_requests_are_400(client: FlaskClient, payload: dict[str, Any]) -> None:
    assert client.post("/_sim/faults", json=payload).status_code == 400


# -- control -----------------------------------------------------------------------------------


def test_reset_clears_everything(client: FlaskClient, clock: FakeClock) -> None:
    post_orders(client, orders_body(order_xml("R500")))
    inject(client, client_order_number="R501", items=[item()])
    queue_fault(client, kind="http_500")
    assert client.post("/_sim/reset").status_code == 200
    report = stored_orders(client)
    assert report["count"] == 0 and report["order_requests"] == 0
    assert client.get("/_sim/shipments").get_json() == {"shipments": []}
    assert client.get("/_sim/faults").get_json() == {"faults": []}
    assert order_errors(post_orders(client, orders_body(order_xml("R500")))) == []


@pytest.mark.parametrize(
    "payload", [{"ship_after_seconds": -1}, {"visible_after": 3}, {"item_master": "SKU-1"}]
)
def test_bad_config_is_400(client: FlaskClient, payload: dict[str, Any]) -> None:
    assert client.post("/_sim/config", json=payload).status_code == 400


def test_config_from_env() -> None:
    config = config_from_env(
        {
            "DOTCOM_SIM_SHIP_AFTER": "1.5",
            "DOTCOM_SIM_VISIBLE_AFTER": "0",
            "DOTCOM_SIM_ACCOUNTS": "k1:p1, k2:p:2",
            "DOTCOM_SIM_ITEM_MASTER": "A,B",
        }
    )
    assert config.ship_after_seconds == 1.5 and config.visible_after_seconds == 0.0
    assert config.accounts == {"k1": "p1", "k2": "p:2"}
    assert config.item_master == {"A", "B"}
    assert config_from_env({}).accounts == {"demo-api-key": "demo-password"}


def test_bad_accounts_spec_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_accounts("no-password-here")


# -- over real HTTP ----------------------------------------------------------------------------


@pytest.fixture
def live_url(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_signed_requests_over_real_http(live_url: str, clock: FakeClock) -> None:
    order_url = f"{live_url}{DEFAULT_BASE_PATH}/order"
    answer = requests.post(
        order_url, data=orders_body(order_xml("R600")), headers=signed(order_url), timeout=5
    )
    assert answer.status_code == 200 and b"<a:order_error>" not in answer.content
    clock.advance(600)
    query = "fromShipDate=2013-10-28%2000:00:00%20-0400&toShipDate=2013-10-28%2023:59:59%20-0400"
    shipment_url = f"{live_url}{DEFAULT_BASE_PATH}/shipment?{query}"
    listed = requests.get(shipment_url, headers=signed(shipment_url), timeout=5)
    assert listed.status_code == 200
    assert b"<a:client_order_number>R600</a:client_order_number>" in listed.content
    unsigned = requests.get(shipment_url, headers=signed(shipment_url + "x"), timeout=5)
    assert unsigned.status_code == 401
