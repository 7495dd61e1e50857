"""Hub shipment → Dotcom order, and Dotcom's shipped releases → ``shipment:confirm``: pure
functions, every limit checked before any call."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from anyascii import anyascii
from pydantic import SecretStr

from worker.basics.errors import HardError
from worker.hub.messages import ConfirmedShipment, HubAddress, HubShipment, ShipmentReady
from worker.integrations.dotcom.documents import Release, ShippedLine
from worker.integrations.dotcom.settings import DotcomSettings
from worker.integrations.kit import cursor_in_range
from worker.integrations.us_states import region_code

log = logging.getLogger(__name__)

CANNOT_SEND = "Shipment cannot be sent to Dotcom Distribution"

# ---------------------------------------------------------------------------------------------
# Hub shipment → Dotcom order: field limits and formats, checked before any call

# Dotcom's order schema (order.xsd of its API interface specification; see providers.md): every
# element of every group is required, each with a valid value or, where nillable, xsi:nil. Where
# the specification's text is narrower than the schema (sku 17 against 20), the narrower wins.
ORDER_NUMBER_MAX = 20
PO_NUMBER_MAX = 20
SKU_MAX = 17
NAME_MAX = 30
ADDRESS_MAX = 30
CITY_MAX = 20
ZIP_MAX = 10
PHONE_MAX = 19
EMAIL_MAX = 50
SHIP_METHOD_MAX = 3  # "03" usually, sometimes three characters ("01S")
CLIENT_ITEM_MAX = 20
QUANTITY_MAX = 99_999_999  # a line's quantity: 8 digits
UNIT_PRICE_MAX = Decimal("99999.99")  # a line's price (and unit tax)
LINE_SHIPPING_MAX = Decimal("999999.99")  # a line's shipping-handling
TOTAL_MAX = Decimal("99999999.99")  # total-tax, total-shipping-handling, total-order-amount...
CENT = Decimal("0.01")
UNITED_STATES = "US"


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
    price: Decimal  # unit price
    tax: Decimal  # unit tax
    shipping_handling: Decimal
    client_item: str


@dataclass(frozen=True)
class OrderTotals:
    tax: Decimal
    shipping_handling: Decimal
    discount: Decimal
    order_amount: Decimal
    declared_value: Decimal  # the goods' value outside the USA (customs), 0 inside it


@dataclass(frozen=True)
class DotcomOrder:
    order_number: str  # the hub shipment number
    po_number: str  # the hub order number
    order_date: date
    ship_method: str
    billing: Party
    shipping: Party
    totals: OrderTotals
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

    def amount(self, value: Decimal, field: str, dotcom_field: str, maximum: Decimal) -> Decimal:
        """Money in cents (half up), within Dotcom's range for the element."""
        amount = cents(value)
        if amount > maximum:
            self.add(f"{field} {amount} is more than Dotcom's {dotcom_field} allows ({maximum})")
        return amount

    def raise_if_any(self, subject: str) -> None:
        if self.reasons:
            raise HardError(subject, self.reasons)


