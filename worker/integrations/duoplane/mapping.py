"""Pure functions both ways: a hub ``shipment:confirm`` → a Duoplane shipment on its purchase
order, and Duoplane's shipments → ``shipment:confirm``; plus the polling window."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from worker.basics.errors import HardError
from worker.hub.messages import ConfirmedShipment, HubModel, ShippedItem, ShippedShipment
from worker.integrations.kit import ProviderId, cursor_in_range

CANNOT_SEND = "Shipment cannot be sent to Duoplane"


# ---------------------------------------------------------------------------------------------
# What the hub sends: shipment:confirm with Duoplane's ids (required: a message without them is
# refused at intake, naming the field)


DuoplaneId = ProviderId  # never a boolean (``true`` is not id 1), text in ASCII digits only


class DuoplaneItem(ShippedItem):
    duoplane_order_item_id: DuoplaneId


class DuoplaneShipment(ShippedShipment):
    duoplane_purchase_order_id: DuoplaneId
    # The carriers ``ConfirmedShipment`` lists; the first names the carrier when ``carrier`` is
    # absent (declared: it is sent to Duoplane, so it is checked at intake like every field).
    carriers: list[str] | None = None
    items: list[DuoplaneItem] = Field(min_length=1)  # type: ignore[assignment]


class ShipmentConfirm(HubModel):
    """``shipment:confirm`` for Duoplane: the shipment, its purchase order and order items."""

    shipment: DuoplaneShipment


# ---------------------------------------------------------------------------------------------
# Carriers: the seed's table (shipper_id, shipper_name, shipper_scac_code)


@dataclass(frozen=True)
class Carrier:
    shipper_id: int
    name: str
    scac: str | None
    aliases: tuple[str, ...]


CARRIERS = (
    Carrier(1, "UPS", "UPSN", ("ups", "upsn", "unitedparcelservice")),
    Carrier(2, "FedEx", "FEDX", ("fedex", "fedx", "federalexpress")),
    Carrier(
        17,
        "US Postal",
        "USPS",
        ("uspostal", "usps", "uspostalservice", "unitedstatespostalservice", "usmail"),
    ),
    Carrier(395, "DHL eCommerce", None, ("dhlecommerce", "dhlecommercesolutions")),
)
_BY_ALIAS = {alias: carrier for carrier in CARRIERS for alias in carrier.aliases}
_BY_ID = {carrier.shipper_id: carrier for carrier in CARRIERS}
_BY_SCAC = {carrier.scac: carrier for carrier in CARRIERS if carrier.scac}


def _folded(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def shipper(carrier: str) -> dict[str, Any]:
    """Exactly one of Duoplane's carrier keys: ``shipper_id`` for a carrier of the seed's table
    (UPS 1, FedEx 2, US Postal/USPS 17, DHL eCommerce 395), else ``shipper_name`` as given
    (Duoplane matches it against the carriers of the retailer's account)."""
    known = _BY_ALIAS.get(_folded(carrier))
    return {"shipper_id": known.shipper_id} if known else {"shipper_name": carrier.strip()}


def carrier_of(
    shipper_id: int | None, shipper_name: str | None, shipper_scac_code: str | None
) -> str | None:
    """A carrier's name from what Duoplane says of it."""
    if shipper_name:
        return shipper_name
    known = _BY_ID.get(shipper_id or -1) or _BY_SCAC.get((shipper_scac_code or "").upper())
    return known.name if known else shipper_scac_code or None


# ---------------------------------------------------------------------------------------------
# Hub shipment → Duoplane shipment


def carrier_named(shipment: DuoplaneShipment) -> str | None:
    """The shipment's carrier: ``carrier``, else the first of ``carriers``."""
    if shipment.carrier and shipment.carrier.strip():
        return shipment.carrier.strip()
    listed = [c.strip() for c in shipment.carriers or [] if c.strip()]
    return listed[0] if listed else None


def shipment_items(items: Iterable[DuoplaneItem]) -> list[dict[str, int]]:
    """``shipment_items_attributes``: one per order item, quantities of repeats added up (an
    item split over cartons comes twice)."""
    quantities: dict[int, int] = {}
    for item in items:
        quantities[item.duoplane_order_item_id] = (
            quantities.get(item.duoplane_order_item_id, 0) + item.quantity
        )
    return [{"order_item_id": oid, "quantity": qty} for oid, qty in quantities.items()]


def create_body(shipment: DuoplaneShipment) -> dict[str, Any]:
    """The POST body (``{"shipment": {...}}``), or a HardError naming what is missing: Duoplane
    needs a carrier, at least one item and at least one tracking number."""
    tracking = shipment.all_tracking
    carrier = carrier_named(shipment)
    problems = []
    if not tracking:
        problems.append(
            f"shipment {shipment.number} has no tracking number (tracking, tracking_numbers or "
            "cartons[].tracking_number): Duoplane needs at least one"
        )
    if carrier is None:
        problems.append(
            f"shipment {shipment.number} names no carrier: Duoplane needs shipper_id, "
            "shipper_name or shipper_scac_code"
        )
    if problems:
        raise HardError(CANNOT_SEND, problems)
    assert carrier is not None
    return {
        "shipment": {
            **shipper(carrier),
            "shipment_items_attributes": shipment_items(shipment.items),
            "shipment_trackings_attributes": [{"tracking": number} for number in tracking],
        }
    }


def delivered_key(shipment: DuoplaneShipment) -> str:
    """What makes a confirmation the same one: the shipment, its purchase order and its
    tracking numbers."""
    numbers = ",".join(sorted(shipment.all_tracking))
    return f"{shipment.number}:{shipment.duoplane_purchase_order_id}:{numbers}"


# ---------------------------------------------------------------------------------------------
# Duoplane's shipments


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, populate_by_name=True)


