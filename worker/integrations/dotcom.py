"""Dotcom Distribution (3PL): send shipments, poll what shipped.

Two services, as the classic endpoint had them:

* ``send_shipment`` takes ``shipment:ready``, maps the hub shipment to Dotcom's
  ``<orders><order>`` and POSTs it to ``{DOTCOM_API_URL}/order``.
* ``tracking`` takes ``dotcom:shipment_results:poll`` (hourly, or from the beat), GETs
  ``{DOTCOM_API_URL}/shipment?fromShipDate=&toShipDate=`` and answers one ``shipment:confirm``
  per shipped release, with the window's end as the cursor ``dotcom.last_polling_datetime``.

Numbers. Dotcom's ``order-number`` is the hub *shipment* number (``H67606710123``: 12 of the 20
characters Dotcom allows) and ``invoice-number`` is the hub *order* number (``R805661123``). A
polled ``client_order_number`` is therefore the shipment number itself; the hub order number is
recovered from what ``send_shipment`` kept when it sent the order (the classic endpoint
concatenated both numbers, 22 characters for the seed sample, and split them on the letter H).

Reading Dotcom's XML: answers are parsed with defusedxml (no entity expansion, no external
resources) and elements are found by their *local* name wherever they are, whatever the root or
the namespace (the real service wraps them in ``<response>`` with WCF namespaces). Anything that
is not the expected XML is a transient error with a clear message.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from anyascii import anyascii
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml
from defusedxml.ElementTree import iterparse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker import provider_http, registry
from worker.errors import ConfigurationError, HardError, TransientError
from worker.hub import Answer
from worker.integrations.us_states import region_code
from worker.job import Job
from worker.registry import Integration, Requirement, Schedule

log = logging.getLogger(__name__)

PROVIDER = "Dotcom Distribution"
SENT_NOTICE = "Successfully Sent Shipment to Dotcom Distribution"  # the seed's own words
AUTH_REFUSED = "Dotcom rejected the API key or signature"
REFUSED = "Dotcom Distribution refused the shipment"
ALREADY_SENT = "Shipment already sent to Dotcom Distribution"
CANNOT_SEND = "Shipment cannot be sent to Dotcom Distribution"
POLLED = "Polled Dotcom Distribution shipments"
CURSOR = "last_polling_datetime"
NOT_CONFIGURED = "Dotcom Distribution is not configured"
API_URL_VARIABLE = "DOTCOM_API_URL"
API_URL_HINT = "set it to Dotcom's API base URL (its test service and the live one differ)"
RECALL_BATCH = 1000


# ---------------------------------------------------------------------------------------------
# Configuration


class DotcomSettings(BaseSettings):
    """``DOTCOM_*`` environment configuration, checked when a process starts (``check_settings``)
    and read when a message is handled. An empty variable is an unset one."""

    model_config = SettingsConfigDict(env_prefix="DOTCOM_", extra="ignore", env_ignore_empty=True)

    # Only configuration chooses where requests (and their signatures) go; never a hub message.
    # No default: a production install that forgot it must not send real orders to Dotcom's
    # test service unnoticed (``bin/run`` and the tests set it to the simulator).
    api_url: str | None = None
    api_key: str | None = None
    password: SecretStr | None = None
    # JSON: the hub's list of one-key hashes, or one mapping (as the parameter).
    shipping_lookup: str | None = None
    # The initial cursor, until a poll has stored one.
    last_polling_datetime: str | None = None
    # Dotcom shows shipments late: a window ends this long before now.
    poll_lag_seconds: float = Field(900.0, ge=0)
    # Each window also re-reads this much before the cursor, for shipments that showed up later
    # than the lag; already confirmed releases are skipped, so the overlap is harmless.
    poll_overlap_seconds: float = Field(3600.0, ge=0)
    # The window start when there is no cursor at all.
    first_poll_lookback_hours: float = Field(24.0, gt=0)
    # Dotcom is in New Jersey: cursors, query dates, order dates and ship dates use this zone.
    timezone: str = "America/New_York"
    connect_timeout_seconds: float = Field(5.0, gt=0)
    read_timeout_seconds: float = Field(60.0, gt=0)

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def base_url(self) -> str:
        """Where requests go; a HardError naming DOTCOM_API_URL when it is not set."""
        if self.api_url is None:
            raise HardError(NOT_CONFIGURED, [f"{API_URL_VARIABLE} is not set: {API_URL_HINT}"])
        return self.api_url

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_seconds, self.read_timeout_seconds)


def dotcom_settings() -> DotcomSettings:
    """The current ``DOTCOM_*`` settings; a bad value is a hard error naming the variable (its
    value is not repeated: it could be a secret)."""
    try:
        return DotcomSettings()
    except ValidationError as exc:
        raise HardError(
            "Dotcom Distribution configuration is invalid",
            [
                f"DOTCOM_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            ],
        ) from None


def check_settings() -> list[str]:
    """The start-up check (``Integration.check``): an invalid ``DOTCOM_*`` value stops the
    process naming the variable; without DOTCOM_API_URL Dotcom is not configured."""
    try:
        s = dotcom_settings()
    except HardError as exc:
        raise ConfigurationError(f"{exc.subject}: {'; '.join(exc.reasons)}") from None
    return [API_URL_VARIABLE] if s.api_url is None else []


def load_config() -> dict[str, Any]:
    """Parameters from the environment, named as the hub names them, so that a scheduled poll
    needs no hub message. Empty values are left out."""
    s = dotcom_settings()
    password = s.password if s.password and s.password.get_secret_value() else None
    values = {
        "api_key": s.api_key,
        "password": password,
        "shipping_lookup": s.shipping_lookup,
        CURSOR: s.last_polling_datetime,
    }
    return {name: value for name, value in values.items() if value not in (None, "")}


dotcom = registry.register(
    Integration(
        "dotcom",
        PROVIDER,
        "Dotcom Distribution is the premier provider of logistics and fulfillment services to "
        "growing retailers & manufacturers.",
        config=load_config,
        check=check_settings,
    )
)
_session = provider_http.pooled_session()


# ---------------------------------------------------------------------------------------------
# What the hub sends


class HubModel(BaseModel):
    # The hub adds keys freely; numbers where text is expected (zipcode 20815) are taken as text.
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, str_strip_whitespace=True)


class HubAddress(HubModel):
    firstname: str = Field(min_length=1)
    lastname: str = Field(min_length=1)
    company: str | None = None
    address1: str = Field(min_length=1)
    address2: str | None = None
    city: str = Field(min_length=1)
    state: str | None = None  # a name ("Maryland") or a code; required for US addresses
    zipcode: str = Field(min_length=1)
    country: str = Field(min_length=1)
    phone: str | None = None


class HubItem(HubModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    price: Decimal | None = None
    variant_id: str | None = None
    name: str | None = None


class HubShipment(HubModel):
    number: str = Field(min_length=1)
    order_number: str = Field(min_length=1)
    email: str | None = None
    shipping_method: str = Field(min_length=1)
    shipping_address: HubAddress
    billing_address: HubAddress | None = None
    items: list[HubItem] = Field(min_length=1)


class HubOrder(HubModel):
    billing_address: HubAddress | None = None


class ShipmentReady(HubModel):
    """``shipment:ready``: the shipment to send; the order may carry its billing address."""

    shipment: HubShipment
    order: HubOrder | None = None


class ShipmentResultsPoll(HubModel):
    """``dotcom:shipment_results:poll``: no payload besides the parameters."""


# ---------------------------------------------------------------------------------------------
# Hub shipment → Dotcom order: field limits and formats, checked before any call

ORDER_NUMBER_MAX = 20
INVOICE_NUMBER_MAX = 20  # Dotcom's limit is not documented; assumed equal to order-number's
SKU_MAX = 17
NAME_MAX = 30
ADDRESS_MAX = 30
CITY_MAX = 20
ZIP_MAX = 10
PHONE_MAX = 19
EMAIL_MAX = 50
SHIP_METHOD_MAX = 3  # "03" usually, sometimes three characters ("01S")


def plain_text(value: str | None) -> str:
    """Free text as Dotcom takes it: ASCII only, transliterated rather than stripped, so that no
    letter of an address is lost ("Straße" → "Strasse", "Łódź" → "Lodz", "Søren" → "Soren",
    "Москва" → "Moskva"). Control characters and runs of whitespace become one space. The
    result may be longer than the value: the field limits are checked on it."""
    # Control characters first: anyascii drops some line breaks (U+0085), which would join words.
    spaced = "".join(" " if unicodedata.category(c) == "Cc" else c for c in value or "")
    ascii_text = anyascii(spaced)
    return " ".join("".join(c if c.isprintable() else " " for c in ascii_text).split())


def is_plain_identifier(value: str) -> bool:
    return value.isascii() and value.isprintable()


@dataclass(frozen=True)
class Party:
    """A billing or shipping block, every value already valid for Dotcom."""

    name: str
    company: str
    address1: str
    address2: str
    city: str
    state: str
    zip: str
    country: str
    phone: str
    email: str


@dataclass(frozen=True)
class OrderLine:
    line_number: int
    sku: str
    quantity: int
    price: Decimal
    client_item: str


@dataclass(frozen=True)
class DotcomOrder:
    order_number: str
    invoice_number: str
    order_date: date
    ship_method: str
    billing: Party
    shipping: Party
    lines: tuple[OrderLine, ...]


class Problems:
    """Everything wrong with a shipment, each naming the hub field and Dotcom's limit."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def add(self, reason: str) -> None:
        self.reasons.append(reason)

    def identifier(self, value: str, field: str, dotcom_field: str, limit: int) -> str:
        """A number or code: never altered, so it must already be printable ASCII that fits."""
        if not is_plain_identifier(value):
            self.add(f"{field} {value!r} has characters Dotcom cannot take (ASCII only)")
        else:
            self.fits(value, field, dotcom_field, limit)
        return value

    def text(
        self,
        value: str | None,
        field: str,
        dotcom_field: str,
        limit: int,
        *,
        required: bool = False,
    ) -> str:
        """Free text, made ASCII; too long is refused rather than cut (a cut address line can
        send a parcel to the wrong door)."""
        text = plain_text(value)
        if required and not text:
            why = "has no ASCII characters left" if (value or "").strip() else "is required"
            self.add(f"{field} {why} (Dotcom's {dotcom_field})")
        else:
            self.fits(text, field, dotcom_field, limit, original=value)
        return text

    def fits(
        self,
        value: str,
        field: str,
        dotcom_field: str,
        limit: int,
        *,
        original: str | None = None,
    ) -> None:
        """A value over Dotcom's limit is a problem showing it (and the hub's spelling, when
        transliteration changed it: "ß" → "ss" can be what made it too long)."""
        if len(value) <= limit:
            return
        shown = repr(value)
        if original is not None and " ".join(original.split()) != value:
            shown += f" (as ASCII, from {original!r})"
        self.add(
            f"{field} {shown} is {len(value)} characters; Dotcom's {dotcom_field} "
            f"allows at most {limit}"
        )

    def raise_if_any(self, subject: str) -> None:
        if self.reasons:
            raise HardError(subject, self.reasons)


