"""Pure functions both ways: a hub shipment → a Shipping Order API order (and its changes), and
the API's orders, status histories and webhooks → canonical statuses, ``shipment:update`` and
``shipment:confirm``; plus the polling windows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from worker.basics.errors import HardError
from worker.hub.messages import (
    ConfirmedShipment,
    HubAddress,
    HubItem,
    ShipmentChanges,
    ShipmentReady,
    ShipmentUpdate,
)
from worker.hub.status import (
    Observation,
    Progress,
    ShipmentStatus,
    advance,
    is_news,
    needs_confirm,
)
from worker.integrations.kit import CURSOR_RANGE, cursor_in_range
from worker.integrations.us_states import region_code

CANNOT_SEND = "Shipment cannot be sent to the Shipping Order API"
ID_MAX = 100  # orderExternalId, locationExternalId: "string <= 100 characters"
# What we read of the API's objects (webhooks included) is bounded, so that nothing it sends
# reaches the hub unbounded: the documented ids at ID_MAX, the rest at sane sizes (statuses are
# words of under 30 letters, tracking numbers under 40 characters, order ids 24 hex digits).
# A field over its bound cannot be read: it is left out with a warning (``ApiModel``), and an
# event whose orderExternalId or status is over it is refused (422 naming the field).
STATUS_MAX = 64
NAME_MAX = 200  # provider names and services, the hub's order number and shipping method
TRACKING_MAX = 100
URL_MAX = 2048
NOTE_MAX = 1000
TIME_TEXT_MAX = 64
MAX_WINDOW = timedelta(days=30)  # the list's lastUpdatedAt range limit
MAX_AGE = timedelta(days=365)  # list dates must lie within the last year
S = ShipmentStatus

# Every status the API documents, to the canonical model. PICKUP_STARTED is a driver on the way
# to the pickup (not yet picked up); ORDER_AT_LOCATION is the driver at the delivery address;
# ORDER_REDELIVERY is a failed attempt to be redelivered; PENDING_AUTORETRY is a placement the
# API will retry by itself.
STATUSES: dict[str, ShipmentStatus] = {
    "REQUEST_RECEIVED": S.PENDING,
    "PENDING_AUTORETRY": S.PENDING,
    "PENDING_DISPATCH": S.ACCEPTED,
    "PENDING_RELEASE": S.ACCEPTED,
    "ESTIMATES_RECEIVED": S.ACCEPTED,
    "ESTIMATES_FAILED": S.FAILED,
    "ORDER_DISPATCHED": S.DISPATCHED,
    "STAGED": S.DISPATCHED,
    "ORDER_UNASSIGNED": S.DISPATCHED,
    "ORDER_ASSIGNED": S.ASSIGNED,
    "PICKUP_STARTED": S.ASSIGNED,
    "PICKUP_COMPLETED": S.PICKED_UP,
    "IN_TRANSIT": S.IN_TRANSIT,
    "ORDER_DELAYED": S.DELAYED,
    "OUT_FOR_DELIVERY": S.OUT_FOR_DELIVERY,
    "ORDER_AT_LOCATION": S.OUT_FOR_DELIVERY,
    "ORDER_REDELIVERY": S.ATTEMPTED,
    "ORDER_DELIVERED": S.DELIVERED,
    "ORDER_UNDELIVERABLE": S.UNDELIVERABLE,
    "ORDER_FAILED": S.FAILED,
    "ERROR_EXCEPTION": S.EXCEPTION,
    "ORDER_CANCELLED": S.CANCELLED,
    "ORDER_CANCELED": S.CANCELLED,
}
# An undeliverable order that reached its return location (subStatus in the API's history).
RETURNED_SUBSTATUSES = frozenset({"RETURN_AT_LOCATION", "RETURNED", "RETURNED_TO_SENDER"})


def canonical_status(raw: str, sub_status: str | None = None) -> ShipmentStatus:
    """The canonical status of an API status (``UNKNOWN`` when it is not one we know)."""
    status = STATUSES.get(raw.strip().upper(), S.UNKNOWN)
    if status is S.UNDELIVERABLE and (sub_status or "").upper() in RETURNED_SUBSTATUSES:
        return S.RETURNED
    return status


# ---------------------------------------------------------------------------------------------
# The API's objects, as far as we read them: both shapes, tolerantly
#
# The seed's samples and the vendor's real objects differ (providers.md): ``provider`` an object
# or a string, ``trackingId`` or ``trackingNumber`` (text or a JSON integer),
# ``referenceLinks.trackingUrl`` or a top-level ``trackingUrl``, estimated times as
# ``{startsAt, endsAt}`` or as a time (epoch ms or ISO 8601) with ``...Starts`` / ``...Ends``
# beside it, ``locationExternalId`` or ``storeExternalId``, ``id`` or ``orderId``. Both are read;
# ``""`` is "not yet", never a value. A field that cannot be read is left out and named in
# ``unreadable`` (the handlers warn the hub of it); only ``orderExternalId`` and ``status``
# are needed for an order to be read at all.

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
MAX_EPOCH_DIGITS = 20
RECEIVED = "REQUEST_RECEIVED"


def moment_ms(value: Any) -> int | None:
    """A time as the API writes it, in epoch milliseconds: None for null or ``""`` (not yet);
    epoch ms as a JSON integer (or an integral number) or as text of digits; ISO 8601 with or
    without milliseconds, ``Z`` or an offset (UTC without one). ValueError for anything else
    (``"April 27th 2022, 2:45:45 am CDT"``, a list, true)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError("a time, not true or false")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("epoch milliseconds are a whole number")
        value = int(value)
    if isinstance(value, int):
        return _epoch_digits(str(value))
    if not isinstance(value, str):
        raise ValueError("a time is epoch milliseconds or ISO 8601 text")
    text = value.strip()
    if text.isascii() and text.lstrip("-").isdigit():
        return _epoch_digits(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - EPOCH) // ONE_MS
    except (ValueError, OverflowError) as exc:
        raise ValueError("neither epoch milliseconds nor ISO 8601") from exc


