"""Dotcom XML: reading and validating posted orders, the query dates, writing the answers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml_safely

from simulators.dotcom.model import OrderError, Release, ShipItem, ShipTo, StoredOrder
from simulators.dotcom.schema import NIL, XSI_NS, schema_problems
from simulators.kit import InvalidRequest

DCD_NS = "http://schemas.datacontract.org/2004/07/DCDAPIService"
POST_ORDER_NS = "http://dcd/datacontracts/post_order"
# The shipment envelope's namespace is not in any public fixture; this follows the pattern of the
# known ones (post_order, post_item, purchase_order, iteminfo). Clients should match local names.
SHIPMENT_NS = "http://dcd/datacontracts/shipment"
ORDER_NS = "http://dcd/datacontracts/order"  # as unknown as the shipment one; same pattern

XML_MIMETYPE = "application/xml"


# --------------------------------------------------------------------------------------------
# Order validation: the schema first (simulators.dotcom.schema), then Dotcom's own rules


def text_of(element: ET.Element, path: str) -> str:
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def check_quantity(raw: str) -> list[str]:
    # Dotcom's wording for a quantity of 0 is unknown; the schema takes any non-negative one.
    if int(raw):
        return []
    return [f"Invalid quantity {raw}: the quantity must be greater than zero."]


def international_problems(order: ET.Element) -> list[str]:
    """Outside the USA Dotcom needs the ISO country code and a declared value (customs).
    Dotcom's wording for these is unknown."""
    if text_of(order, "shipping-information/shipping-country").upper() == "US":
        return []
    problems = []
    if not text_of(order, "shipping-information/shipping-iso-country-code"):
        problems.append("Shipping ISO country code is required for an international order.")
    declared = order.find("declared-value")
    if declared is None or declared.get(NIL) in ("true", "1"):
        problems.append("Declared value is required for an international order.")
    return problems


def item_problems(order: ET.Element, item_master: set[str]) -> list[str]:
    problems: list[str] = []
    for line in order.findall("line-items/line-item"):
        sku = text_of(line, "sku")
        if sku not in item_master:
            problems.append(f"Invalid Item. Item {sku} does not exist in the item master.")
        problems += check_quantity(text_of(line, "quantity"))
    return problems


def validate_order(order: ET.Element, item_master: set[str]) -> list[str]:
    """Every problem with one order: its schema's (in .NET's words, as Dotcom answers them)
    and, once it is valid, Dotcom's own rules (international orders, the item master)."""
    problems = schema_problems(order)
    if problems:
        return problems
    return international_problems(order) + item_problems(order, item_master)


def parse_orders(body: bytes) -> list[ET.Element]:
    """The ``<order>`` elements of a POST /order body; InvalidRequest if it is not that."""
    try:
        root = parse_xml_safely(body)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise InvalidRequest(f"The request body is not well-formed XML: {exc}") from exc
    _strip_namespaces(root)
    if root.tag != "orders":
        raise InvalidRequest(f"Expected an <orders> document, got <{root.tag}>.")
    return root.findall("order")


def _strip_namespaces(root: ET.Element) -> None:
    """Element names by their local names; attributes keep theirs (``xsi:nil`` is only nil in
    its namespace)."""
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]


def ship_to_of(order: ET.Element) -> ShipTo:
    def value(name: str) -> str:
        return text_of(order, f"shipping-information/shipping-{name}")

    return ShipTo(
        name=value("name"),
        address1=value("address1"),
        address2=value("address2"),
        city=value("city"),
        state=value("state"),
        zip=value("zip"),
        email=value("email"),
    )


def wcf_order_date(raw: str) -> str:
    """``2012-10-25`` as the shipment list shows order dates: ``10/25/2012 12:00:00 AM``."""
    try:
        return datetime.strptime(raw, "%Y-%m-%d").strftime("%m/%d/%Y 12:00:00 AM")
    except ValueError:
        return ""


# --------------------------------------------------------------------------------------------
# Dates of the shipment query


def parse_ship_date(raw: str, *, end_of_day: bool, zone: ZoneInfo) -> datetime:
    """``YYYY-MM-DD`` (warehouse-local day; the whole day when ``end_of_day``) or
    ``YYYY-MM-DD HH:MM:SS -0400`` (any offset). ValueError when neither."""
    value = raw.strip()
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        pass
    day = datetime.strptime(value, "%Y-%m-%d")
    if end_of_day:
        day += timedelta(days=1, microseconds=-1)
    return day.replace(tzinfo=zone)