def region(
    state: str | None, country: str, field: str, dotcom_field: str, problems: Problems
) -> str:
    """A state or province as Dotcom's two-letter code: names of US states (and territories)
    and Canadian provinces become their codes; a two-letter value is taken as a code."""
    text = plain_text(state)
    if not text:
        if country == "US":
            problems.add(f"{field} is required for a US address (Dotcom's {dotcom_field})")
        return ""
    code = region_code(state or "") or region_code(text)
    if code:
        return code
    if len(text) == 2 and text.isalpha():
        return text.upper()
    problems.add(
        f"{field} {state!r} is neither a US state, a Canadian province nor a two-letter code "
        f"(Dotcom's {dotcom_field} holds 2 characters)"
    )
    return ""


def country_code(value: str, field: str, dotcom_field: str, problems: Problems) -> str:
    text = plain_text(value).upper()
    if len(text) != 2 or not text.isalpha():
        problems.add(
            f"{field} {value!r} is not a two-letter country code (Dotcom's {dotcom_field})"
        )
    return text


@dataclass(frozen=True)
class AddressField:
    """A free-text address field: the hub's name, Dotcom's (after ``billing-``/``shipping-``),
    Dotcom's length limit."""

    hub: str
    dotcom: str
    limit: int
    required: bool = False