def _epoch_digits(text: str) -> int:
    if len(text.lstrip("-")) > MAX_EPOCH_DIGITS:
        raise ValueError(f"epoch milliseconds of more than {MAX_EPOCH_DIGITS} digits")
    return int(text)


def _time_text(value: Any) -> str | None:
    """A time kept as the API wrote it (an event's key holds it; a number as its digits), once
    it is known to read."""
    ms = moment_ms(value)
    if ms is None:
        return None
    return value if isinstance(value, str) else str(ms)


def _text(value: Any) -> Any:
    """Blank text is "not yet": None."""
    return None if isinstance(value, str) and not value.strip() else value


def _tracking_number(value: Any) -> Any:
    """Text, or a JSON integer as its digits; blank: none yet."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def _at_most(limit: int) -> Any:
    """Text of at most ``limit`` characters."""
    return Annotated[str, Field(max_length=limit)]


TIME_SCHEMA = {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}
# epoch ms (a number or digits), ISO 8601 text, "" or null; read as epoch ms
Moment = Annotated[int | None, BeforeValidator(moment_ms), WithJsonSchema(TIME_SCHEMA)]
# the same, kept as written
TimeText = Annotated[
    _at_most(TIME_TEXT_MAX) | None, BeforeValidator(_time_text), WithJsonSchema(TIME_SCHEMA)
]
Id = Annotated[_at_most(ID_MAX) | None, BeforeValidator(_text)]
Name = Annotated[_at_most(NAME_MAX) | None, BeforeValidator(_text)]
Url = Annotated[_at_most(URL_MAX) | None, BeforeValidator(_text)]
Word = Annotated[_at_most(STATUS_MAX) | None, BeforeValidator(_text)]
Note = Annotated[_at_most(NOTE_MAX) | None, BeforeValidator(_text)]
TrackingNumber = Annotated[
    _at_most(TRACKING_MAX) | None,
    BeforeValidator(_tracking_number),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": TRACKING_MAX},
                {"type": "integer"},
                {"type": "null"},
            ]
        }
    ),
]


# Of a union's errors, these say best why a field was not read: our own words, or its bound.
TELLING = frozenset({"value_error", "string_too_long"})


class ApiModel(BaseModel):
    """An object of the API, read tolerantly: a field that does not validate is left out and
    named in ``unreadable`` (with pydantic's words for it, never its value); the fields in
    ``NEEDED`` are the exception, and without them the object is not read at all."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)
    NEEDED: ClassVar[frozenset[str]] = frozenset()
    _left_out: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _leave_out_what_cannot_be_read(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self]
    ) -> Self:
        try:
            return handler(data)
        except ValidationError as exc:
            if not isinstance(data, Mapping):
                raise
            left_out: dict[str, str] = {}
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else ""
                if not name or name in cls.NEEDED or name not in data:
                    raise
                if name not in left_out or error["type"] in TELLING:
                    left_out[name] = error["msg"]
            read = handler({k: v for k, v in data.items() if k not in left_out})
            read._left_out = left_out
            return read

    @property
    def unreadable(self) -> dict[str, str]:
        """Each field left out (``provider.serviceType`` within an object), and why."""
        found = dict(self._left_out)
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, ApiModel):
                found.update({f"{name}.{k}": why for k, why in value.unreadable.items()})
        return found