def parse_iso_datetime(raw: str, zone: ZoneInfo) -> datetime:
    """ISO 8601 for the control API; a value without offset is warehouse-local time."""
    moment = datetime.fromisoformat(raw)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


# --------------------------------------------------------------------------------------------
# XML answers


def _envelope(contract_ns: str, container: str) -> tuple[ET.Element, ET.Element]:
    """``<response xmlns=contract xmlns:i=XSI><container xmlns:a=DCD>``.

    Prefixed names are written literally ("a:shipment") with their xmlns declarations, so the
    output carries Dotcom's own prefixes without ElementTree's process-wide register_namespace;
    the tests read it back with a namespace-aware parser.
    """
    root = ET.Element("response", {"xmlns": contract_ns, "xmlns:i": XSI_NS})
    box = ET.SubElement(root, container, {"xmlns:a": DCD_NS})
    return root, box


def _add(parent: ET.Element, name: str, text: str | None) -> ET.Element:
    element = ET.SubElement(parent, f"a:{name}")
    if text is None:
        element.set("i:nil", "true")
    elif text:
        element.text = text
    return element


def _serialize(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")


def order_errors_document(errors: Iterable[OrderError]) -> str:
    root, box = _envelope(POST_ORDER_NS, "order_errors")
    for error in errors:
        entry = ET.SubElement(box, "a:order_error")
        _add(entry, "error_description", error.description)
        _add(entry, "order_number", error.order_number)
    return _serialize(root)


def held_orders_document(orders: Iterable[StoredOrder]) -> str:
    """``GET /order/{order-number}``: the orders held under that number, as the public client
    that reads this route (active_fulfillment's GetOrder) takes them; none is an empty
    ``<orders/>`` (Dotcom's answer for an unknown number is not documented)."""
    root, box = _envelope(ORDER_NS, "orders")
    for order in orders:
        entry = ET.SubElement(box, "a:order")
        _add(entry, "client_order_number", order.order_number)
        _add(entry, "dcd_order_number", order.dcd_order_number)
        _add(entry, "dcd_order_suffix", None)
        _add(entry, "order_status", order.status)
        _add(entry, "ship_date", None)
    return _serialize(root)


def format_quantity(quantity: Decimal) -> str:
    return f"{quantity:.2f}"


def _add_ship_item(parent: ET.Element, item: ShipItem) -> None:
    entry = ET.SubElement(parent, "a:ship_item")
    _add(entry, "carrier", item.carrier)
    _add(entry, "carton_id", item.carton_id)
    _add(entry, "client_line_number", item.client_line_number)
    _add(entry, "item_unit_price", item.item_unit_price)
    _add(entry, "order_line_number", item.order_line_number)
    _add(entry, "quantity_shipped", format_quantity(item.quantity_shipped))
    _add(entry, "serial_lot_number", item.serial_lot_number)
    _add(entry, "service", item.service)
    _add(entry, "service_code", item.service_code)
    _add(entry, "sku", item.sku)
    _add(entry, "tracking_number", item.tracking_number)


def _add_shipment(parent: ET.Element, release: Release, zone: ZoneInfo) -> None:
    entry = ET.SubElement(parent, "a:shipment")
    _add(entry, "client_order_number", release.client_order_number)
    _add(entry, "customer_number", release.customer_number)
    _add(entry, "dcd_order_number", release.dcd_order_number)
    _add(entry, "dcd_order_release_number", release.release)
    _add(entry, "order_date", release.order_date)
    _add(entry, "order_status", release.order_status)
    _add(entry, "ship_date", release.ship_datetime.astimezone(zone).strftime("%m/%d/%Y"))
    items = ET.SubElement(entry, "a:ship_items")
    for item in release.items:
        _add_ship_item(items, item)
    ship_to = release.ship_to
    _add(entry, "shipto_addr1", ship_to.address1)
    _add(entry, "shipto_addr2", ship_to.address2)
    _add(entry, "shipto_city", ship_to.city)
    _add(entry, "shipto_email_address", ship_to.email)
    _add(entry, "shipto_name", ship_to.name)
    _add(entry, "shipto_state", ship_to.state)
    _add(entry, "shipto_zip", ship_to.zip)


def shipments_document(releases: Iterable[Release], zone: ZoneInfo) -> str:
    root, box = _envelope(SHIPMENT_NS, "shipments")
    for release in releases:
        _add_shipment(box, release, zone)
    return _serialize(root)
