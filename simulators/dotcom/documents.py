"""Dotcom XML: reading and validating posted orders, the query dates, writing the answers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml_safely

from simulators.dotcom.model import OrderError, Release, ShipItem, ShipTo
from simulators.kit import InvalidRequest

DCD_NS = "http://schemas.datacontract.org/2004/07/DCDAPIService"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
POST_ORDER_NS = "http://dcd/datacontracts/post_order"
# The shipment envelope's namespace is not in any public fixture; this follows the pattern of the
# known ones (post_order, post_item, purchase_order, iteminfo). Clients should match local names.
SHIPMENT_NS = "http://dcd/datacontracts/shipment"

XML_MIMETYPE = "application/xml"


# --------------------------------------------------------------------------------------------
# Order validation


@dataclass(frozen=True)
class FieldRule:
    name: str
    max_length: int
    required: bool = False


ORDER_RULES = (
    FieldRule("order-number", 20, required=True),
    FieldRule("ship-method", 3, required=True),  # "03", sometimes three characters ("01S")
    FieldRule("email", 50),
)
ADDRESS_RULES = (
    FieldRule("name", 30, required=True),
    FieldRule("company", 30),
    FieldRule("address1", 30, required=True),
    FieldRule("address2", 30),
    FieldRule("address3", 30),
    FieldRule("city", 20, required=True),
    FieldRule("state", 2),
    FieldRule("zip", 10),
    FieldRule("country", 2),
    FieldRule("phone", 19),
    FieldRule("email", 50),
)
SKU_RULE = FieldRule("sku", 17, required=True)


def text_of(element: ET.Element, path: str) -> str:
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def _length_error(name: str, value: str, bound: str) -> str:
    # Wording of the real XSD validation errors (public fixtures of Dotcom answers).
    return (
        f"The '{name}' element is invalid - The value '{value}' is invalid according to its "
        f"datatype 'String' - The actual length is {bound} value."
    )


def _missing_element_error(parent: str, name: str) -> str:
    # .NET schema-validation wording; Dotcom's exact text for this case is unknown.
    return (
        f"The element '{parent}' has incomplete content. "
        f"List of possible elements expected: '{name}'."
    )


def check_field(container: ET.Element, name: str, rule: FieldRule) -> list[str]:
    value = text_of(container, name)
    if len(value) > rule.max_length:
        return [_length_error(name, value, "greater than the MaxLength")]
    if rule.required and not value:
        return [_length_error(name, value, "less than the MinLength")]
    return []


def check_address(order: ET.Element, section: str) -> list[str]:
    block_name = f"{section}-information"
    block = order.find(block_name)
    if block is None:
        return [_missing_element_error("order", block_name)]
    errors: list[str] = []
    for rule in ADDRESS_RULES:
        errors += check_field(block, f"{section}-{rule.name}", rule)
    return errors


def check_quantity(raw: str) -> list[str]:
    # Dotcom's wording for a bad quantity is unknown; this follows the XSD messages.
    if not (raw.isascii() and raw.isdigit()):
        return [
            f"The 'quantity' element is invalid - The value '{raw}' is invalid according to its "
            f"datatype 'Int' - The string '{raw}' is not a valid Int32 value."
        ]
    if int(raw) <= 0:
        return [f"Invalid quantity {raw}: the quantity must be greater than zero."]
    return []


def check_line_items(order: ET.Element, item_master: set[str]) -> list[str]:
    lines = order.findall("line-items/line-item")
    if not lines:
        return [_missing_element_error("order", "line-items")]
    errors: list[str] = []
    for line in lines:
        sku_errors = check_field(line, "sku", SKU_RULE)
        sku = text_of(line, "sku")
        if not sku_errors and sku not in item_master:
            sku_errors = [f"Invalid Item. Item {sku} does not exist in the item master."]
        errors += sku_errors + check_quantity(text_of(line, "quantity"))
    return errors


def validate_order(order: ET.Element, item_master: set[str]) -> list[str]:
    """Every problem with one order, in document order (field limits, then the item master)."""
    errors: list[str] = []
    for rule in ORDER_RULES:
        errors += check_field(order, rule.name, rule)
    errors += check_address(order, "billing") + check_address(order, "shipping")
    return errors + check_line_items(order, item_master)


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
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]
        for key in [k for k in element.attrib if k.startswith("{")]:
            element.attrib[key.rpartition("}")[2]] = element.attrib.pop(key)


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


def format_quantity(quantity: Decimal) -> str:
    return f"{quantity:.2f}"


def _add_ship_item(parent: ET.Element, item: ShipItem) -> None:
    entry = ET.SubElement(parent, "a:ship_item")
    _add(entry, "carrier", item.carrier)
    _add(entry, "carton_id", item.carton_id)
    _add(entry, "client_line_number", item.client_line_number)
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