ADDRESS_FIELDS = (
    AddressField("company", "company", NAME_MAX),
    AddressField("address1", "address1", ADDRESS_MAX, required=True),
    AddressField("address2", "address2", ADDRESS_MAX),
    AddressField("city", "city", CITY_MAX, required=True),
    AddressField("zipcode", "zip", ZIP_MAX),
    AddressField("phone", "phone", PHONE_MAX),
)


def party(address: HubAddress, email: str, label: str, section: str, problems: Problems) -> Party:
    """One address block; ``label`` is the hub path (``shipment.shipping_address``) and
    ``section`` Dotcom's (``shipping``), so every problem names both."""
    country = country_code(address.country, f"{label}.country", f"{section}-country", problems)
    name = problems.text(
        f"{address.firstname} {address.lastname}",
        f"{label}.firstname + lastname",
        f"{section}-name",
        NAME_MAX,
        required=True,
    )
    texts = {
        f.dotcom: problems.text(
            getattr(address, f.hub),
            f"{label}.{f.hub}",
            f"{section}-{f.dotcom}",
            f.limit,
            required=f.required,
        )
        for f in ADDRESS_FIELDS
    }
    state = region(address.state, country, f"{label}.state", f"{section}-state", problems)
    return Party(name=name, state=state, country=country, email=email, **texts)


def shipping_methods(raw: Any) -> dict[str, str]:
    """The ``shipping_lookup`` parameter as one mapping of hub method → Dotcom ship-method.

    Accepts the hub's list of one-key hashes (``[{"UPS Ground (USD)": "03"}, ...]``), a single
    mapping, or a JSON string of either."""
    if isinstance(raw, SecretStr):
        raw = raw.get_secret_value()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise HardError(
                "Invalid shipping_lookup", [f"shipping_lookup is not valid JSON: {exc.msg}"]
            ) from None
    entries: list[Any] = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise HardError(
            "Invalid shipping_lookup",
            [
                "shipping_lookup must be a list of {method: code} hashes or one mapping, "
                'e.g. [{"UPS Ground (USD)": "03"}]'
            ],
        )
    methods: dict[str, str] = {}
    for entry in entries:
        for method, code in entry.items():
            methods[str(method)] = "" if code is None else str(code).strip()
    return methods


def _method_key(method: str) -> str:
    """Loose comparison of method names: case, spaces and a trailing currency tag such as
    "(USD)" do not count."""
    return " ".join(re.sub(r"\(\s*[A-Za-z]{3}\s*\)\s*$", "", method).casefold().split())


def ship_method_code(method: str, methods: Mapping[str, str], problems: Problems) -> str:
    """Dotcom's ship-method for a hub shipping method: an exact match first, then a loose one.
    A method that is not there (or maps to nothing usable) is a problem listing the known ones."""
    code = methods.get(method)
    if code is None:
        wanted = _method_key(method)
        code = next((c for m, c in methods.items() if _method_key(m) == wanted), None)
    if code is None:
        known = ", ".join(repr(m) for m in methods) or "none (shipping_lookup is empty)"
        problems.add(
            f"Shipping method {method!r} is not in shipping_lookup; known methods: {known}"
        )
        return ""
    if not code or not is_plain_identifier(code) or len(code) > SHIP_METHOD_MAX:
        problems.add(
            f"shipping_lookup maps {method!r} to {code!r}; Dotcom's ship-method is a code of "
            f"1 to {SHIP_METHOD_MAX} ASCII characters"
        )
    return code