class DeliveryProvider(ApiModel):
    """The seed's provider object (the vendor's is only its name)."""

    name: Name = None
    displayName: Name = None
    serviceType: Name = None
    serviceId: Name = None


class TimeWindow(ApiModel):
    startsAt: Moment = None
    endsAt: Moment = None


class ReferenceLinks(ApiModel):
    trackingUrl: Url = None


class OrderAttributes(ApiModel):
    """The attributes a create sent (``create_body``), as the API gives them back; any others
    are kept, never read."""

    hubOrderNumber: Name = None
    shippingMethod: Name = None


class ApiOrder(ApiModel):
    """An order as the API answers it, lists it, and sends it by webhook, in the seed's shape
    or the vendor's (the properties read whichever is there, the vendor's first)."""

    NEEDED: ClassVar[frozenset[str]] = frozenset({"orderExternalId", "status"})

    orderExternalId: str = Field(min_length=1, max_length=ID_MAX)
    status: str = Field(min_length=1, max_length=STATUS_MAX)
    id: Id = None
    orderId: Id = None
    locationExternalId: Id = None
    storeExternalId: Id = None
    lastUpdatedAt: TimeText = None
    createdAt: TimeText = None
    receivedAtEpoch: Moment = None
    provider: DeliveryProvider | Name = None
    trackingNumber: TrackingNumber = None
    trackingId: TrackingNumber = None
    trackingUrl: Url = None
    referenceLinks: ReferenceLinks | None = None
    estimatedDeliveryTime: TimeWindow | Moment = None
    estimatedDeliveryTimeStarts: Moment = None
    estimatedDeliveryTimeEnds: Moment = None
    estimatedPickupTime: TimeWindow | Moment = None
    estimatedPickupTimeStarts: Moment = None
    estimatedPickupTimeEnds: Moment = None
    actualPickupTime: Moment = None
    actualDeliveryTime: Moment = None
    orderAttributes: OrderAttributes | None = None

    @property
    def api_id(self) -> str | None:
        """The API's own id of the order (24 hex digits)."""
        return self.orderId or self.id

    @property
    def location(self) -> str | None:
        return self.storeExternalId or self.locationExternalId

    @property
    def carrier(self) -> str | None:
        """The delivery provider's name (None until one is chosen)."""
        if isinstance(self.provider, DeliveryProvider):
            return self.provider.name
        return self.provider

    @property
    def provider_label(self) -> str | None:
        """How the provider is shown: the seed's displayName, else its name."""
        if isinstance(self.provider, DeliveryProvider):
            return self.provider.displayName or self.provider.name
        return self.provider

    @property
    def service(self) -> str | None:
        """The provider's service (only the seed's provider object names one)."""
        return self.provider.serviceType if isinstance(self.provider, DeliveryProvider) else None

    @property
    def tracking_number(self) -> str | None:
        return self.trackingNumber or self.trackingId

    @property
    def tracking_url(self) -> str | None:
        links = self.referenceLinks
        return self.trackingUrl or (links.trackingUrl if links else None)

    @property
    def updated_ms(self) -> int | None:
        return moment_ms(self.lastUpdatedAt)  # read when validated: it reads

    @property
    def status_ms(self) -> int | None:
        """When the order reached its status: ``lastUpdatedAt``; for a received order whose
        answer has none yet (the vendor's create), ``receivedAtEpoch``."""
        if self.updated_ms is None and self.status.strip().upper() == RECEIVED:
            return self.receivedAtEpoch
        return self.updated_ms

    @property
    def estimated_delivery_ms(self) -> int | None:
        """The latest delivery promised: a window's end, else the time, else its start."""
        window = self.estimatedDeliveryTime
        if isinstance(window, TimeWindow):
            return window.endsAt or window.startsAt
        return self.estimatedDeliveryTimeEnds or window or self.estimatedDeliveryTimeStarts