class ApiTracking(ApiModel):
    id: int | None = None
    tracking: str | None = None


class ApiShipmentItem(ApiModel):
    id: int | None = None
    order_item_id: int | None = None
    quantity: int | None = None
    order_item_name: str | None = None
    sku: str | None = None


class ApiShipment(ApiModel):
    """A shipment as ``GET /shipments.json`` lists it and the create answers it."""

    id: int
    purchase_order_id: int | None = None
    purchase_order_public_reference: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    shipper_id: int | None = None
    shipper_name: str | None = None
    shipper_scac_code: str | None = None
    trackings: list[ApiTracking] = Field(
        default_factory=list,
        validation_alias=AliasChoices("shipment_trackings_attributes", "shipment_trackings"),
    )
    items: list[ApiShipmentItem] = Field(
        default_factory=list,
        validation_alias=AliasChoices("shipment_items_attributes", "shipment_items"),
    )

    @property
    def tracking_numbers(self) -> list[str]:
        numbers = (t.tracking.strip() for t in self.trackings if t.tracking)
        return list(dict.fromkeys(n for n in numbers if n))

    @property
    def carrier(self) -> str | None:
        return carrier_of(self.shipper_id, self.shipper_name, self.shipper_scac_code)


@dataclass(frozen=True)
class Match:
    """A Duoplane shipment on the same purchase order holding some of our tracking numbers."""

    shipment: ApiShipment
    shared: list[str]
    missing: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing


def matches(
    shipments: Iterable[ApiShipment], purchase_order_id: int, tracking: Sequence[str]
) -> list[Match]:
    """The shipments on this purchase order holding any of these tracking numbers (the searched
    ``tracking`` matches partially: only exact numbers count), the most complete first (in
    listed order among equals)."""
    found: list[Match] = []
    for shipment in shipments:
        if shipment.purchase_order_id != purchase_order_id:
            continue
        held = set(shipment.tracking_numbers)
        shared = [n for n in tracking if n in held]
        if shared:
            found.append(Match(shipment, shared, [n for n in tracking if n not in held]))
    return sorted(found, key=lambda match: -len(match.shared))


def existing(
    shipments: Iterable[ApiShipment], purchase_order_id: int, tracking: Sequence[str]
) -> Match | None:
    """The shipment already at Duoplane for these tracking numbers, the most complete one."""
    return next(iter(matches(shipments, purchase_order_id, tracking)), None)


def confirmation(shipment: ApiShipment) -> ConfirmedShipment:
    """The ``shipment:confirm`` of a Duoplane shipment: the purchase order number is the hub
    shipment number (a purchase order shipped in several shipments gives several confirms,
    told apart by ``duoplane_shipment_id``)."""
    tracking = shipment.tracking_numbers
    carrier = shipment.carrier
    number = shipment.purchase_order_public_reference or str(shipment.purchase_order_id or "")
    return ConfirmedShipment(
        number=number or f"duoplane-shipment-{shipment.id}",
        tracking=tracking[0] if tracking else None,
        tracking_numbers=tracking,
        carrier=carrier,
        carriers=[carrier] if carrier else [],
        shipped_at=iso_time(shipment.created_at),
        items=[_item(item) for item in shipment.items],
        duoplane_shipment_id=shipment.id,
        duoplane_purchase_order_id=shipment.purchase_order_id,
    )


def _item(item: ApiShipmentItem) -> dict[str, Any]:
    found = {
        "sku": item.sku,
        "name": item.order_item_name,
        "quantity": item.quantity,
        "duoplane_order_item_id": item.order_item_id,
    }
    return {key: value for key, value in found.items() if value is not None}


# ---------------------------------------------------------------------------------------------
# Times and the polling window


def parse_time(raw: str) -> datetime:
    """ISO 8601; UTC when it has no offset. ValueError when it is not a time."""
    moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_cursor(raw: str) -> datetime:
    """The polling cursor: ``parse_time``'s, and ValueError out of range too
    (``kit.cursor_in_range``)."""
    return cursor_in_range(parse_time(raw))


def iso_time(raw: str | None) -> str | None:
    """A Duoplane time as ISO 8601 with its offset (None when absent or unreadable)."""
    if not raw:
        return None
    try:
        return parse_time(raw).isoformat()
    except ValueError:
        return None


def query_time(moment: datetime) -> str:
    """A time for ``search[...]`` and for the cursor: ISO 8601, always with its offset (without
    one Duoplane would read it in the API user's own time zone)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def window_start(
    cursor: datetime | None, now: datetime, overlap: timedelta, lookback: timedelta
) -> datetime:
    """Where a poll starts: the overlap before the cursor, or ``lookback`` before now."""
    return cursor - overlap if cursor is not None else now - lookback