def dotcom_order(ready: ShipmentReady, methods: Mapping[str, str], today: date) -> DotcomOrder:
    """The Dotcom order for a hub shipment, or a HardError listing every field that cannot be
    made valid (and an unknown shipping method, with the known ones).

    Billing information is required by Dotcom: the shipment's billing address, else the
    order's, else the shipping address (as the classic endpoint did)."""
    shipment = ready.shipment
    problems = Problems()
    order_number = problems.identifier(
        shipment.number, "shipment.number", "order-number", ORDER_NUMBER_MAX
    )
    invoice_number = problems.identifier(
        shipment.order_number, "shipment.order_number", "invoice-number", INVOICE_NUMBER_MAX
    )
    ship_method = ship_method_code(shipment.shipping_method, methods, problems)
    email = (shipment.email or "").strip()
    if email:
        email = problems.identifier(email, "shipment.email", "shipping-email", EMAIL_MAX)
    shipping = party(
        shipment.shipping_address, email, "shipment.shipping_address", "shipping", problems
    )
    billing = shipping
    if shipment.billing_address is not None:
        billing = party(
            shipment.billing_address, email, "shipment.billing_address", "billing", problems
        )
    elif ready.order is not None and ready.order.billing_address is not None:
        billing = party(
            ready.order.billing_address, email, "order.billing_address", "billing", problems
        )
    lines = tuple(
        OrderLine(
            line_number=position,
            sku=problems.identifier(
                item.sku, f"shipment.items[{position - 1}].sku", "sku", SKU_MAX
            ),
            quantity=item.quantity,
            price=item.price if item.price is not None else Decimal(0),
            client_item=plain_text(item.variant_id),
        )
        for position, item in enumerate(shipment.items, start=1)
    )
    problems.raise_if_any(CANNOT_SEND)
    return DotcomOrder(
        order_number=order_number,
        invoice_number=invoice_number,
        order_date=today,
        ship_method=ship_method,
        billing=billing,
        shipping=shipping,
        lines=lines,
    )


# Party fields in the order the classic endpoint wrote them in each block.
BILLING_ELEMENTS = (
    "name",
    "company",
    "address1",
    "address2",
    "city",
    "state",
    "zip",
    "country",
    "phone",
    "email",
)
SHIPPING_ELEMENTS = (
    "name",
    "address1",
    "address2",
    "city",
    "state",
    "country",
    "zip",
    "phone",
    "email",
    "company",
)


def _element(parent: ET.Element, name: str, text: object) -> ET.Element:
    child = ET.SubElement(parent, name)
    child.text = str(text)
    return child


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'))}"


def order_document(order: DotcomOrder) -> bytes:
    """``<orders><order>…</order></orders>`` in the element order the classic endpoint used.
    ``ship_date`` (underscore, as Dotcom spells it) is the day the order is sent."""
    root = ET.Element("orders")
    element = ET.SubElement(root, "order")
    _element(element, "order-number", order.order_number)
    _element(element, "ship_date", order.order_date.isoformat())
    _element(element, "ship-method", order.ship_method)
    _element(element, "invoice-number", order.invoice_number)
    _element(element, "order-date", order.order_date.isoformat())
    billing = ET.SubElement(element, "billing-information")
    for name in BILLING_ELEMENTS:
        _element(billing, f"billing-{name}", getattr(order.billing, name))
    shipping = ET.SubElement(element, "shipping-information")
    for name in SHIPPING_ELEMENTS:
        _element(shipping, f"shipping-{name}", getattr(order.shipping, name))
    lines = ET.SubElement(element, "line-items")
    for line in order.lines:
        item = ET.SubElement(lines, "line-item")
        _element(item, "client-item", line.client_item)
        _element(item, "sku", line.sku)
        _element(item, "quantity", line.quantity)
        _element(item, "price", _money(line.price))
        _element(item, "tax", "0.00")
        _element(item, "line-number", line.line_number)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# ---------------------------------------------------------------------------------------------
# Signing, dates and the polling window


def signature(url: str, password: str) -> str:
    """Base64 of HMAC-MD5 over the full request URL as sent, keyed by the account password."""
    digest = hmac.new(password.encode("utf-8"), url.encode("utf-8"), hashlib.md5).digest()
    return base64.b64encode(digest).decode("ascii")


def authorization(api_key: str, password: str, url: str) -> str:
    """The ``Authorization`` header value: ``<api_key>:<signature>``."""
    return f"{api_key}:{signature(url, password)}"