class HistoryEntry(ApiModel):
    NEEDED: ClassVar[frozenset[str]] = frozenset({"status"})

    status: str = Field(min_length=1, max_length=STATUS_MAX)
    updatedAtEpoch: Moment = None
    note: Note = None
    subStatus: Word = None


def order_of(raw: Mapping[str, Any]) -> ApiOrder:
    """An order the API answered or listed; ValidationError only when it has no readable
    ``orderExternalId`` or ``status``."""
    return ApiOrder.model_validate(raw)


@dataclass(frozen=True)
class Reading:
    """An order read from an answer (None when it could not be), and every field of the
    answer that could not be read, with why."""

    order: ApiOrder | None
    unreadable: dict[str, str]


def _needed_text(limit: int) -> TypeAdapter[str]:
    return TypeAdapter(
        Annotated[str, Field(min_length=1, max_length=limit)],
        config=ConfigDict(coerce_numbers_to_str=True),
    )


NEEDED_TEXT = {"orderExternalId": _needed_text(ID_MAX), "status": _needed_text(STATUS_MAX)}


def answered_order(raw: Any, number: str, status: str | None = None) -> Reading:
    """The order a 2xx answer about shipment ``number`` holds. What cannot be read is left
    out and named; an ``orderExternalId`` that cannot be read is ``number`` (the order asked
    about), a ``status`` that cannot be read is ``status`` (what the 2xx itself says, when it
    says one: a create's is REQUEST_RECEIVED); without one the order is not read."""
    whole = isinstance(raw, Mapping)
    fields = dict(raw) if whole else {}
    unreadable = {} if whole else {"the answer": "not a JSON object"}
    fallbacks = {"orderExternalId": number, "status": status}
    for name, fallback in fallbacks.items():
        problem = _needed_problem(fields, name)
        if problem is None:
            continue
        if whole:
            unreadable[name] = problem
        if fallback is None:
            return Reading(None, unreadable)
        fields[name] = fallback
    order = ApiOrder.model_validate(fields)
    return Reading(order, {**unreadable, **order.unreadable})


def _needed_problem(fields: Mapping[str, Any], name: str) -> str | None:
    if name not in fields:
        return "missing"
    try:
        NEEDED_TEXT[name].validate_python(fields[name])
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    return None


# ---------------------------------------------------------------------------------------------
# Hub shipment → order


def create_body(ready: ShipmentReady, location: str) -> dict[str, Any]:
    """The POST /shipments body for a hub shipment, or a HardError naming every field that
    cannot be sent. ``orderExternalId`` is the hub shipment number."""
    shipment = ready.shipment
    problems: list[str] = []
    for value, field in ((shipment.number, "shipment.number"), (location, "location_external_id")):
        if len(value) > ID_MAX:
            problems.append(f"{field} is {len(value)} characters; the API takes at most {ID_MAX}")
    address = delivery_address(shipment.shipping_address, problems)
    if problems:
        raise HardError(CANNOT_SEND, problems)
    return {
        "locationExternalId": location,
        "orderExternalId": shipment.number,
        "orderValue": money(shipment.value),
        "deliveryContact": contact(shipment.shipping_address, shipment.email),
        "deliveryAddress": address,
        "package": package(shipment.number, shipment.items),
        "itemList": item_list(shipment.items),
        "orderAttributes": {
            "hubOrderNumber": shipment.order_number,
            "shippingMethod": shipment.shipping_method,
        },
        "pickupTime": None,
        "deliveryTime": None,
    }


