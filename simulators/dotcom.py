"""Dotcom Distribution (3PL) REST API simulator.

Behaves like the WCF/IIS service at ``https://cwa.dotcomdistribution.com/dcd_api_test/
DCDAPIService.svc`` as far as the public record shows it:

* every API request is signed: ``Authorization: <api_key>:<Base64(HMAC-MD5(password, URL))>``,
  where URL is the absolute request URL exactly as sent (query string and %20 escapes included);
* ``POST {base}/order`` takes ``<orders><order>...</order></orders>`` and answers HTTP 200 with
  ``<response><order_errors/></response>``: empty on success, one ``a:order_error`` per problem;
* ``GET {base}/shipment?fromShipDate=&toShipDate=`` lists shipped releases, shown late (a release
  becomes visible only ``visible_after_seconds`` after its ship time, as the real one does).

The response envelopes copy public fixtures of real answers (chloeandisabel/active_fulfillment):
``<response xmlns="http://dcd/datacontracts/post_order" xmlns:i="...XMLSchema-instance">`` around
``<order_errors xmlns:a="http://schemas.datacontract.org/2004/07/DCDAPIService">``. Children are
in the ``a:`` namespace and, as the WCF DataContractSerializer writes them, in alphabetical order.

A JSON control API under ``/_sim/`` (not signed) resets state, lists received orders, injects
shipment releases, queues faults and changes timing at run time. All state is in memory, guarded
by one lock. Run with ``python -m simulators.dotcom --host 127.0.0.1 --port 8101``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml_safely
from flask import Flask, Response, jsonify, request
from werkzeug.serving import run_simple

DCD_NS = "http://schemas.datacontract.org/2004/07/DCDAPIService"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
POST_ORDER_NS = "http://dcd/datacontracts/post_order"
# The shipment envelope's namespace is not in any public fixture; this follows the pattern of the
# known ones (post_order, post_item, purchase_order, iteminfo). Clients should match local names.
SHIPMENT_NS = "http://dcd/datacontracts/shipment"

DEFAULT_BASE_PATH = "/dcd_api_test/DCDAPIService.svc"
DEFAULT_ITEM_MASTER = frozenset({"9011CC", "2001SSBM", "SKU-1", "SKU-2", "SKU-3", "HAT-01"})
FAULT_KINDS = frozenset({"http_500", "http_503", "slow", "malformed_xml", "html_error_page"})
API_ROUTES = frozenset({"order", "shipment"})
XML_MIMETYPE = "application/xml"
DEFAULT_SLOW_SECONDS = 5.0

# Dotcom numbers: 10-digit order numbers, "C" + 9-digit cartons, 18-character UPS-style tracking.
DCD_ORDER_NUMBER_BASE = 202_100_000
TRACKING_SHIPPER = "V2X514"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SimulatorConfig:
    """Start-up configuration; ship/visibility lags and the item master can change at run time."""

    accounts: dict[str, str] = field(default_factory=lambda: {"demo-api-key": "demo-password"})
    base_path: str = DEFAULT_BASE_PATH
    item_master: set[str] = field(default_factory=lambda: set(DEFAULT_ITEM_MASTER))
    ship_after_seconds: float = 5.0
    visible_after_seconds: float = 600.0
    # Dotcom is in New Jersey: date-only query bounds and MM/DD/YYYY ship dates use this zone.
    warehouse_timezone: str = "America/New_York"
    # Injectable clock (tests freeze time with it); must return an aware datetime (naive = UTC).
    clock: Callable[[], datetime] = utc_now


# --------------------------------------------------------------------------------------------
# Signing


def sign(url: str, password: str) -> str:
    """Dotcom's signature: Base64 of HMAC-MD5 keyed with the password over the full URL."""
    digest = hmac.new(password.encode("utf-8"), url.encode("utf-8"), hashlib.md5).digest()
    return base64.b64encode(digest).decode("ascii")


def authorization_header(api_key: str, password: str, url: str) -> str:
    """The full ``Authorization`` header value a client sends for ``url``."""
    return f"{api_key}:{sign(url, password)}"