def dotcom_time(moment: datetime, zone: ZoneInfo) -> str:
    """``2013-10-29 03:15:21 -0400``: the cursor's format, and the query's."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z")


_CLASSIC = re.compile(
    r"^(?P<day>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{1,2}:\d{2}(?::\d{2})?)"
    r"(?:\s*(?P<zone>[+-]\d{2}:?\d{2}|Z|UTC|GMT))?$"
)


def parse_cursor(raw: str, zone: ZoneInfo) -> datetime:
    """A cursor as the hub or an operator writes it: ``2013-10-28 3:15:21 -0400`` (single-digit
    hour too, ``UTC`` too), ISO 8601, or a date (midnight). Without an offset: ``zone``'s time.
    ValueError when it is none of these."""
    value = raw.strip()
    if match := _CLASSIC.match(value):
        clock = match["time"] if match["time"].count(":") == 2 else match["time"] + ":00"
        offset = match["zone"] or ""
        offset = "+0000" if offset in ("Z", "UTC", "GMT") else offset.replace(":", "")
        moment = datetime.strptime(f"{match['day']} {clock}", "%Y-%m-%d %H:%M:%S")
        if offset:
            return datetime.strptime(f"{match['day']} {clock} {offset}", "%Y-%m-%d %H:%M:%S %z")
        return moment.replace(tzinfo=zone)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


@dataclass(frozen=True)
class Window:
    """Shipments to ask for: the cursor up to now minus the lag. ``query_start`` reaches back
    ``poll_overlap_seconds`` before the cursor."""

    start: datetime
    end: datetime
    query_start: datetime

    @property
    def is_open(self) -> bool:
        return self.end > self.start


def poll_window(cursor: datetime | None, now: datetime, s: DotcomSettings) -> Window:
    start = cursor or now - timedelta(hours=s.first_poll_lookback_hours)
    end = (now - timedelta(seconds=s.poll_lag_seconds)).replace(microsecond=0)
    return Window(start, end, start - timedelta(seconds=s.poll_overlap_seconds))


def query_value(text: str) -> str:
    """URL-encoded as Dotcom's examples are: ``%20`` for spaces, ``%2B`` for ``+``, ``:`` kept."""
    return quote(text, safe=":")