def edit_body(changes: ShipmentChanges) -> dict[str, Any]:
    """The PUT body for what a hub ``shipment:update`` changes; a HardError when it changes
    nothing the API can take."""
    body: dict[str, Any] = {}
    problems: list[str] = []
    if changes.shipping_address is not None:
        body["deliveryAddress"] = delivery_address(changes.shipping_address, problems)
        body["deliveryContact"] = contact(changes.shipping_address, changes.email)
    elif changes.email is not None:
        body["deliveryContact"] = {"email": changes.email}
    if changes.items is not None:
        body["itemList"] = item_list(changes.items)
        body["package"] = package(changes.number, changes.items)
        body["orderValue"] = money(
            sum(((i.price or Decimal(0)) * i.quantity for i in changes.items), Decimal(0))
        )
    if changes.shipping_method is not None:
        body["orderAttributes"] = {"shippingMethod": changes.shipping_method}
    if problems:
        raise HardError("Shipment changes cannot be sent to the Shipping Order API", problems)
    if not body:
        raise HardError(
            "Nothing to change",
            [
                "shipment:update carries none of shipping_address, email, items, "
                "shipping_method: the Shipping Order API has nothing to edit"
            ],
        )
    return body


def delivery_address(address: HubAddress, problems: list[str]) -> dict[str, Any]:
    country = address.country.strip().upper()
    if len(country) != 2 or not country.isalpha():
        problems.append(
            f"shipment.shipping_address.country {address.country!r} is not a two-letter code"
        )
    state = address.state or ""
    return {
        "street1": address.address1,
        "street2": address.address2 or "",
        "city": address.city,
        "state": region_code(state) or state,
        "postalCode": address.zipcode,
        "countryCode": country,
    }


def contact(address: HubAddress, email: str | None) -> dict[str, Any]:
    return {"name": address.name, "phone": address.phone or "", "email": email or ""}


def package(number: str, items: list[HubItem]) -> dict[str, Any]:
    return {
        "name": "custom",
        "itemQuantity": sum(i.quantity for i in items),
        "description": f"Shipment {number}",
    }


def item_list(items: list[HubItem]) -> list[dict[str, Any]]:
    return [
        {
            "sku": item.sku,
            "quantity": item.quantity,
            "price": money(item.price or Decimal(0)),
            "title": item.name or item.sku,
        }
        for item in items
    ]


def money(amount: Decimal) -> float:
    return float(amount.quantize(Decimal("0.01")))


