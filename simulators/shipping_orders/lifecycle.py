"""Order statuses, the lifecycle scenarios, status-history entries and the API's time formats."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

# Statuses the vendor documents (providers.md); the simulator uses the ones on its paths.
STATUSES = (
    "REQUEST_RECEIVED",
    "PENDING_DISPATCH",
    "PENDING_RELEASE",
    "PENDING_AUTORETRY",
    "ESTIMATES_RECEIVED",
    "ORDER_DISPATCHED",
    "STAGED",
    "ORDER_ASSIGNED",
    "ORDER_UNASSIGNED",
    "PICKUP_STARTED",
    "PICKUP_COMPLETED",
    "IN_TRANSIT",
    "OUT_FOR_DELIVERY",
    "ORDER_AT_LOCATION",
    "ORDER_DELAYED",
    "ORDER_REDELIVERY",
    "ESTIMATES_FAILED",
    "ORDER_FAILED",
    "ORDER_DELIVERED",
    "ORDER_UNDELIVERABLE",
    "ERROR_EXCEPTION",
    "ORDER_CANCELLED",
)
TERMINAL = frozenset(
    {
        "ESTIMATES_FAILED",
        "ORDER_FAILED",
        "ORDER_DELIVERED",
        "ORDER_UNDELIVERABLE",
        "ERROR_EXCEPTION",
        "ORDER_CANCELLED",
    }
)
RETRYABLE = frozenset({"ORDER_FAILED", "ESTIMATES_FAILED", "PENDING_AUTORETRY"})
# The provider has the parcel: no cancelling, no changing the package.
PICKED_UP = frozenset(
    {
        "PICKUP_COMPLETED",
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "ORDER_AT_LOCATION",
        "ORDER_DELAYED",
        "ORDER_REDELIVERY",
    }
)
# Finished after the provider had it (or refused by it): cancelling is not allowed.
NOT_CANCELLABLE = frozenset({"ORDER_DELIVERED", "ORDER_UNDELIVERABLE", "ERROR_EXCEPTION"})
# Dispatched and not yet picked up: an edit of the address re-runs orchestration.
BEFORE_PICKUP = frozenset({"ORDER_DISPATCHED", "ORDER_ASSIGNED", "PICKUP_STARTED"})

_TO_PICKUP = ("ORDER_DISPATCHED", "ORDER_ASSIGNED", "PICKUP_STARTED", "PICKUP_COMPLETED")
SCENARIO_PATHS: dict[str, tuple[str, ...]] = {
    "delivered": (*_TO_PICKUP, "IN_TRANSIT", "OUT_FOR_DELIVERY", "ORDER_DELIVERED"),
    "delayed": (
        *_TO_PICKUP,
        "IN_TRANSIT",
        "ORDER_DELAYED",
        "OUT_FOR_DELIVERY",
        "ORDER_DELIVERED",
    ),
    "redelivery": (
        *_TO_PICKUP,
        "IN_TRANSIT",
        "OUT_FOR_DELIVERY",
        "ORDER_REDELIVERY",
        "OUT_FOR_DELIVERY",
        "ORDER_DELIVERED",
    ),
    "undeliverable": (*_TO_PICKUP, "IN_TRANSIT", "OUT_FOR_DELIVERY", "ORDER_UNDELIVERABLE"),
    "failed": ("ORDER_DISPATCHED", "ORDER_FAILED"),
    "exception": (*_TO_PICKUP, "IN_TRANSIT", "ERROR_EXCEPTION"),
}
SCENARIOS = tuple(SCENARIO_PATHS)
# In the vendor's shape a create answers REQUEST_RECEIVED and the order is dispatched later:
# these steps come before a scenario's path.
BEFORE_DISPATCH = ("REQUEST_RECEIVED", "ESTIMATES_RECEIVED")


def scenario_path(scenario: str, *, dispatch_later: bool = False) -> tuple[str, ...]:
    path = SCENARIO_PATHS[scenario]
    return (*BEFORE_DISPATCH, *path) if dispatch_later else path


# statusUser of the steps the platform itself takes (the seed's history sample).
PLATFORM_USER = "Default_Business_Key"

# Details a provider adds to some steps. ORDER_UNDELIVERABLE copies the seed's history sample;
# the others are made up in its style (the real codes are unknown).
STEP_DETAILS: dict[str, dict[str, Any]] = {
    "ORDER_UNDELIVERABLE": {
        "note": "ARRIVED_AT_RETURN( RT-001 - Customer rejected (missing item or quality issue) )",
        "eventReason": {
            "code": "CUSTOMER_REJECTED",
            "title": "Customer Rejected",
            "note": "RT-001 - Customer rejected (missing item or quality issue)",
        },
        "subStatus": "RETURN_AT_LOCATION",
    },
    "ORDER_DELAYED": {
        "note": "DELAYED( DL-002 - Weather delay )",
        "eventReason": {"code": "WEATHER_DELAY", "title": "Weather Delay", "note": "DL-002"},
    },
    "ORDER_REDELIVERY": {
        "note": "REDELIVERY( RD-001 - Customer not available )",
        "eventReason": {
            "code": "CUSTOMER_NOT_AVAILABLE",
            "title": "Customer Not Available",
            "note": "RD-001 - Customer not available",
        },
    },
    "ERROR_EXCEPTION": {
        "note": "EXCEPTION( EX-004 - Package damaged in transit )",
        "eventReason": {
            "code": "PACKAGE_DAMAGED",
            "title": "Package Damaged",
            "note": "EX-004 - Package damaged in transit",
        },
    },
    "ORDER_FAILED": {
        "note": "Provider rejected the order",
        "eventReason": {"code": "PROVIDER_REJECTED", "title": "Provider Rejected", "note": None},
    },
}

CENTRAL = ZoneInfo("America/Chicago")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def iso_ms(epoch_ms: int) -> str:
    """``2022-04-25T12:31:03.042Z``."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def human_time(epoch_ms: int) -> str:
    """``April 27th 2022, 2:45:45 am CDT`` (America/Chicago), as the status history writes it."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, CENTRAL)
    day = moment.day
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    hour = moment.hour % 12 or 12
    half = "am" if moment.hour < 12 else "pm"
    return (
        f"{_MONTHS[moment.month - 1]} {day}{suffix} {moment.year}, "
        f"{hour}:{moment:%M:%S} {half} {moment.tzname()}"
    )


def history_entry(
    status: str, epoch_ms: int, status_user: str, *, retry: bool = False
) -> dict[str, Any]:
    """One ``orderStatus`` entry. ``retry`` and ``workflow`` exist on real entries; their
    meaning is unknown: retry is true for the steps of a retried dispatch, workflow is null."""
    entry: dict[str, Any] = {
        "status": status,
        "updatedAt": human_time(epoch_ms),
        "updatedAtEpoch": epoch_ms,
        "note": None,
        "statusUser": status_user,
        "retry": retry,
        "workflow": None,
    }
    entry.update(copy.deepcopy(STEP_DETAILS.get(status, {})))
    return entry