def shipments_url(base_url: str, start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """The exact URL string that is signed and sent."""
    return (
        f"{base_url}/shipment?fromShipDate={query_value(dotcom_time(start, zone))}"
        f"&toShipDate={query_value(dotcom_time(end, zone))}"
    )


# ---------------------------------------------------------------------------------------------
# Dotcom's XML answers


class UnexpectedAnswer(TransientError):
    """Dotcom answered something that is not the XML we expect (an error page, a cut answer)."""

    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__(f"{PROVIDER} answered {what}", [detail] if detail else [])


XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def local_name(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def child_text(element: ET.Element, name: str) -> str:
    """The text of the first direct child with this local name ("" when absent or nil)."""
    for child in element:
        if local_name(child.tag) == name:
            return "" if child.get(XSI_NIL) == "true" else (child.text or "").strip()
    return ""


def first_named(root: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in root.iter() if local_name(e.tag) == name), None)


@dataclass(frozen=True)
class OrderError:
    description: str
    order_number: str


def parse_order_errors(document: bytes) -> list[OrderError]:
    """The ``order_error`` entries of a POST /order answer; an empty list means success."""
    try:
        root = parse_xml(document)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise UnexpectedAnswer("a POST /order answer that is not readable XML", str(exc)) from None
    container = first_named(root, "order_errors")
    if container is None:
        raise UnexpectedAnswer(
            f"<{local_name(root.tag)}> where <order_errors> was expected",
            provider_http.excerpt(document.decode("utf-8", "replace")),
        )
    return [
        OrderError(child_text(e, "error_description"), child_text(e, "order_number"))
        for e in container.iter()
        if local_name(e.tag) == "order_error"
    ]


_DUPLICATE = re.compile(r"already exists|duplicate", re.IGNORECASE)


def is_duplicate_order(error: OrderError, order_number: str) -> bool:
    """Dotcom's wording for a duplicate order is not documented: any error about this order
    number saying "already exists" or "duplicate" counts."""
    return error.order_number in ("", order_number) and bool(_DUPLICATE.search(error.description))


@dataclass(frozen=True)
class ShippedLine:
    sku: str
    quantity: Decimal
    carrier: str
    service: str
    service_code: str
    tracking_number: str
    carton_id: str


@dataclass(frozen=True)
class Release:
    """One ``shipment`` of the answer: a release (``01``, ``02`` for back orders) of an order."""

    client_order_number: str
    dcd_order_number: str
    release: str
    order_status: str
    ship_date: str
    lines: tuple[ShippedLine, ...]

    @property
    def key(self) -> str:
        """Identity for de-duplication: ``<client_order_number>/<dcd_order_number>/<release>``."""
        return f"{self.client_order_number}/{self.dcd_order_number}/{self.release}"

    @property
    def shipped_lines(self) -> list[ShippedLine]:
        return [line for line in self.lines if line.quantity > 0]

    @property
    def shipped(self) -> bool:
        """A release whose every item shipped 0.00 is a cancellation or back order."""
        return bool(self.shipped_lines)


def parse_quantity(raw: str) -> Decimal:
    try:
        quantity = Decimal(raw or "0")
    except InvalidOperation:
        raise UnexpectedAnswer("a shipment with an unreadable quantity", repr(raw)) from None
    if not quantity.is_finite() or quantity < 0:
        raise UnexpectedAnswer("a shipment with an impossible quantity", repr(raw))
    return quantity


def shipped_line(item: ET.Element) -> ShippedLine:
    return ShippedLine(
        sku=child_text(item, "sku"),
        quantity=parse_quantity(child_text(item, "quantity_shipped")),
        carrier=child_text(item, "carrier"),
        service=child_text(item, "service"),
        service_code=child_text(item, "service_code"),
        tracking_number=child_text(item, "tracking_number"),
        carton_id=child_text(item, "carton_id"),
    )


def release_of(shipment: ET.Element) -> Release:
    """A ``shipment`` element as a Release; its ``ship_item`` elements are found anywhere
    below it, one or many."""
    return Release(
        client_order_number=child_text(shipment, "client_order_number"),
        dcd_order_number=child_text(shipment, "dcd_order_number"),
        release=child_text(shipment, "dcd_order_release_number"),
        order_status=child_text(shipment, "order_status"),
        ship_date=child_text(shipment, "ship_date"),
        lines=tuple(shipped_line(e) for e in shipment.iter() if local_name(e.tag) == "ship_item"),
    )


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def parse_shipments(source: Readable) -> Iterator[Release]:
    """Releases of a GET /shipment answer, read as a stream: each ``shipment`` is turned into a
    Release as soon as it is complete and then dropped from the tree, so a window with many
    thousands of shipments never sits in memory as a document.

    An empty ``<shipments/>`` yields nothing; an answer without a ``shipments`` element, or
    that is not well-formed, is an UnexpectedAnswer."""
    open_elements: list[ET.Element] = []
    seen_list = False
    try:
        for event, element in iterparse(source, events=("start", "end")):
            if event == "start":
                open_elements.append(element)
                seen_list = seen_list or local_name(element.tag) == "shipments"
                continue
            open_elements.pop()
            if local_name(element.tag) == "shipment":
                release = release_of(element)
                if open_elements:
                    open_elements[-1].remove(element)
                element.clear()
                yield release
    except (ET.ParseError, DefusedXmlException) as exc:
        raise UnexpectedAnswer(
            "a GET /shipment answer that is not readable XML", str(exc)
        ) from None
    if not seen_list:
        raise UnexpectedAnswer("XML without a <shipments> list to GET /shipment")


class ChunkReader:
    """A file-like ``read`` over an iterator of byte chunks (a streamed HTTP body)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1, /) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


# ---------------------------------------------------------------------------------------------
# Dotcom's XML → shipment:confirm


def number(quantity: Decimal) -> int | float:
    """``2.00`` → 2; a fractional quantity stays fractional."""
    return int(quantity) if quantity == quantity.to_integral_value() else float(quantity)


def distinct(values: Iterable[str]) -> list[str]:
    """Non-empty values, each once, in document order."""
    return list(dict.fromkeys(v for v in values if v))


def shipped_at(ship_date: str, zone: ZoneInfo) -> str | None:
    """Dotcom's ``ship_date`` (``06/27/2012``, a day in the warehouse's zone) as ISO 8601:
    midnight of that day in ``DOTCOM_TIMEZONE`` (``2012-06-27T00:00:00-04:00``). A date with a
    time (``06/27/2012 3:04:05 PM``) keeps its time. None when it is neither."""
    for layout in ("%m/%d/%Y", "%m/%d/%Y %I:%M:%S %p", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(ship_date, layout).replace(tzinfo=zone).isoformat()
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class SentShipment:
    """What ``send_shipment`` kept about an order it sent."""

    order_number: str | None
    shipping_method: str | None

    @classmethod
    def from_memory(cls, value: Any) -> SentShipment | None:
        if not isinstance(value, Mapping):
            return None
        return cls(value.get("order_number"), value.get("shipping_method"))


def items_shipped(lines: Sequence[ShippedLine]) -> list[dict[str, Any]]:
    """Quantities summed per SKU, in the order the SKUs first appear."""
    totals: dict[str, Decimal] = {}
    for line in lines:
        totals[line.sku] = totals.get(line.sku, Decimal(0)) + line.quantity
    return [{"sku": sku, "quantity": number(quantity)} for sku, quantity in totals.items()]


def cartons(lines: Sequence[ShippedLine]) -> list[dict[str, Any]]:
    seen = dict.fromkeys((line.carton_id, line.tracking_number) for line in lines)
    return [
        {"carton_id": carton or None, "tracking_number": tracking or None}
        for carton, tracking in seen
        if carton or tracking
    ]


def shipment_confirmation(
    release: Release, zone: ZoneInfo, sent: SentShipment | None
) -> dict[str, Any] | None:
    """The ``shipment:confirm`` payload for a release, or None when nothing shipped in it.

    Every tracking number of every carton is kept (``tracking`` is the first); carrier and
    service come from the first shipped item that has them, and ``carriers`` lists every one
    when items disagree. ``order_number`` is None when this endpoint never sent the order."""
    lines = release.shipped_lines
    if not lines:
        return None
    tracking_numbers = distinct(line.tracking_number for line in lines)
    carriers = distinct(line.carrier for line in lines)
    service = next((line.service for line in lines if line.service), None)
    service_code = next((line.service_code for line in lines if line.service_code), None)
    carrier = carriers[0] if carriers else None
    dotcom_method = " ".join(filter(None, (carrier, service))) or None
    shipment = {
        "number": release.client_order_number,
        "order_number": sent.order_number if sent else None,
        "status": "shipped",
        "tracking": tracking_numbers[0] if tracking_numbers else None,
        "tracking_numbers": tracking_numbers,
        "carrier": carrier,
        "carriers": carriers,
        "service": service,
        "service_code": service_code,
        "shipping_method": (sent.shipping_method if sent else None) or dotcom_method,
        "shipped_at": shipped_at(release.ship_date, zone),
        "items": items_shipped(lines),
        "cartons": cartons(lines),
        "dotcom_order_number": release.dcd_order_number,
        "dotcom_release": release.release,
    }
    return {"shipment": shipment}


# ---------------------------------------------------------------------------------------------
# The client


@dataclass(frozen=True)
class Credentials:
    api_key: str
    password: SecretStr


class DotcomClient:
    """Signed XML requests to one Dotcom account over the process's pooled session."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        timeout: tuple[float, float],
        session: requests.Session = _session,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self.session = session

    def send_orders(self, document: bytes) -> list[OrderError]:
        """POST /order; Dotcom's business errors (HTTP 200) are returned, not raised."""
        with self._send("POST", f"{self.base_url}/order", body=document) as response:
            _refuse_html(response)
            return parse_order_errors(response.content)

    def shipments(self, url: str) -> Iterator[Release]:
        """GET a shipments URL (from ``shipments_url``) and stream its releases."""
        with self._send("GET", url, stream=True) as response:
            _refuse_html(response)
            yield from parse_shipments(
                ChunkReader(provider_http.body_chunks(response, f"{PROVIDER}'s shipments answer"))
            )

    def _send(
        self, method: str, url: str, *, body: bytes | None = None, stream: bool = False
    ) -> requests.Response:
        """Send exactly ``url`` (the bytes signed are the bytes on the wire); 401 is a hard
        error saying what to check, the rest is classified as for every provider."""
        headers = {
            "Authorization": authorization(
                self.credentials.api_key, self.credentials.password.get_secret_value(), url
            ),
            "Accept": "application/xml",
        }
        if body is not None:
            headers["Content-Type"] = "application/xml; charset=utf-8"
        try:
            return provider_http.call(
                self.session,
                PROVIDER,
                method,
                url,
                exact_url=True,
                stream=stream,
                headers=headers,
                data=body,
                timeout=self.timeout,
                reasons=_error_page_reasons,
            )
        except HardError as exc:
            if exc.status != 401:
                raise
            raise HardError(
                AUTH_REFUSED,
                [
                    f"{PROVIDER} answered HTTP 401 to {method} {url.split('?')[0]}: check "
                    "api_key and password (the request signature is made with the password)"
                ],
            ) from None