# ---------------------------------------------------------------------------------------------
# Order, history, webhook → what the hub is told


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO 8601 (None when absent, or past the years 1 to 9999 a time
    can be written in: a webhook's ``actualPickupTime`` is any integer)."""
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return None


def observed(order: ApiOrder) -> Observation:
    """An order's current status as an observation (its time: ``lastUpdatedAt``)."""
    return Observation(
        status=canonical_status(order.status),
        provider_status=order.status,
        at_ms=order.status_ms,
        picked_up=order.actualPickupTime is not None,
    )


def observed_entry(entry: HistoryEntry) -> Observation:
    return Observation(
        status=canonical_status(entry.status, entry.subStatus),
        provider_status=entry.status,
        at_ms=entry.updatedAtEpoch,
    )


def shipment_update(
    order: ApiOrder,
    seen: Observation,
    sequence: int | None,
    *,
    hub_order_number: str | None = None,
    note: str | None = None,
) -> ShipmentUpdate:
    """The ``shipment:update`` for one status of an order: its provider and tracking only
    when the order has them (``""`` is "not yet", never claimed)."""
    tracking = order.tracking_number
    return ShipmentUpdate(
        number=order.orderExternalId,
        order_number=hub_order_number or _hub_order_number(order),
        status=seen.status,
        provider_status=seen.provider_status,
        status_at=iso_ms(seen.at_ms),
        sequence=sequence,
        provider=order.provider_label,
        carrier=order.carrier,
        service=order.service,
        tracking=tracking,
        tracking_numbers=[tracking] if tracking else [],
        tracking_url=order.tracking_url,
        estimated_delivery_at=iso_ms(order.estimated_delivery_ms),
        note=note,
    )


def confirmation(order: ApiOrder, hub_order_number: str | None = None) -> ConfirmedShipment:
    """The ``shipment:confirm`` of an order the courier has picked up."""
    tracking, carrier = order.tracking_number, order.carrier
    return ConfirmedShipment(
        number=order.orderExternalId,
        order_number=hub_order_number or _hub_order_number(order),
        tracking=tracking,
        tracking_numbers=[tracking] if tracking else [],
        tracking_url=order.tracking_url,
        carrier=carrier,
        carriers=[carrier] if carrier else [],
        service=order.service,
        shipped_at=iso_ms(order.actualPickupTime or order.updated_ms),
        shipping_method=_attribute(order, "shippingMethod"),
    )


def _hub_order_number(order: ApiOrder) -> str | None:
    return _attribute(order, "hubOrderNumber")


def _attribute(order: ApiOrder, name: str) -> str | None:
    attributes = order.orderAttributes
    value = getattr(attributes, name) if attributes is not None else None
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Report:
    """What the hub is told about one order: its updates in order, a confirm or not, and the
    progress to keep."""

    updates: list[ShipmentUpdate]
    confirm: ConfirmedShipment | None
    progress: Progress | None  # None: nothing new
    unknown: list[str]  # provider statuses with no canonical mapping


def report(order: ApiOrder, last: Progress | None, history: Sequence[HistoryEntry] = ()) -> Report:
    """Report what is news after ``last``: the ``history`` entries after the last status told
    (in their order), then the order's current status; never a status that would move the
    order backwards; a confirm the first time it is picked up or later."""
    follow, anchored = since_last(history, last)
    steps = [(seen, note, anchored) for seen, note in follow]
    steps.append((observed(order), None, False))
    updates: list[ShipmentUpdate] = []
    unknown: list[str] = []
    confirm: ConfirmedShipment | None = None
    progress = last
    for observation, note, follows in steps:
        if not is_news(progress, observation, follows=follows):
            continue
        if needs_confirm(progress, observation):
            confirm = confirmation(order)
        progress = advance(progress, observation)
        updates.append(shipment_update(order, observation, progress.sequence, note=note))
        if observation.status is S.UNKNOWN:
            unknown.append(observation.provider_status)
    return Report(updates, confirm, progress if updates else None, unknown)


def since_last(
    entries: Sequence[HistoryEntry], last: Progress | None
) -> tuple[list[tuple[Observation, str | None]], bool]:
    """History entries after the one the hub was last told of, found by status (so that the
    clocks of the history and of the order need not agree), and True; all of them and False
    when it is not there (their times then decide)."""
    observations = [(observed_entry(e), e.note) for e in entries]
    if last is not None:
        for position in range(len(observations) - 1, -1, -1):
            seen = observations[position][0]
            if (seen.status, seen.provider_status) == (last.status, last.provider_status):
                return observations[position + 1 :], True
    return observations, False


# ---------------------------------------------------------------------------------------------
# Polling windows


def parse_cursor(raw: str) -> datetime:
    """A cursor: ISO 8601 (UTC when it has no offset), a date, or epoch milliseconds.
    ValueError when it is none of these, or out of range (``kit.cursor_in_range``)."""
    value = raw.strip()
    if value.isdigit():
        try:
            return cursor_in_range(datetime.fromtimestamp(int(value) / 1000, UTC))
        except (OverflowError, OSError):  # 30 digits: no float, no time_t
            raise ValueError(f"{value[:20]}... ms is out of range ({CURSOR_RANGE})") from None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return cursor_in_range(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def cursor_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Windows:
    """``lastUpdatedAt`` windows of at most 30 days from ``start`` to ``end``; ``clamped`` when
    the cursor was older than the API lets a list reach (a year)."""

    start: datetime
    end: datetime
    clamped: bool

    def each(self) -> list[tuple[datetime, datetime]]:
        windows, at = [], self.start
        while at < self.end:
            upto = min(at + MAX_WINDOW, self.end)
            windows.append((at, upto))
            at = upto
        return windows


def poll_windows(
    cursor: datetime | None, now: datetime, overlap: timedelta, lookback: timedelta
) -> Windows:
    start = (cursor - overlap) if cursor else now - lookback
    oldest = now - MAX_AGE + timedelta(minutes=5)
    clamped = start < oldest
    return Windows(max(start, oldest), now, clamped)


def list_filters(start: datetime, end: datetime, limit: int) -> dict[str, Any]:
    return {
        "limit": limit,
        "lastUpdatedAt": {
            "startsAt": int(start.timestamp() * 1000),
            "endsAt": int(end.timestamp() * 1000),
        },
    }
