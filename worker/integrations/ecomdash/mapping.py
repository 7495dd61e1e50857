"""Pure functions: a hub ``shipment:confirm`` to ecomdash's tracking record, and ecomdash's
per-record answer back to each record.

The record (``POST Shipments/submitTrackingInfo`` takes an array of them)::

    {ShipmentId, CarrierId?, TrackingNumber (required unless LineItems), TrackingURL?,
     ShippedDate?, LineItems?: [{LineItemId, CarrierId?, TrackingNumber?, TrackingURL?}]}

How a hub shipment becomes one (our choices, ecomdash documents none of them):

* No item carries ``ecomdash_line_item_id``: the whole shipment shipped; no LineItems, the first
  tracking number is the record's. ecomdash takes one number per record then: further cartons'
  numbers are not sent, and a warn notification names them.
* Items carry ``ecomdash_line_item_id`` (a partial shipment, or several cartons): LineItems, one
  per item, and only those items are marked shipped. Every item then needs its id (an item
  without one is a hard error naming it: ecomdash could not tell which item shipped). An item's
  tracking number is, in this order: its own ``tracking_number``; the one of the carton its
  ``carton_id`` names; the i-th carton's when there are exactly as many cartons with numbers as
  items; else the record's (the first), which a line item inherits, so it is left out.
* ecomdash's line items carry no quantity: a line item sent is shipped whole.
* CarrierId comes from ``carrier_lookup`` (carrier name -> id); a carrier not in it is sent
  without CarrierId and a warn notification says so (marketplaces are then not told the
  carrier), rather than holding the tracking back.
* ShippedDate: ``shipped_at`` as wall time in ``ECOMDASH_TIME_ZONE`` without a zone, as ecomdash
  writes dates (``2016-07-18T12:57:33``); an unreadable one is left out with a warning.
* Ids are integers (the schema types them as decimals, ``20405.0``; the hub may send
  ``"20405"``): anything that is not a whole positive number is refused at intake.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from worker.basics.errors import HardError
from worker.hub.messages import HubModel, ShippedItem, ShippedShipment
from worker.integrations.kit import ProviderId, whole_number

CANNOT_SEND = "The confirmation cannot be sent to ecomdash"


EcomdashId = ProviderId


class EcomdashItem(ShippedItem):
    """An item as the hub confirms it to ecomdash: for a partial or multi-carton shipment its
    ecomdash ShipmentItem id, and optionally where it went (its own tracking number, or the
    carton it is in)."""

    ecomdash_line_item_id: EcomdashId | None = None
    tracking_number: str | None = None
    carton_id: str | None = None


class EcomdashShipment(ShippedShipment):
    ecomdash_shipment_id: EcomdashId
    items: list[EcomdashItem] = Field(default_factory=list)
    # The carriers ``ConfirmedShipment`` lists; the first names the carrier when ``carrier`` is
    # absent. Declared, so that a value that is not a list of names is a 422 naming it, not a
    # TypeError in the mapping (``carriers: 5``).
    carriers: list[str] | None = None


class TrackingConfirmation(HubModel):
    """``shipment:confirm`` for ecomdash: the shipment must carry ``ecomdash_shipment_id``."""

    shipment: EcomdashShipment


@dataclass(frozen=True)
class Mapped:
    """One confirmation as ecomdash's record, what was left out (warnings), and the key that
    says whether the same tracking was already delivered."""

    record: dict[str, Any]
    key: str
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# carrier_lookup


def carrier_ids(raw: Any) -> dict[str, int]:
    """The ``carrier_lookup`` parameter as one mapping of carrier name -> ecomdash CarrierId.

    Accepts the hub's list of one-key hashes (``[{"UPS": 3}, ...]``), one mapping, or a JSON
    string of either; None or "" is an empty lookup. A CarrierId that is not a whole number is a
    HardError naming the carrier."""
    if isinstance(raw, SecretStr):
        raw = raw.get_secret_value()
    if raw in (None, ""):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise HardError(
                "Invalid carrier_lookup", [f"carrier_lookup is not valid JSON: {exc.msg}"]
            ) from None
    entries: Any = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise HardError(
            "Invalid carrier_lookup",
            [
                "carrier_lookup must be a list of {carrier: CarrierId} hashes or one mapping, "
                'e.g. [{"UPS": 3}, {"USPS": 5}]'
            ],
        )
    lookup: dict[str, int] = {}
    problems: list[str] = []
    for entry in entries:
        for name, value in entry.items():
            try:
                number = whole_number(value)
                if not isinstance(number, int) or number <= 0:
                    raise ValueError
            except ValueError:
                problems.append(
                    f"carrier_lookup maps {str(name)!r} to {value!r}: an ecomdash CarrierId is "
                    "a whole number"
                )
                continue
            lookup[str(name)] = number
    if problems:
        raise HardError("Invalid carrier_lookup", problems)
    return lookup


def _carrier_key(name: str) -> str:
    """Loose comparison of carrier names: case, spaces and punctuation do not count."""
    return re.sub(r"[^0-9a-z]+", "", name.casefold())


def carrier_id(name: str | None, lookup: Mapping[str, int]) -> int | None:
    if not name:
        return None
    found = lookup.get(name)
    if found is None:
        wanted = _carrier_key(name)
        found = next((i for n, i in lookup.items() if _carrier_key(n) == wanted), None)
    return found


# ---------------------------------------------------------------------------------------------
# Dates


def shipped_date(shipped_at: str | None, zone: ZoneInfo) -> str | None:
    """``2024-05-01T10:15:00-04:00`` -> ``2024-05-01T14:15:00`` (zone UTC): wall time in
    ``zone``, no offset, as ecomdash writes dates. A time without an offset is taken as already
    in ``zone``; a date alone is midnight. None when absent; ValueError when unreadable."""
    if not shipped_at or not shipped_at.strip():
        return None
    moment = datetime.fromisoformat(shipped_at.strip().replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(zone)
        except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
            raise ValueError(f"{shipped_at!r} is out of range in {zone.key}") from None
    return moment.replace(tzinfo=None, microsecond=0).isoformat()


# ---------------------------------------------------------------------------------------------
# Hub shipment -> record


def tracking_record(
    shipment: EcomdashShipment, lookup: Mapping[str, int], zone: ZoneInfo
) -> Mapped:
    """The ecomdash record for one confirmed shipment, or a HardError naming what is missing."""
    numbers = shipment.all_tracking
    warnings: list[str] = []
    record: dict[str, Any] = {"ShipmentId": shipment.ecomdash_shipment_id}
    carrier = shipment.carrier or next(iter(shipment.carriers or []), None)
    found = carrier_id(carrier, lookup)
    if found is not None:
        record["CarrierId"] = found
    elif carrier:
        known = ", ".join(repr(n) for n in lookup) or "none (carrier_lookup is empty)"
        warnings.append(
            f"Carrier {carrier!r} is not in carrier_lookup (known: {known}): sent without "
            "CarrierId, so ecomdash cannot tell the marketplaces which carrier was used"
        )
    if numbers:
        record["TrackingNumber"] = numbers[0]
        if shipment.tracking_url:
            record["TrackingURL"] = shipment.tracking_url
    try:
        date = shipped_date(shipment.shipped_at, zone)
    except ValueError:
        date = None
        warnings.append(f"shipped_at {shipment.shipped_at!r} is not a date: ShippedDate not sent")
    if date:
        record["ShippedDate"] = date
    if any(i.ecomdash_line_item_id is not None for i in shipment.items):
        record["LineItems"] = line_items(shipment, numbers)
    else:
        if not numbers:
            raise HardError(
                CANNOT_SEND,
                [
                    f"Shipment {shipment.number} has no tracking number and no item carries "
                    "ecomdash_line_item_id: ecomdash needs a TrackingNumber unless LineItems "
                    "are sent"
                ],
            )
        if len(numbers) > 1:
            warnings.append(
                f"ecomdash takes one tracking number for a whole shipment: sent {numbers[0]}; "
                f"not sent {', '.join(numbers[1:])} (items carry no ecomdash_line_item_id to "
                "send them per item)"
            )
    return Mapped(record, delivery_key(record), warnings)


def line_items(shipment: EcomdashShipment, numbers: Sequence[str]) -> list[dict[str, Any]]:
    """One LineItem per item (see the module's rules); every item needs its id."""
    missing = [
        f"items[{at}] (sku {item.sku})"
        for at, item in enumerate(shipment.items)
        if item.ecomdash_line_item_id is None
    ]
    if missing:
        raise HardError(
            CANNOT_SEND,
            [
                f"{', '.join(missing)} carry no ecomdash_line_item_id while other items do: "
                "ecomdash could not tell which items shipped"
            ],
        )
    by_carton = {c.carton_id: c.tracking_number for c in shipment.cartons if c.carton_id}
    carton_numbers = [c.tracking_number for c in shipment.cartons if c.tracking_number]
    paired = len(carton_numbers) == len(shipment.items) and len(set(carton_numbers)) > 1
    first = numbers[0] if numbers else None
    items: list[dict[str, Any]] = []
    problems: list[str] = []
    for at, item in enumerate(shipment.items):
        number = (
            item.tracking_number
            or (by_carton.get(item.carton_id) if item.carton_id else None)
            or (carton_numbers[at] if paired else None)
            or first
        )
        if not number:
            problems.append(f"items[{at}] (sku {item.sku}) has no tracking number")
        entry: dict[str, Any] = {"LineItemId": item.ecomdash_line_item_id}
        if number and number != first:
            entry["TrackingNumber"] = number
        items.append(entry)
    if problems:
        raise HardError(CANNOT_SEND, problems)
    return items


def delivery_key(record: Mapping[str, Any]) -> str:
    """What makes two confirmations the same delivery: the ShipmentId, the tracking numbers
    and the line items (not the date or the carrier): ``20405:1Z1,1Z2:50001,50002``."""
    items = record.get("LineItems") or []
    numbers = {record.get("TrackingNumber")} | {i.get("TrackingNumber") for i in items}
    tracking = ",".join(sorted(n for n in numbers if n))
    ids = ",".join(str(i["LineItemId"]) for i in sorted(items, key=lambda i: i["LineItemId"]))
    return f"{record['ShipmentId']}:{tracking}:{ids}"


def describe(record: Mapping[str, Any]) -> str:
    """A record in words, for notifications."""
    parts = [f"ShipmentId {record['ShipmentId']}"]
    if record.get("TrackingNumber"):
        parts.append(f"tracking {record['TrackingNumber']}")
    if record.get("CarrierId") is not None:
        parts.append(f"CarrierId {record['CarrierId']}")
    if record.get("ShippedDate"):
        parts.append(f"shipped {record['ShippedDate']}")
    items = record.get("LineItems") or []
    if items:
        listed = ", ".join(
            f"{i['LineItemId']}" + (f" ({i['TrackingNumber']})" if i.get("TrackingNumber") else "")
            for i in items
        )
        parts.append(f"line items {listed}")
    else:
        parts.append("all remaining items")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# ecomdash's answer -> each record's result


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class RecordResult(ApiModel):
    Request: dict[str, Any] | None = None
    WasSuccessful: bool = False
    Messages: list[str] | None = None


class SubmitAnswer(ApiModel):
    """``{status, messages, pagination, data: [{Request, WasSuccessful, Messages}]}``."""

    status: str | None = None
    messages: list[str] | None = None
    data: list[RecordResult] = Field(default_factory=list)


def _same_id(a: Any, b: Any) -> bool:
    try:
        return whole_number(a) == whole_number(b)
    except ValueError:
        return False


def results_for(
    records: Sequence[Mapping[str, Any]], answer: SubmitAnswer
) -> list[RecordResult | None]:
    """Each record's result: by position when ecomdash answers one per record (its sample
    does), else the first unused result whose Request has the record's ShipmentId; None when
    ecomdash gave none for it."""
    if len(answer.data) == len(records):
        return list(answer.data)
    unused = list(answer.data)
    found: list[RecordResult | None] = []
    for record in records:
        match = next(
            (
                r
                for r in unused
                if r.Request is not None
                and _same_id(r.Request.get("ShipmentId"), record["ShipmentId"])
            ),
            None,
        )
        if match is not None:
            unused.remove(match)
        found.append(match)
    return found
