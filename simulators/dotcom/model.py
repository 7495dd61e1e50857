"""Dotcom simulator configuration and state: orders received, shipment releases, counters."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

DEFAULT_BASE_PATH = "/dcd_api_test/DCDAPIService.svc"
DEFAULT_ITEM_MASTER = frozenset({"9011CC", "2001SSBM", "SKU-1", "SKU-2", "SKU-3", "HAT-01"})
DUPLICATE_ORDERS = frozenset({"accept", "refuse"})
FAULT_KINDS = frozenset({"http_500", "http_503", "slow", "malformed_xml", "html_error_page"})
API_ROUTES = frozenset({"order", "order_status", "shipment"})
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
    # What Dotcom does with an order number it already holds is not documented: "accept" stores
    # a second order under it (the worst case, the default: nothing may rest on a refusal),
    # "refuse" answers an order_error saying it already exists.
    duplicate_orders: str = "accept"


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
    item_unit_price: str = ""


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
    status: str = "Received"  # order_status in GET /order/{order-number}


@dataclass(frozen=True)
class OrderError:
    description: str
    order_number: str


class SimulatorState:
    """Everything the simulator remembers but its faults; mutate only while holding ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # Orders by their client order number (several, when a repeat is accepted).
        self.orders: dict[str, list[StoredOrder]] = {}
        # Releases by Dotcom's order number and release number.
        self.releases: dict[tuple[str, str], Release] = {}
        # Each client order's Dotcom number, as its releases carry it (found without a scan).
        self.dcd_numbers: dict[str, str] = {}
        self.requests: dict[str, int] = dict.fromkeys(API_ROUTES, 0)
        # Not reset by /_sim/reset: numbers stay unique for the life of the process.
        self._sequence = itertools.count(1)

    def keep_release(self, release: Release) -> None:
        self.releases[(release.dcd_order_number, release.release)] = release
        self.dcd_numbers.setdefault(release.client_order_number, release.dcd_order_number)

    def reset(self) -> None:
        self.orders.clear()
        self.dcd_numbers.clear()
        self.releases.clear()
        self.requests = dict.fromkeys(API_ROUTES, 0)

    def next_number(self) -> int:
        return next(self._sequence)
