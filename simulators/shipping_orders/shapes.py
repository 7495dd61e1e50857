"""The order as the API answers it: in the seed's shape, or in the vendor's.

The simulator keeps every order in the seed's shape; this renders it at the edge (answers,
lists, webhooks, control reports) in the configured ``shape``:

* ``seed``: the document as stored (``provider`` an object, ``trackingId``,
  ``referenceLinks.trackingUrl``, ``{startsAt, endsAt}`` estimated times, ``id``,
  ``locationExternalId``);
* ``vendor``: the vendor's real order objects (providers.md): ``provider`` the provider's name
  (``""`` before dispatch), ``trackingNumber`` (``""`` before dispatch; a JSON integer when it is
  all digits, e.g. FedEx's), a top-level ``trackingUrl`` (null before dispatch),
  ``estimatedPickupTime`` / ``...Starts`` / ``...Ends`` as epoch milliseconds and
  ``estimatedDeliveryTime`` (ISO 8601 with an offset, no milliseconds) / ``...Starts`` /
  ``...Ends`` (ISO 8601 with milliseconds and Z), ``orderId``, ``storeExternalId`` and
  ``receivedAtEpoch`` (ms). A create's own answer has ``createdAt`` and ``lastUpdatedAt`` as
  empty strings.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from simulators.shipping_orders.lifecycle import CENTRAL, iso_ms

SHAPES = ("seed", "vendor")
# Error types the vendor answers with HTTP 400 where the seed's table says 422.
VENDOR_HTTP_STATUS = {"INVALID_DATA": 400, "ORDER_CANCELLATION_FAILED": 400}


def answered(
    doc: Mapping[str, Any], shape: str, received_ms: int, *, created: bool = False
) -> dict[str, Any]:
    """``doc`` (stored, seed-shaped) as the API answers it in ``shape``; ``created``: the
    answer to the create itself."""
    if shape != "vendor":
        return copy.deepcopy(dict(doc))
    return vendor_order(doc, received_ms, created=created)


def vendor_order(
    doc: Mapping[str, Any], received_ms: int, *, created: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "id":
            out["orderId"] = value
        elif key == "locationExternalId":
            out["storeExternalId"] = value
        elif key == "provider":
            out["provider"] = str((value or {}).get("name") or "")
        elif key == "trackingId":
            out["trackingNumber"] = tracking_number(value)
        elif key == "referenceLinks":
            links = dict(value or {})
            out["trackingUrl"] = links.pop("trackingUrl", None)
            out["referenceLinks"] = links
        elif key == "estimatedPickupTime":
            out.update(epoch_fields(key, value))
        elif key == "estimatedDeliveryTime":
            out.update(iso_fields(key, value))
        else:
            out[key] = copy.deepcopy(value)
    out["receivedAtEpoch"] = received_ms
    if created:
        out["createdAt"] = out["lastUpdatedAt"] = ""
    return out


def tracking_number(value: Any) -> str | int:
    """``""`` before dispatch; an all-digit number as a JSON integer (as the vendor sometimes
    sends it); anything else as text."""
    if not value:
        return ""
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() else text


def _window(value: Any) -> tuple[int | None, int | None]:
    window = value if isinstance(value, Mapping) else {}
    return window.get("startsAt"), window.get("endsAt")


def epoch_fields(name: str, value: Any) -> dict[str, Any]:
    """``estimatedPickupTime`` (the window's start), ``...Starts``, ``...Ends``: epoch ms."""
    starts, ends = _window(value)
    return {name: starts, f"{name}Starts": starts, f"{name}Ends": ends}


def iso_fields(name: str, value: Any) -> dict[str, Any]:
    """``estimatedDeliveryTime`` (the window's end, ISO 8601 with the location's offset and no
    milliseconds), ``...Starts`` and ``...Ends`` (ISO 8601 with milliseconds and Z)."""
    starts, ends = _window(value)
    return {
        name: None if ends is None else offset_time(ends),
        f"{name}Starts": None if starts is None else iso_ms(starts),
        f"{name}Ends": None if ends is None else iso_ms(ends),
    }


def offset_time(epoch_ms: int) -> str:
    """``2025-03-10T10:00:00-05:00`` (America/Chicago)."""
    return datetime.fromtimestamp(epoch_ms / 1000, CENTRAL).isoformat(timespec="seconds")