def _error_page_reasons(response: requests.Response) -> list[str]:
    """An IIS/WCF error page reduced to its words (never with a header of the request: the
    ``Authorization`` value, should a debug page repeat it)."""
    text = re.sub(r"<[^>]+>", " ", provider_http.text_of(response, PROVIDER))
    text = provider_http.scrubbed(text, provider_http.sent_headers(response))
    return [provider_http.excerpt(text)] if text.strip() else []


def _refuse_html(response: requests.Response) -> None:
    """A 200 with an HTML page (an ASP.NET error page) is not an answer."""
    if "html" in response.headers.get("Content-Type", "").lower():
        reason = _error_page_reasons(response)
        raise UnexpectedAnswer(
            f"an HTML page (HTTP {response.status_code}) instead of XML",
            reason[0] if reason else "",
        )


# ---------------------------------------------------------------------------------------------
# Handlers

API_KEY = Requirement("api_key", "Your Dotcom Distribution API key")
PASSWORD = Requirement("password", "Your Dotcom Distribution account password")
SHIPPING_LOOKUP = Requirement(
    "shipping_lookup", "Spree to Dotcom Distribution shipping methods' mapping", "list"
)
LAST_POLLING = Requirement(CURSOR, "Initial date shipment polling will start from", cursor=True)


def credentials(job: Job[Any]) -> Credentials:
    """The account's credentials, checked before anything is signed or sent: a value with
    control characters (a pasted line break) would break the ``Authorization`` header, and the
    error requests gives then quotes the header, key and signature alike."""
    api_key = credential(job, "api_key")
    if not api_key.isascii():
        raise invalid_credential("api_key", "has characters other than ASCII")
    return Credentials(api_key=api_key.strip(), password=SecretStr(credential(job, "password")))


def credential(job: Job[Any], name: str) -> str:
    """A credential parameter as text; one with control characters is a HardError naming it
    (never retried: the same value fails every time)."""
    value = job.param(name)
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise invalid_credential(name, "has control characters (a line break, a tab...)")
    return text


def invalid_credential(name: str, why: str) -> HardError:
    """The error for a credential that cannot be used: it names the parameter and where it may
    come from, never its value."""
    return HardError(
        f"Invalid {name}",
        [
            f"{name} {why}: check the {name} parameter (or DOTCOM_{name.upper()}); "
            "its value is not shown"
        ],
    )


def client_for(job: Job[Any], s: DotcomSettings) -> DotcomClient:
    """The client for this message's account; the URL is checked first, so an unconfigured
    Dotcom says so before anything else."""
    return DotcomClient(s.base_url, credentials(job), s.timeout)


