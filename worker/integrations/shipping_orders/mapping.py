"""Pure functions both ways: a hub shipment → a Shipping Order API order (and its changes), and
the API's orders, status histories and webhooks → canonical statuses, ``shipment:update`` and
``shipment:confirm``; plus the polling windows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from worker.errors import HardError
from worker.hub import (
    ConfirmedShipment,
    HubAddress,
    HubItem,
    ShipmentChanges,
    ShipmentReady,
    ShipmentUpdate,
)
from worker.integrations.kit import CURSOR_RANGE, cursor_in_range
from worker.integrations.us_states import region_code
from worker.status import (
    Observation,
    Progress,
    ShipmentStatus,
    advance,
    is_news,
    needs_confirm,
)

CANNOT_SEND = "Shipment cannot be sent to the Shipping Order API"
ID_MAX = 100  # orderExternalId, locationExternalId: "string <= 100 characters"
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
# The API's objects, as far as we read them


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class DeliveryProvider(ApiModel):
    name: str | None = None
    displayName: str | None = None
    serviceType: str | None = None
    serviceId: str | None = None


class TimeWindow(BaseModel):
    startsAt: int | None = None
    endsAt: int | None = None


class ApiOrder(ApiModel):
    """An order as the API answers it, lists it, and sends it by webhook."""

    orderExternalId: str = Field(min_length=1)
    status: str = Field(min_length=1)
    lastUpdatedAt: str | None = None
    trackingId: str | None = None
    provider: DeliveryProvider | None = None
    referenceLinks: dict[str, Any] | None = None
    estimatedDeliveryTime: TimeWindow | None = None
    actualPickupTime: int | None = None
    actualDeliveryTime: int | None = None
    orderAttributes: dict[str, Any] | None = None

    @property
    def tracking_url(self) -> str | None:
        url = (self.referenceLinks or {}).get("trackingUrl")
        return str(url) if url else None


class HistoryEntry(ApiModel):
    status: str = Field(min_length=1)
    updatedAtEpoch: int | None = None
    note: str | None = None
    subStatus: str | None = None


def order_of(raw: Mapping[str, Any]) -> ApiOrder:
    return ApiOrder.model_validate(raw)


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


def epoch_ms(iso: str | None) -> int | None:
    """``2022-05-03T10:35:38.656Z`` → epoch milliseconds (None when absent or unreadable)."""
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


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
        at_ms=epoch_ms(order.lastUpdatedAt),
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
    """The ``shipment:update`` for one status of an order."""
    provider = order.provider or DeliveryProvider()
    estimated = order.estimatedDeliveryTime
    return ShipmentUpdate(
        number=order.orderExternalId,
        order_number=hub_order_number or _hub_order_number(order),
        status=seen.status,
        provider_status=seen.provider_status,
        status_at=iso_ms(seen.at_ms),
        sequence=sequence,
        provider=provider.displayName or provider.name or None,
        carrier=provider.name or None,
        service=provider.serviceType or None,
        tracking=order.trackingId or None,
        tracking_numbers=[order.trackingId] if order.trackingId else [],
        tracking_url=order.tracking_url,
        estimated_delivery_at=iso_ms(
            (estimated.endsAt or estimated.startsAt) if estimated else None
        ),
        note=note,
    )


def confirmation(order: ApiOrder, hub_order_number: str | None = None) -> ConfirmedShipment:
    """The ``shipment:confirm`` of an order the courier has picked up."""
    provider = order.provider or DeliveryProvider()
    shipped_ms = order.actualPickupTime or epoch_ms(order.lastUpdatedAt)
    return ConfirmedShipment(
        number=order.orderExternalId,
        order_number=hub_order_number or _hub_order_number(order),
        tracking=order.trackingId or None,
        tracking_numbers=[order.trackingId] if order.trackingId else [],
        tracking_url=order.tracking_url,
        carrier=provider.name or None,
        carriers=[provider.name] if provider.name else [],
        service=provider.serviceType or None,
        shipped_at=iso_ms(shipped_ms),
        shipping_method=_attribute(order, "shippingMethod"),
    )


def _hub_order_number(order: ApiOrder) -> str | None:
    return _attribute(order, "hubOrderNumber")


def _attribute(order: ApiOrder, name: str) -> str | None:
    value = (order.orderAttributes or {}).get(name)
    return str(value) if value not in (None, "") else None


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
