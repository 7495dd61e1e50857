"""One shipment status model: the canonical statuses the hub sees, whoever the provider is.

Providers speak in their own statuses (the Shipping Order API's ``PICKUP_COMPLETED``, a carrier's
``OD``); each integration maps its own to these (``worker.integrations.<name>.mapping``) and keeps
the provider's word beside it (``provider_status``). karrio's tracking model has 12 statuses
(pending, on_hold, picked_up, in_transit, out_for_delivery, delivered, delivery_delayed,
delivery_failed, ready_for_pickup, return_to_sender, cancelled, unknown); ours separates what a
fulfilment order goes through before a courier has it (accepted, dispatched, assigned), an attempt
from a final failure (attempted vs undeliverable), and a provider's failure to place the order
(failed) from an exception in transit.

``Progress`` decides what is reported: a status is reported once, in order, and a shipment never
moves backwards when events arrive out of order (a late webhook, a poll that read an older
state). See ``next_report``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ShipmentStatus(StrEnum):
    PENDING = "pending"  # received by the provider, not yet accepted (estimates, auto-retry)
    ACCEPTED = "accepted"  # the provider took it; no courier chosen yet
    DISPATCHED = "dispatched"  # placed with a courier (delivery provider)
    ASSIGNED = "assigned"  # a driver or route is assigned
    PICKED_UP = "picked_up"  # the courier has the parcel
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    DELAYED = "delayed"  # still moving, but late
    ATTEMPTED = "attempted"  # a delivery attempt failed; it will be redelivered
    UNDELIVERABLE = "undeliverable"  # delivery given up (rejected, wrong address)
    RETURNED = "returned"  # back at the sender
    FAILED = "failed"  # the provider could not place or carry out the order
    CANCELLED = "cancelled"
    EXCEPTION = "exception"  # a problem the provider reports without a finer word
    UNKNOWN = "unknown"  # a provider status we have no mapping for (the raw one is beside it)


# How far along a shipment is. Statuses on one rank are alternatives at the same stage.
RANK: dict[ShipmentStatus, int] = {
    ShipmentStatus.UNKNOWN: 0,
    ShipmentStatus.PENDING: 1,
    ShipmentStatus.ACCEPTED: 2,
    ShipmentStatus.FAILED: 2,
    ShipmentStatus.DISPATCHED: 3,
    ShipmentStatus.ASSIGNED: 4,
    ShipmentStatus.PICKED_UP: 5,
    ShipmentStatus.IN_TRANSIT: 6,
    ShipmentStatus.DELAYED: 6,
    ShipmentStatus.EXCEPTION: 6,
    ShipmentStatus.OUT_FOR_DELIVERY: 7,
    ShipmentStatus.ATTEMPTED: 7,
    ShipmentStatus.DELIVERED: 8,
    ShipmentStatus.UNDELIVERABLE: 8,
    ShipmentStatus.RETURNED: 9,
    ShipmentStatus.CANCELLED: 10,
}

# Nothing moves a shipment out of these, however new the event (a provider's glitch after a
# cancellation is not news), except the moves in ``AFTER_FINAL``.
FINAL = frozenset({ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED, ShipmentStatus.CANCELLED})
AFTER_FINAL = {ShipmentStatus.DELIVERED: frozenset({ShipmentStatus.RETURNED})}

# The courier has (or had) the parcel: the hub's shipment is shipped (``shipment:confirm``).
SHIPPED = frozenset(
    {
        ShipmentStatus.PICKED_UP,
        ShipmentStatus.IN_TRANSIT,
        ShipmentStatus.OUT_FOR_DELIVERY,
        ShipmentStatus.ATTEMPTED,
        ShipmentStatus.DELIVERED,
        ShipmentStatus.UNDELIVERABLE,
        ShipmentStatus.RETURNED,
    }
)


@dataclass(frozen=True)
class Observation:
    """One status of one shipment as a provider told it: canonical, raw, and when (epoch ms;
    None when the provider gave no time)."""

    status: ShipmentStatus
    provider_status: str
    at_ms: int | None
    picked_up: bool = False  # the provider says the parcel was picked up (a pickup time)

    @property
    def shipped(self) -> bool:
        return self.picked_up or self.status in SHIPPED


@dataclass(frozen=True)
class Progress:
    """What the hub was last told about one shipment (kept per store, per shipment)."""

    status: ShipmentStatus
    provider_status: str
    at_ms: int | None
    sequence: int  # how many updates were reported: the hub can drop an older one
    confirmed: bool  # shipment:confirm was sent

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.status.value,
            "provider_status": self.provider_status,
            "at_ms": self.at_ms,
            "sequence": self.sequence,
            "confirmed": self.confirmed,
        }

    @classmethod
    def from_json(cls, value: object) -> Progress | None:
        if not isinstance(value, dict) or "status" not in value:
            return None
        return cls(
            status=canonical(str(value["status"])),
            provider_status=str(value.get("provider_status") or ""),
            at_ms=value.get("at_ms") if isinstance(value.get("at_ms"), int) else None,
            sequence=int(value.get("sequence") or 0),
            confirmed=bool(value.get("confirmed")),
        )


def canonical(value: str) -> ShipmentStatus:
    try:
        return ShipmentStatus(value)
    except ValueError:
        return ShipmentStatus.UNKNOWN


def is_news(last: Progress | None, seen: Observation, *, follows: bool = False) -> bool:
    """Whether ``seen`` moves the shipment on from what the hub was last told. ``follows``:
    the provider's own history puts ``seen`` after the last status told, so its place there
    counts, not the clocks (two steps in one millisecond, a history and a webhook timed by
    different clocks).

    * Nothing told yet: news.
    * The same status (canonical and raw): not news, whatever its time (the webhook and the poll
      of one event; a repeated webhook).
    * After a final status (delivered, returned, cancelled): only delivered → returned.
    * Otherwise by the provider's event time: a newer event is news (a redelivery goes
      out_for_delivery → attempted → out_for_delivery), an older one is not (a late webhook).
      Without a time on either side, or at the same time, only a higher rank is news.
    """
    if last is None:
        return True
    if (last.status, last.provider_status) == (seen.status, seen.provider_status):
        return False
    if last.status in FINAL:
        return seen.status in AFTER_FINAL.get(last.status, frozenset())
    if follows:
        return True
    if seen.at_ms is not None and last.at_ms is not None and seen.at_ms != last.at_ms:
        return seen.at_ms > last.at_ms
    return RANK[seen.status] > RANK[last.status]


def advance(last: Progress | None, seen: Observation) -> Progress:
    """The progress after reporting ``seen`` (call only when ``is_news``)."""
    return Progress(
        status=seen.status,
        provider_status=seen.provider_status,
        at_ms=seen.at_ms,
        sequence=(last.sequence if last else 0) + 1,
        confirmed=bool(last and last.confirmed) or seen.shipped,
    )


def needs_confirm(last: Progress | None, seen: Observation) -> bool:
    """``shipment:confirm`` goes once: the first time a shipment is seen picked up or later."""
    return seen.shipped and not (last and last.confirmed)