def cents(value: Decimal) -> Decimal:
    """Money as Dotcom writes it: two fraction digits, rounded half up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


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
    if problem := ship_method_problem(method, code):
        problems.add(problem)
    return code


def ship_method_problem(method: str, code: str) -> str | None:
    """What keeps ``code`` (what shipping_lookup maps ``method`` to) from being Dotcom's
    ship-method, or None."""
    if not code or not is_plain_identifier(code) or len(code) > SHIP_METHOD_MAX:
        return (
            f"shipping_lookup maps {method!r} to {code!r}; Dotcom's ship-method is a code of "
            f"1 to {SHIP_METHOD_MAX} ASCII characters"
        )
    return None


def checked_shipping_methods(raw: Any) -> dict[str, str]:
    """``shipping_methods``, with every code checked (a message checks only its own method's):
    for the lookup a setting gives, at start-up."""
    methods = shipping_methods(raw)
    problems = [p for m, c in methods.items() if (p := ship_method_problem(m, c))]
    if problems:
        raise HardError("Invalid shipping_lookup", problems)
    return methods


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
    po_number = problems.identifier(
        shipment.order_number, "shipment.order_number", "po-number", PO_NUMBER_MAX
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
    lines = order_lines(shipment, problems)
    totals = order_totals(shipment, lines, shipping.country, problems)
    problems.raise_if_any(CANNOT_SEND)
    return DotcomOrder(
        order_number=order_number,
        po_number=po_number,
        order_date=today,
        ship_method=ship_method,
        billing=billing,
        shipping=shipping,
        totals=totals,
        lines=lines,
    )


def order_lines(shipment: HubShipment, problems: Problems) -> tuple[OrderLine, ...]:
    """One line per hub item, in order. A line's price is its unit price and its tax the unit
    tax (0: the hub gives tax for the shipment, not per item); the shipment's ``cost`` (its
    shipping and handling) rides on the first line, so that the lines add up to the order."""
    shipping = problems.amount(
        shipment.cost or Decimal(0), "shipment.cost", "shipping-handling", LINE_SHIPPING_MAX
    )
    lines = []
    for position, item in enumerate(shipment.items, start=1):
        label = f"shipment.items[{position - 1}]"
        if item.quantity > QUANTITY_MAX:
            problems.add(f"{label}.quantity {item.quantity} is more than Dotcom's quantity allows")
        lines.append(
            OrderLine(
                line_number=position,
                sku=problems.identifier(item.sku, f"{label}.sku", "sku", SKU_MAX),
                quantity=item.quantity,
                price=problems.amount(
                    item.price or Decimal(0), f"{label}.price", "price", UNIT_PRICE_MAX
                ),
                tax=Decimal("0.00"),
                shipping_handling=shipping if position == 1 else Decimal("0.00"),
                client_item=problems.text(
                    item.variant_id, f"{label}.variant_id", "client-item", CLIENT_ITEM_MAX
                ),
            )
        )
    return tuple(lines)


def order_totals(
    shipment: HubShipment, lines: Sequence[OrderLine], country: str, problems: Problems
) -> OrderTotals:
    """The order's totals from its lines: the goods (unit price x quantity), shipping and
    handling (the shipment's ``cost``), tax where the hub gives it, no discount. Outside the
    USA the goods' value is declared (customs); inside it, 0 (a carrier's declared value buys
    insurance)."""
    goods = sum((line.price * line.quantity for line in lines), Decimal("0.00"))
    shipping = sum((line.shipping_handling for line in lines), Decimal("0.00"))
    tax = problems.amount(shipment.tax, "shipment.totals.tax", "total-tax", TOTAL_MAX)
    amount = goods + shipping + tax
    if amount > TOTAL_MAX:
        problems.add(
            f"the shipment's total {amount} (items, cost and tax) is more than Dotcom's "
            f"total-order-amount allows ({TOTAL_MAX})"
        )
    return OrderTotals(
        tax=tax,
        shipping_handling=shipping,
        discount=Decimal("0.00"),
        order_amount=amount,
        declared_value=goods if country != UNITED_STATES else Decimal("0.00"),
    )


# The order document: every element of Dotcom's schema, in the schema's order. None is written
# xsi:nil (a nillable date or number with no value); "" an empty text (nothing to say, as
# Dotcom's own sample and the requests recorded from its test service in 2013 send it).
XSI = "http://www.w3.org/2001/XMLSchema-instance"
Value = str | int | Decimal | date | None
NOTHING_TO_SAY = (  # the order's free text and codes we have nothing for
    "special-instructions",
    "special-messaging",
    "drop-ship",
    "ok-partial-ship",
)
ORDER_CODES_UNUSED = (
    "salesman",
    "credit-card-number",
    "credit-card-expiration",
    "ad-code",
    "continuity-flag",
    "freight-terms",
    "department",
    "pay-terms",
    "asn-qualifier",
    "gift-order-indicator",
    "order-source",
    "third-party-account",
    "priority",
    "retail-department",
    "retail-store",
    "retail-vendor",
    "pool",
)
STORE_ELEMENTS = (
    "store-name",
    "store-address1",
    "store-address2",
    "store-city",
    "store-state",
    "store-zip",
    "store-country",
    "store-phone",
)
CUSTOM_FIELDS = tuple(f"custom-field-{n}" for n in range(1, 6))


def order_values(order: DotcomOrder) -> list[tuple[str, Value]]:
    totals = order.totals
    return [
        ("order-number", order.order_number),
        ("order-date", order.order_date),
        ("ship_date", order.order_date),  # spelt with an underscore in the schema
        ("ship-method", order.ship_method),
        ("ship_via", ""),
        ("invoice-number", 0),  # an integer: Dotcom's own invoice, none of ours
        ("total-tax", totals.tax),
        ("total-shipping-handling", totals.shipping_handling),
        ("total-order-amount", totals.order_amount),
        ("total-discount", totals.discount),
        ("declared-value", totals.declared_value),
        ("cancel-date", None),
        ("promise-date", None),
        ("tax-percent", 0),
        *((name, "") for name in NOTHING_TO_SAY),
        ("po-number", order.po_number),  # the hub order number, for people at Dotcom
        *((name, "") for name in ORDER_CODES_UNUSED),
    ]


def party_values(section: str, party: Party, *, iso_country: bool) -> list[tuple[str, Value]]:
    values: list[tuple[str, Value]] = [
        ("customer-number", ""),
        ("name", party.name),
        ("company", party.company),
        ("address1", party.address1),
        ("address2", party.address2),
        ("address3", ""),
        ("city", party.city),
        ("state", party.state),
        ("zip", party.zip),
        ("country", party.country),
    ]
    if iso_country:
        values.append(("iso-country-code", party.country))
    values += [("phone", party.phone), ("email", party.email)]
    return [(f"{section}-{name}", value) for name, value in values]


def line_values(line: OrderLine) -> list[tuple[str, Value]]:
    return [
        ("sku", line.sku),
        ("quantity", line.quantity),
        ("price", line.price),
        ("tax", line.tax),
        ("shipping-handling", line.shipping_handling),
        ("client-item", line.client_item),
        ("line-number", line.line_number),
        ("gift-box-wrap-quantity", None),
        ("gift-box-wrap-type", ""),
    ]


def _elements(parent: ET.Element, values: Iterable[tuple[str, Value]]) -> None:
    for name, value in values:
        child = ET.SubElement(parent, name)
        if value is None:
            child.set("xsi:nil", "true")
        elif isinstance(value, date):
            child.text = value.isoformat()
        else:
            child.text = str(value)


def _group(parent: ET.Element, name: str, values: Iterable[tuple[str, Value]]) -> ET.Element:
    group = ET.SubElement(parent, name)
    _elements(group, values)
    return group


def order_document(order: DotcomOrder) -> bytes:
    """``<orders><order>…</order></orders>`` holding every element Dotcom's schema lists."""
    root = ET.Element("orders", {"xmlns:xsi": XSI})
    element = ET.SubElement(root, "order")
    _elements(element, order_values(order))
    _group(
        element, "billing-information", party_values("billing", order.billing, iso_country=False)
    )
    _group(
        element, "shipping-information", party_values("shipping", order.shipping, iso_country=True)
    )
    _group(element, "store-information", ((name, "") for name in STORE_ELEMENTS))
    _group(element, "custom-fields", ((name, "") for name in CUSTOM_FIELDS))
    lines = ET.SubElement(element, "line-items")
    for line in order.lines:
        _group(lines, "line-item", line_values(line))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


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
    ValueError when it is none of these, or out of range (``kit.cursor_in_range``)."""
    return cursor_in_range(_cursor_time(raw, zone))


def _cursor_time(raw: str, zone: ZoneInfo) -> datetime:
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

    def to_memory(self) -> list[str | None]:
        """Kept for months per shipment: as short as it can be."""
        return [self.order_number, self.shipping_method]

    @classmethod
    def from_memory(cls, value: Any) -> SentShipment | None:
        """What ``to_memory`` kept (or the earlier format's mapping)."""
        if isinstance(value, list) and len(value) == 2:
            return cls(*value)
        if not isinstance(value, Mapping):
            return None
        return cls(value.get("order_number"), value.get("shipping_method"))


def items_shipped(lines: Sequence[ShippedLine]) -> list[dict[str, Any]]:
    """Quantities summed per order line (a line split over cartons is one item; one SKU shipped
    on two order lines stays two items), in the order they first appear. Each item names its
    order line (``line_number``) when Dotcom gives it."""
    totals: dict[tuple[str, str], Decimal] = {}
    for line in lines:
        key = (line.sku, line.line_number)
        totals[key] = totals.get(key, Decimal(0)) + line.quantity
    return [
        {"sku": sku, "quantity": number(quantity), **({"line_number": at} if at else {})}
        for (sku, at), quantity in totals.items()
    ]


def shipping_method_shown(carrier: str | None, service: str | None) -> str | None:
    """Dotcom's carrier and service as one method: "UPS Ground", whether Dotcom says service
    "Ground" or, as its recorded answers do, "UPS Ground" (never "UPS UPS Ground")."""
    if carrier and service and f"{service} ".casefold().startswith(f"{carrier} ".casefold()):
        return service
    return " ".join(filter(None, (carrier, service))) or None


def cartons(lines: Sequence[ShippedLine]) -> list[dict[str, Any]]:
    seen = dict.fromkeys((line.carton_id, line.tracking_number) for line in lines)
    return [
        {"carton_id": carton or None, "tracking_number": tracking or None}
        for carton, tracking in seen
        if carton or tracking
    ]


def shipment_confirmation(
    release: Release, zone: ZoneInfo, sent: SentShipment | None
) -> ConfirmedShipment | None:
    """The ``shipment:confirm`` shipment for a release, or None when nothing shipped in it.

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
    dotcom_method = shipping_method_shown(carrier, service)
    return ConfirmedShipment(
        number=release.client_order_number,
        order_number=sent.order_number if sent else None,
        tracking=tracking_numbers[0] if tracking_numbers else None,
        tracking_numbers=tracking_numbers,
        carrier=carrier,
        carriers=carriers,
        service=service,
        service_code=service_code,
        shipping_method=(sent.shipping_method if sent else None) or dotcom_method,
        shipped_at=shipped_at(release.ship_date, zone),
        items=items_shipped(lines),
        cartons=cartons(lines),
        dotcom_order_number=release.dcd_order_number,
        dotcom_release=release.release,
    )