def request_url_as_sent(environ: Mapping[str, Any]) -> str:
    """The absolute URL the client requested, rebuilt from the raw request target.

    ``request.url`` would re-encode the query (``%20`` vs ``+``, ``:``), breaking signatures.
    """
    target = environ.get("REQUEST_URI") or environ.get("RAW_URI") or _target_from_parts(environ)
    target = _undo_wsgi_encoding(target)
    if target.startswith(("http://", "https://")):  # absolute-form request target
        return target
    return f"{environ.get('wsgi.url_scheme', 'http')}://{_host(environ)}{target}"


def _target_from_parts(environ: Mapping[str, Any]) -> str:
    path = _undo_wsgi_encoding(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
    query = environ.get("QUERY_STRING", "")
    encoded = quote(path, safe="/;:@&=+$,!~*'()-._")
    return f"{encoded}?{query}" if query else encoded


def _undo_wsgi_encoding(value: str) -> str:
    """WSGI hands over request bytes decoded as latin-1; recover the original text."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _host(environ: Mapping[str, Any]) -> str:
    if environ.get("HTTP_HOST"):
        return str(environ["HTTP_HOST"])
    name, port = environ["SERVER_NAME"], environ["SERVER_PORT"]
    default_port = "443" if environ.get("wsgi.url_scheme") == "https" else "80"
    return name if port == default_port else f"{name}:{port}"


def is_authorized(header: str | None, url: str, accounts: Mapping[str, str]) -> bool:
    if not header or ":" not in header:
        return False
    api_key, _, signature = header.strip().rpartition(":")
    password = accounts.get(api_key)
    if password is None:
        return False
    return hmac.compare_digest(signature.encode("utf-8"), sign(url, password).encode("ascii"))


# --------------------------------------------------------------------------------------------
# State


@dataclass(frozen=True)
class ShipItem:
    sku: str
    quantity_shipped: Decimal
    carrier: str
    service: str
    service_code: str
    tracking_number: str | None  # None: serialized as i:nil; "": an empty element
    carton_id: str
    serial_lot_number: str = ""
    client_line_number: str = ""
    order_line_number: str = ""


@dataclass(frozen=True)
class ShipTo:
    name: str = ""
    address1: str = ""
    address2: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    email: str = ""


@dataclass
class Release:
    """One shipment release (``dcd_order_release_number``) of an order."""

    client_order_number: str
    dcd_order_number: str
    release: str
    ship_datetime: datetime
    visible_at: datetime
    items: list[ShipItem]
    order_status: str = "Shipped"
    customer_number: str = ""
    order_date: str = ""
    ship_to: ShipTo = ShipTo()


@dataclass
class StoredOrder:
    order_number: str
    dcd_order_number: str
    received_at: datetime
    xml: str
    customer_number: str
    order_date: str
    ship_to: ShipTo


@dataclass
class Fault:
    kind: str
    route: str | None
    remaining: int
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class OrderError:
    description: str
    order_number: str


class InvalidRequest(ValueError):
    """The request cannot be read at all (HTTP 400)."""


class SimulatorState:
    """Everything the simulator remembers; mutate only while holding ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.orders: dict[str, StoredOrder] = {}
        self.releases: dict[tuple[str, str], Release] = {}
        self.faults: list[Fault] = []
        self.requests: dict[str, int] = dict.fromkeys(API_ROUTES, 0)
        # Not reset by /_sim/reset: numbers stay unique for the life of the process.
        self._sequence = itertools.count(1)

    def reset(self) -> None:
        self.orders.clear()
        self.releases.clear()
        self.faults.clear()
        self.requests = dict.fromkeys(API_ROUTES, 0)

    def next_number(self) -> int:
        return next(self._sequence)

    def take_fault(self, route: str) -> Fault | None:
        for fault in self.faults:
            if fault.route in (None, route):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None


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


# --------------------------------------------------------------------------------------------
# The simulator


class DotcomSimulator:
    """Behaviour behind the routes: orders in, releases out, faults and control."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.zone = ZoneInfo(config.warehouse_timezone)
        self.state = SimulatorState()

    def now(self) -> datetime:
        moment = self.config.clock()
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    # -- API ------------------------------------------------------------------------------

    def begin_request(self, route: str) -> Fault | None:
        """Count an API request and take the fault queued for it, if any."""
        with self.state.lock:
            self.state.requests[route] += 1
            return self.state.take_fault(route)

    def authorized(self, header: str | None, url: str) -> bool:
        with self.state.lock:
            accounts = dict(self.config.accounts)
        return is_authorized(header, url, accounts)

    def receive_orders(self, orders: Sequence[ET.Element]) -> list[OrderError]:
        """Validate each order; store the valid ones (and schedule them to ship)."""
        errors: list[OrderError] = []
        with self.state.lock:
            for order in orders:
                number = text_of(order, "order-number")
                problems = validate_order(order, self.config.item_master)
                if number in self.state.orders:
                    # Dotcom's duplicate behaviour and wording are unknown; this is our choice.
                    problems.append(f"Order {number} already exists.")
                if problems:
                    errors += [OrderError(problem, number) for problem in problems]
                else:
                    self._store_order(order, number)
        return errors

    def _store_order(self, order: ET.Element, number: str) -> None:
        received = self.now()
        stored = StoredOrder(
            order_number=number,
            dcd_order_number=self._new_dcd_order_number(),
            received_at=received,
            xml=ET.tostring(order, encoding="unicode"),
            customer_number=text_of(order, "billing-information/billing-customer-number"),
            order_date=wcf_order_date(text_of(order, "order-date")),
            ship_to=ship_to_of(order),
        )
        self.state.orders[number] = stored
        ship_at = received + timedelta(seconds=self.config.ship_after_seconds)
        release = Release(
            client_order_number=number,
            dcd_order_number=stored.dcd_order_number,
            release="01",
            ship_datetime=ship_at,
            visible_at=ship_at + timedelta(seconds=self.config.visible_after_seconds),
            items=self._default_items(order),
            customer_number=stored.customer_number,
            order_date=stored.order_date,
            ship_to=stored.ship_to,
        )
        self.state.releases[(number, "01")] = release

    def _default_items(self, order: ET.Element) -> list[ShipItem]:
        """Everything ships at once: one UPS Ground carton, one tracking number."""
        carton, tracking = self._new_carton_id(), self._new_tracking_number("03")
        return [
            ShipItem(
                sku=text_of(line, "sku"),
                quantity_shipped=Decimal(text_of(line, "quantity")),
                carrier="UPS",
                service="Ground",
                service_code="03",
                tracking_number=tracking,
                carton_id=carton,
                client_line_number=text_of(line, "line-number"),
                order_line_number=str(position),
            )
            for position, line in enumerate(order.findall("line-items/line-item"), start=1)
        ]

    def _new_dcd_order_number(self) -> str:
        return f"{DCD_ORDER_NUMBER_BASE + self.state.next_number():010d}"

    def _new_carton_id(self) -> str:
        return f"C{self.state.next_number():09d}"

    def _new_tracking_number(self, service_code: str) -> str:
        code = service_code if len(service_code) == 2 and service_code.isdigit() else "03"
        return f"1Z{TRACKING_SHIPPER}{code}{self.state.next_number():08d}"

    def visible_releases(self, start: datetime, end: datetime) -> list[Release]:
        """Releases shipped within [start, end] that Dotcom already shows."""
        now = self.now()
        with self.state.lock:
            found = [
                release
                for release in self.state.releases.values()
                if start <= release.ship_datetime <= end and release.visible_at <= now
            ]
        return sorted(found, key=lambda r: (r.ship_datetime, r.client_order_number, r.release))

    # -- control --------------------------------------------------------------------------

    def reset(self) -> None:
        with self.state.lock:
            self.state.reset()

    def orders_report(self) -> dict[str, Any]:
        with self.state.lock:
            orders = [
                {
                    "order_number": order.order_number,
                    "dcd_order_number": order.dcd_order_number,
                    "received_at": order.received_at.isoformat(),
                    "xml": order.xml,
                }
                for order in self.state.orders.values()
            ]
            requests = dict(self.state.requests)
        return {
            "orders": orders,
            "count": len(orders),
            "order_requests": requests["order"],
            "shipment_requests": requests["shipment"],
        }

    def releases_report(self) -> list[dict[str, Any]]:
        now = self.now()
        with self.state.lock:
            releases = list(self.state.releases.values())
        return [release_to_json(release, now) for release in releases]

    def inject_release(self, payload: Mapping[str, Any]) -> Release:
        """Add (or replace, for the same order and release number) a shipment release."""
        with self.state.lock:
            release = self._release_from_json(payload)
            self.state.releases[(release.client_order_number, release.release)] = release
        return release

    def _release_from_json(self, payload: Mapping[str, Any]) -> Release:
        number = _required_string(payload, "client_order_number")
        release_number = _optional_string(payload, "release") or "01"
        ship_at = _optional_datetime(payload, "ship_datetime", self.zone) or self.now()
        visible_at = _optional_datetime(payload, "visible_at", self.zone) or (
            ship_at + timedelta(seconds=self.config.visible_after_seconds)
        )
        raw_items = payload.get("items", [])
        if not isinstance(raw_items, list):
            raise InvalidRequest("items must be a list")
        stored = self.state.orders.get(number)
        return Release(
            client_order_number=number,
            dcd_order_number=_optional_string(payload, "dcd_order_number")
            or self._dcd_number_for(number),
            release=release_number,
            ship_datetime=ship_at,
            visible_at=visible_at,
            items=[self._item_from_json(raw) for raw in raw_items],
            order_status=_optional_string(payload, "order_status") or "Shipped",
            customer_number=stored.customer_number if stored else "",
            order_date=stored.order_date if stored else "",
            ship_to=stored.ship_to if stored else ShipTo(),
        )

    def _dcd_number_for(self, client_order_number: str) -> str:
        stored = self.state.orders.get(client_order_number)
        if stored:
            return stored.dcd_order_number
        for (number, _), release in self.state.releases.items():
            if number == client_order_number:
                return release.dcd_order_number
        return self._new_dcd_order_number()

    def _item_from_json(self, raw: Any) -> ShipItem:
        if not isinstance(raw, Mapping):
            raise InvalidRequest("each item must be an object")
        service_code = _optional_string(raw, "service_code") or "03"
        tracking = (
            raw["tracking_number"]
            if "tracking_number" in raw
            else self._new_tracking_number(service_code)
        )
        if tracking is not None and not isinstance(tracking, str):
            raise InvalidRequest("tracking_number must be a string or null")
        return ShipItem(
            sku=_required_string(raw, "sku"),
            quantity_shipped=_quantity(raw.get("quantity_shipped")),
            carrier=_optional_string(raw, "carrier") or "UPS",
            service=_optional_string(raw, "service") or "Ground",
            service_code=service_code,
            tracking_number=tracking,
            carton_id=_optional_string(raw, "carton_id") or self._new_carton_id(),
            serial_lot_number=_optional_string(raw, "serial_lot_number"),
            client_line_number=_optional_string(raw, "line_number"),
            order_line_number=_optional_string(raw, "line_number"),
        )

    def queue_fault(self, payload: Mapping[str, Any]) -> Fault:
        fault = fault_from_json(payload)
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def pending_faults(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [fault_to_json(fault) for fault in self.state.faults]

    def update_config(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        changes = config_changes_from_json(payload)
        with self.state.lock:
            for name, value in changes.items():
                setattr(self.config, name, value)
        return self.config_report()

    def config_report(self) -> dict[str, Any]:
        with self.state.lock:
            return {
                "base_path": self.config.base_path,
                "ship_after_seconds": self.config.ship_after_seconds,
                "visible_after_seconds": self.config.visible_after_seconds,
                "item_master": sorted(self.config.item_master),
                "warehouse_timezone": self.config.warehouse_timezone,
            }


# --------------------------------------------------------------------------------------------
# Control API JSON


def _required_string(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{key} must be a non-empty string")
    return value


def _optional_string(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidRequest(f"{key} must be a string")
    return str(value)


def _optional_datetime(payload: Mapping[str, Any], key: str, zone: ZoneInfo) -> datetime | None:
    value = payload.get(key)
    if value is None:
        return None
    try:
        return parse_iso_datetime(str(value), zone)
    except ValueError as exc:
        raise InvalidRequest(f"{key} must be an ISO 8601 datetime") from exc


def _quantity(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequest("quantity_shipped must be a number")
    try:
        quantity = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidRequest("quantity_shipped must be a number") from exc
    if not quantity.is_finite() or quantity < 0:
        raise InvalidRequest("quantity_shipped must be a finite number >= 0")
    return quantity


def _non_negative_number(payload: Mapping[str, Any], key: str) -> float:
    value = payload[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidRequest(f"{key} must be a number >= 0")
    return float(value)


def fault_from_json(payload: Mapping[str, Any]) -> Fault:
    kind = payload.get("kind")
    if kind not in FAULT_KINDS:
        raise InvalidRequest(f"kind must be one of {sorted(FAULT_KINDS)}")
    route = payload.get("route")
    if route is not None and route not in API_ROUTES:
        raise InvalidRequest(f"route must be one of {sorted(API_ROUTES)} or null")
    count = payload.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidRequest("count must be an integer >= 1")
    default_delay = DEFAULT_SLOW_SECONDS if kind == "slow" else 0.0
    delay = (
        _non_negative_number(payload, "delay_seconds")
        if "delay_seconds" in payload
        else default_delay
    )
    return Fault(kind=kind, route=route, remaining=count, delay_seconds=delay)


def fault_to_json(fault: Fault) -> dict[str, Any]:
    return {
        "kind": fault.kind,
        "route": fault.route,
        "count": fault.remaining,
        "delay_seconds": fault.delay_seconds,
    }


def config_changes_from_json(payload: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {"ship_after_seconds", "visible_after_seconds", "item_master"}
    unknown = set(payload) - allowed
    if unknown:
        raise InvalidRequest(f"unknown settings: {sorted(unknown)}; allowed: {sorted(allowed)}")
    changes: dict[str, Any] = {
        key: _non_negative_number(payload, key)
        for key in ("ship_after_seconds", "visible_after_seconds")
        if key in payload
    }
    if "item_master" in payload:
        items = payload["item_master"]
        if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
            raise InvalidRequest("item_master must be a list of non-empty strings")
        changes["item_master"] = set(items)
    return changes


def release_to_json(release: Release, now: datetime) -> dict[str, Any]:
    return {
        "client_order_number": release.client_order_number,
        "dcd_order_number": release.dcd_order_number,
        "release": release.release,
        "order_status": release.order_status,
        "ship_datetime": release.ship_datetime.isoformat(),
        "visible_at": release.visible_at.isoformat(),
        "visible": release.visible_at <= now,
        "items": [
            {
                "sku": item.sku,
                "quantity_shipped": format_quantity(item.quantity_shipped),
                "carrier": item.carrier,
                "service": item.service,
                "service_code": item.service_code,
                "tracking_number": item.tracking_number,
                "carton_id": item.carton_id,
            }
            for item in release.items
        ],
    }


# --------------------------------------------------------------------------------------------
# HTTP


# The bodies of IIS/WCF error answers are not in the public record; these imitate IIS defaults.
UNAUTHORIZED_BODY = "401 - Unauthorized: Access is denied due to invalid credentials."
HTTP_500_BODY = (
    '<html><head><title>Request Error</title></head><body><div id="content">'
    '<p class="heading1">Request Error</p><p>The server encountered an error processing the '
    "request. See server logs for more details.</p></div></body></html>"
)
HTTP_503_BODY = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">'
    "<HTML><HEAD><TITLE>Service Unavailable</TITLE></HEAD><BODY><h2>Service Unavailable</h2>"
    "<hr><p>HTTP Error 503. The service is unavailable.</p></BODY></HTML>"
)
HTML_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>Runtime Error</title></head><body>"
    "<h1>Server Error in '/dcd_api_test' Application.</h1><h2><i>Runtime Error</i></h2>"
    "<p><b>Description:</b> An application error occurred on the server.</p></body></html>"
)


def xml_response(document: str, status: int = 200) -> Response:
    return Response(document, status=status, mimetype=XML_MIMETYPE)


def text_response(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def fault_response(fault: Fault) -> Response | None:
    """The answer that replaces the real one, or None when the request proceeds."""
    if fault.kind == "http_500":
        return Response(HTTP_500_BODY, status=500, mimetype="text/html")
    if fault.kind == "http_503":
        return Response(HTTP_503_BODY, status=503, mimetype="text/html")
    if fault.kind == "html_error_page":
        return Response(HTML_ERROR_PAGE, status=200, mimetype="text/html")
    return None


def truncated(response: Response) -> Response:
    """The real answer cut in half (so never well-formed), sent as HTTP 200."""
    body = response.get_data(as_text=True)
    return xml_response(body[: max(1, len(body) // 2)] or "<response", status=200)


def run_api_request(sim: DotcomSimulator, route: str, handler: Callable[[], Response]) -> Response:
    """Count, apply a queued fault, check the signature, then answer.

    Faults act before authentication (as a broken server would); http_500, http_503 and
    html_error_page answer without processing; slow sleeps then processes; malformed_xml
    processes (an order is stored) and then truncates the answer.
    """
    fault = sim.begin_request(route)
    if fault is not None:
        replacement = fault_response(fault)
        if replacement is not None:
            return replacement
        if fault.kind == "slow":
            time.sleep(fault.delay_seconds)
    url = request_url_as_sent(request.environ)
    if not sim.authorized(request.headers.get("Authorization"), url):
        # The real 401 body is unknown; IIS answers a short text like this one.
        response = text_response(UNAUTHORIZED_BODY, 401)
    else:
        response = handler()
    if fault is not None and fault.kind == "malformed_xml":
        return truncated(response)
    return response


def post_order(sim: DotcomSimulator) -> Response:
    try:
        orders = parse_orders(request.get_data())
    except InvalidRequest as exc:
        # WCF's real 400 body is unknown (probably an HTML "Request Error" page).
        return text_response(str(exc), 400)
    return xml_response(order_errors_document(sim.receive_orders(orders)))


def get_shipments(sim: DotcomSimulator) -> Response:
    start_raw, end_raw = request.args.get("fromShipDate"), request.args.get("toShipDate")
    if not start_raw or not end_raw:
        return text_response("fromShipDate and toShipDate are required.", 400)
    try:
        start = parse_ship_date(start_raw, end_of_day=False, zone=sim.zone)
        end = parse_ship_date(end_raw, end_of_day=True, zone=sim.zone)
    except ValueError:
        return text_response(
            "fromShipDate and toShipDate must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS -0400.", 400
        )
    return xml_response(shipments_document(sim.visible_releases(start, end), sim.zone))


def _json_body() -> Mapping[str, Any]:
    payload = request.get_json(silent=True)
    if payload is None and not request.get_data():
        return {}
    if not isinstance(payload, Mapping):
        raise InvalidRequest("the body must be a JSON object")
    return payload


def register_api_routes(app: Flask, sim: DotcomSimulator) -> None:
    base = sim.config.base_path.rstrip("/")

    @app.post(f"{base}/order")
    def api_order() -> Response:
        return run_api_request(sim, "order", lambda: post_order(sim))

    @app.get(f"{base}/shipment")
    def api_shipment() -> Response:
        return run_api_request(sim, "shipment", lambda: get_shipments(sim))


def register_control_routes(app: Flask, sim: DotcomSimulator) -> None:
    @app.errorhandler(InvalidRequest)
    def bad_control_request(error: InvalidRequest) -> tuple[Response, int]:
        return jsonify({"error": str(error)}), 400

    @app.get("/_sim/health")
    def sim_health() -> Response:
        return jsonify({"ok": True})

    @app.post("/_sim/reset")
    def sim_reset() -> Response:
        sim.reset()
        return jsonify({"ok": True})

    @app.get("/_sim/orders")
    def sim_orders() -> Response:
        return jsonify(sim.orders_report())

    @app.get("/_sim/shipments")
    def sim_shipments() -> Response:
        return jsonify({"shipments": sim.releases_report()})

    @app.post("/_sim/shipments")
    def sim_inject_shipment() -> tuple[Response, int]:
        release = sim.inject_release(_json_body())
        return jsonify(release_to_json(release, sim.now())), 201

    @app.get("/_sim/faults")
    def sim_faults() -> Response:
        return jsonify({"faults": sim.pending_faults()})

    @app.post("/_sim/faults")
    def sim_queue_fault() -> tuple[Response, int]:
        return jsonify(fault_to_json(sim.queue_fault(_json_body()))), 201

    @app.get("/_sim/config")
    def sim_config() -> Response:
        return jsonify(sim.config_report())

    @app.post("/_sim/config")
    def sim_update_config() -> Response:
        return jsonify(sim.update_config(_json_body()))


def _copy_config(config: SimulatorConfig) -> SimulatorConfig:
    return SimulatorConfig(
        accounts=dict(config.accounts),
        base_path=config.base_path,
        item_master=set(config.item_master),
        ship_after_seconds=config.ship_after_seconds,
        visible_after_seconds=config.visible_after_seconds,
        warehouse_timezone=config.warehouse_timezone,
        clock=config.clock,
    )


def create_app(config: SimulatorConfig | None = None) -> Flask:
    """The simulator as a Flask app; ``app.extensions["dotcom_simulator"]`` is its state."""
    sim = DotcomSimulator(_copy_config(config or SimulatorConfig()))
    app = Flask(__name__)
    app.extensions["dotcom_simulator"] = sim
    register_api_routes(app, sim)
    register_control_routes(app, sim)
    return app


# --------------------------------------------------------------------------------------------
# Command line


def parse_accounts(spec: str) -> dict[str, str]:
    """``"key:password,key2:password2"`` → ``{"key": "password", "key2": "password2"}``."""
    accounts: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in spec.split(","))):
        api_key, separator, password = pair.partition(":")
        if not separator or not api_key or not password:
            raise ValueError(f"DOTCOM_SIM_ACCOUNTS entry {pair!r} is not key:password")
        accounts[api_key] = password
    return accounts


def config_from_env(environ: Mapping[str, str]) -> SimulatorConfig:
    """Defaults overridden by DOTCOM_SIM_SHIP_AFTER, DOTCOM_SIM_VISIBLE_AFTER (seconds),
    DOTCOM_SIM_ACCOUNTS, DOTCOM_SIM_BASE_PATH, DOTCOM_SIM_ITEM_MASTER (comma list, replaces the
    default) and DOTCOM_SIM_TIMEZONE."""
    config = SimulatorConfig()
    if "DOTCOM_SIM_SHIP_AFTER" in environ:
        config.ship_after_seconds = float(environ["DOTCOM_SIM_SHIP_AFTER"])
    if "DOTCOM_SIM_VISIBLE_AFTER" in environ:
        config.visible_after_seconds = float(environ["DOTCOM_SIM_VISIBLE_AFTER"])
    if environ.get("DOTCOM_SIM_ACCOUNTS"):
        config.accounts = parse_accounts(environ["DOTCOM_SIM_ACCOUNTS"])
    if environ.get("DOTCOM_SIM_BASE_PATH"):
        config.base_path = environ["DOTCOM_SIM_BASE_PATH"]
    if environ.get("DOTCOM_SIM_ITEM_MASTER"):
        config.item_master = {s.strip() for s in environ["DOTCOM_SIM_ITEM_MASTER"].split(",")}
        config.item_master.discard("")
    if environ.get("DOTCOM_SIM_TIMEZONE"):
        config.warehouse_timezone = environ["DOTCOM_SIM_TIMEZONE"]
    return config


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Dotcom Distribution API simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    args = parser.parse_args(argv)
    app = create_app(config_from_env(os.environ))
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