@dotcom.service(
    "send_shipment",
    message="shipment:ready",
    payload=ShipmentReady,
    description="Send a shipment to Dotcom Distribution.",
    requires=[API_KEY, PASSWORD, SHIPPING_LOOKUP],
)
def send_shipment(job: Job[ShipmentReady]) -> Answer:
    """Send a shipment to Dotcom Distribution."""
    s = dotcom_settings()
    client = client_for(job, s)
    now = datetime.now(s.zone)
    order = dotcom_order(job.payload, shipping_methods(job.param("shipping_lookup")), now.date())
    document = order_document(order)
    sends = order_content(order)

    def create(_key: str) -> dict[str, Any]:
        # Dotcom takes no idempotency key: its order number is the guard against a repeat, and
        # "already exists" is success only when Dotcom holds this same order (job.already_there).
        errors = client.send_orders(document)
        if errors and any(is_duplicate_order(e, order.order_number) for e in errors):
            how = job.already_there("sent", order.order_number, sends, REFUSED)
            return {"order_number": order.order_number, "was_there": how}
        if errors:
            raise HardError(REFUSED, [e.description for e in errors])
        return {"order_number": order.order_number, "was_there": ""}

    created = job.once("create_order", create, sends=sends)
    shipment = job.payload.shipment
    job.keep_sent(
        "sent",
        order.order_number,
        sends,
        order_number=shipment.order_number,
        shipping_method=shipment.shipping_method,
        sent_at=now.isoformat(timespec="seconds"),
    )
    how = created.get("was_there") or ""
    if how.startswith("already sent"):
        return job.answer().notify(
            "info",
            ALREADY_SENT,
            f"Shipment {order.order_number} was {how}; {PROVIDER} holds it, nothing was sent again",
        )
    if how:
        log.info("dotcom: order %s %s", order.order_number, how)
    return job.answer().notify("info", SENT_NOTICE, SENT_NOTICE)


def order_content(order: DotcomOrder) -> dict[str, Any]:
    """What a Dotcom order holds, to tell one order from another under the same number
    (JSON-able). The order date is left out: the same shipment sent again another day is the
    same order."""
    content = dataclasses.asdict(order)
    content.pop("order_date")
    return json.loads(json.dumps(content, default=str))


def recall_all(job: Job[Any], kind: str, names: Sequence[str]) -> dict[str, Any]:
    """What earlier messages kept under these names (absent ones left out), in batches."""
    found: dict[str, Any] = {}
    for first in range(0, len(names), RECALL_BATCH):
        batch = names[first : first + RECALL_BATCH]
        found.update(
            (name, value)
            for name, value in zip(batch, job.recall(kind, *batch), strict=True)
            if value is not None
        )
    return found


def listing(names: Sequence[str], limit: int = 50) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def cursor_of(job: Job[Any], zone: ZoneInfo) -> tuple[str | None, datetime | None]:
    raw = job.parameters.get(CURSOR)
    if raw in (None, ""):
        return None, None
    try:
        return str(raw), parse_cursor(str(raw), zone)
    except ValueError:
        raise HardError(
            f"Invalid {CURSOR}",
            [
                f"{CURSOR} {raw!r} is not a date-time: use '2013-10-28 03:15:21 -0400', "
                "ISO 8601 or a date"
            ],
        ) from None


@dotcom.service(
    "tracking",
    message="dotcom:shipment_results:poll",
    payload=ShipmentResultsPoll,
    description="Track shipment dispatches.",
    requires=[API_KEY, PASSWORD, LAST_POLLING],
    schedule=Schedule(1, "hours"),
)
def poll_shipment_results(job: Job[ShipmentResultsPoll]) -> Answer:
    """Track shipment dispatches."""
    s = dotcom_settings()
    client = client_for(job, s)
    zone = s.zone
    raw_cursor, cursor = cursor_of(job, zone)
    window = poll_window(cursor, datetime.now(zone), s)
    answer = job.answer()
    span = f"from {dotcom_time(window.start, zone)} to {dotcom_time(window.end, zone)}"
    if not window.is_open:
        return answer.notify(
            "info", POLLED, f"Nothing to poll yet: the window {span} is empty"
        ).add_parameter(CURSOR, raw_cursor or dotcom_time(window.start, zone))

    url = shipments_url(s.base_url, window.query_start, window.end, zone)
    releases = {r.key: r for r in client.shipments(url) if r.shipped}
    confirmed = recall_all(job, "confirmed", list(releases))
    new = [release for key, release in releases.items() if key not in confirmed]
    sent = recall_all(job, "sent", distinct(r.client_order_number for r in new))
    unknown: list[str] = []
    for release in new:
        record = SentShipment.from_memory(sent.get(release.client_order_number))
        payload = shipment_confirmation(release, zone, record)
        if payload is None:  # not reached: only shipped releases are here
            continue
        answer.add_message("shipment:confirm", payload)
        job.keep(
            "confirmed",
            release.key,
            {"message_id": job.message_id, "tracking": payload["shipment"]["tracking"]},
        )
        if record is None or record.order_number is None:
            unknown.append(release.client_order_number)
    if unknown:
        answer.notify(
            "warn",
            "Shipments this endpoint did not send",
            f"No record of sending {listing(distinct(unknown))} to {PROVIDER}: their "
            "shipment:confirm messages carry no order_number",
        )
    already = len(releases) - len(new)
    summary = f"{len(new)} new shipment(s) {span}" if new else f"No new shipments {span}"
    if already:
        summary += f"; {already} already confirmed"
    answer.notify("info", POLLED, summary)
    return answer.add_parameter(CURSOR, dotcom_time(window.end, zone))
