"""The Dotcom simulator's behaviour: orders in, releases out, control."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from simulators.dotcom.auth import is_authorized
from simulators.dotcom.documents import (
    format_quantity,
    parse_iso_datetime,
    ship_to_of,
    text_of,
    validate_order,
    wcf_order_date,
)
from simulators.dotcom.model import (
    API_ROUTES,
    DCD_ORDER_NUMBER_BASE,
    DEFAULT_SLOW_SECONDS,
    DUPLICATE_ORDERS,
    FAULT_KINDS,
    TRACKING_SHIPPER,
    OrderError,
    Release,
    ShipItem,
    ShipTo,
    SimulatorConfig,
    SimulatorState,
    StoredOrder,
)
from simulators.kit import Fault, FaultQueue, InvalidRequest, non_negative_number


class DotcomSimulator:
    """Behaviour behind the routes: orders in, releases out, faults and control."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.zone = ZoneInfo(config.warehouse_timezone)
        self.state = SimulatorState()
        self.faults = FaultQueue(
            API_ROUTES, FAULT_KINDS, default_delays={"slow": DEFAULT_SLOW_SECONDS}
        )

    def now(self) -> datetime:
        moment = self.config.clock()
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    # -- API ------------------------------------------------------------------------------

    def begin_request(self, route: str) -> Fault | None:
        """Count an API request and take the fault queued for it, if any."""
        with self.state.lock:
            self.state.requests[route] += 1
        return self.faults.take(route)

    def authorized(self, header: str | None, url: str) -> bool:
        with self.state.lock:
            accounts = dict(self.config.accounts)
        return is_authorized(header, url, accounts)

    def receive_orders(self, orders: Sequence[ET.Element]) -> list[OrderError]:
        """Validate each order; store the valid ones (and schedule them to ship)."""
        errors: list[OrderError] = []
        with self.state.lock:
            for order in orders:
                number = text_of(order, "order-number")
                problems = validate_order(order, self.config.item_master)
                if number in self.state.orders and self.config.duplicate_orders == "refuse":
                    # Dotcom's duplicate behaviour and wording are unknown (duplicate_orders).
                    problems.append(f"Order {number} already exists.")
                if problems:
                    errors += [OrderError(problem, number) for problem in problems]
                else:
                    self._store_order(order, number)
        return errors

    def _store_order(self, order: ET.Element, number: str) -> None:
        received = self.now()
        stored = StoredOrder(
            order_number=number,
            dcd_order_number=self._new_dcd_order_number(),
            received_at=received,
            xml=ET.tostring(order, encoding="unicode"),
            customer_number=text_of(order, "billing-information/billing-customer-number"),
            order_date=wcf_order_date(text_of(order, "order-date")),
            ship_to=ship_to_of(order),
        )
        self.state.orders.setdefault(number, []).append(stored)
        ship_at = received + timedelta(seconds=self.config.ship_after_seconds)
        release = Release(
            client_order_number=number,
            dcd_order_number=stored.dcd_order_number,
            release="01",
            ship_datetime=ship_at,
            visible_at=ship_at + timedelta(seconds=self.config.visible_after_seconds),
            items=self._default_items(order),
            customer_number=stored.customer_number,
            order_date=stored.order_date,
            ship_to=stored.ship_to,
        )
        self.state.keep_release(release)

    def _default_items(self, order: ET.Element) -> list[ShipItem]:
        """Everything ships at once: one UPS Ground carton, one tracking number, one item per
        order line (the same SKU on two lines stays two items, as Dotcom's answers show)."""
        carton, tracking = self._new_carton_id(), self._new_tracking_number("03")
        return [
            ShipItem(
                sku=text_of(line, "sku"),
                quantity_shipped=Decimal(text_of(line, "quantity")),
                carrier="UPS",
                service="UPS Ground",  # Dotcom's service names the carrier already
                service_code="03",
                tracking_number=tracking,
                carton_id=carton,
                client_line_number=text_of(line, "line-number"),
                order_line_number=str(position),
                item_unit_price=text_of(line, "price"),
            )
            for position, line in enumerate(order.findall("line-items/line-item"), start=1)
        ]

    def _new_dcd_order_number(self) -> str:
        return f"{DCD_ORDER_NUMBER_BASE + self.state.next_number():010d}"

    def _new_carton_id(self) -> str:
        return f"C{self.state.next_number():09d}"

    def _new_tracking_number(self, service_code: str) -> str:
        code = service_code if len(service_code) == 2 and service_code.isdigit() else "03"
        return f"1Z{TRACKING_SHIPPER}{code}{self.state.next_number():08d}"

    def held_orders(self, number: str) -> list[StoredOrder]:
        """The orders stored under a client order number (``GET /order/{order-number}``)."""
        with self.state.lock:
            return list(self.state.orders.get(number, []))

    def visible_releases(self, start: datetime, end: datetime) -> list[Release]:
        """Releases shipped within [start, end] that Dotcom already shows."""
        now = self.now()
        with self.state.lock:
            found = [
                release
                for release in self.state.releases.values()
                if start <= release.ship_datetime <= end and release.visible_at <= now
            ]
        return sorted(found, key=lambda r: (r.ship_datetime, r.client_order_number, r.release))

    # -- control --------------------------------------------------------------------------

    def reset(self) -> None:
        with self.state.lock:
            self.state.reset()
        self.faults.clear()

    def orders_report(self) -> dict[str, Any]:
        with self.state.lock:
            orders = [
                {
                    "order_number": order.order_number,
                    "dcd_order_number": order.dcd_order_number,
                    "received_at": order.received_at.isoformat(),
                    "xml": order.xml,
                }
                for held in self.state.orders.values()
                for order in held
            ]
            requests = dict(self.state.requests)
        return {
            "orders": orders,
            "count": len(orders),
            "order_requests": requests["order"],
            "shipment_requests": requests["shipment"],
            "order_status_requests": requests["order_status"],
        }

    def releases_report(self) -> list[dict[str, Any]]:
        now = self.now()
        with self.state.lock:
            releases = list(self.state.releases.values())
        return [release_to_json(release, now) for release in releases]

    def inject_release(self, payload: Mapping[str, Any]) -> Release:
        """Add (or replace, for the same order and release number) a shipment release."""
        with self.state.lock:
            release = self._release_from_json(payload)
            self.state.keep_release(release)
        return release

    def _release_from_json(self, payload: Mapping[str, Any]) -> Release:
        number = _required_string(payload, "client_order_number")
        release_number = _optional_string(payload, "release") or "01"
        ship_at = _optional_datetime(payload, "ship_datetime", self.zone) or self.now()
        visible_at = _optional_datetime(payload, "visible_at", self.zone) or (
            ship_at + timedelta(seconds=self.config.visible_after_seconds)
        )
        raw_items = payload.get("items", [])
        if not isinstance(raw_items, list):
            raise InvalidRequest("items must be a list")
        stored = self._first_order(number)
        return Release(
            client_order_number=number,
            dcd_order_number=_optional_string(payload, "dcd_order_number")
            or self._dcd_number_for(number),
            release=release_number,
            ship_datetime=ship_at,
            visible_at=visible_at,
            items=[self._item_from_json(raw) for raw in raw_items],
            order_status=_optional_string(payload, "order_status") or "Shipped",
            customer_number=stored.customer_number if stored else "",
            order_date=stored.order_date if stored else "",
            ship_to=stored.ship_to if stored else ShipTo(),
        )

    def _first_order(self, client_order_number: str) -> StoredOrder | None:
        return next(iter(self.state.orders.get(client_order_number, [])), None)

    def _dcd_number_for(self, client_order_number: str) -> str:
        stored = self._first_order(client_order_number)
        if stored:
            return stored.dcd_order_number
        return self.state.dcd_numbers.get(client_order_number) or self._new_dcd_order_number()

    def _item_from_json(self, raw: Any) -> ShipItem:
        if not isinstance(raw, Mapping):
            raise InvalidRequest("each item must be an object")
        service_code = _optional_string(raw, "service_code") or "03"
        tracking = (
            raw["tracking_number"]
            if "tracking_number" in raw
            else self._new_tracking_number(service_code)
        )
        if tracking is not None and not isinstance(tracking, str):
            raise InvalidRequest("tracking_number must be a string or null")
        return ShipItem(
            sku=_required_string(raw, "sku"),
            quantity_shipped=_quantity(raw.get("quantity_shipped")),
            carrier=_optional_string(raw, "carrier") or "UPS",
            service=_optional_string(raw, "service") or "UPS Ground",
            service_code=service_code,
            tracking_number=tracking,
            carton_id=_optional_string(raw, "carton_id") or self._new_carton_id(),
            serial_lot_number=_optional_string(raw, "serial_lot_number"),
            client_line_number=_optional_string(raw, "line_number"),
            order_line_number=_optional_string(raw, "line_number"),
            item_unit_price=_optional_string(raw, "price"),
        )

    def update_config(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        changes = config_changes_from_json(payload)
        with self.state.lock:
            for name, value in changes.items():
                setattr(self.config, name, value)
        return self.config_report()

    def config_report(self) -> dict[str, Any]:
        with self.state.lock:
            return {
                "base_path": self.config.base_path,
                "ship_after_seconds": self.config.ship_after_seconds,
                "visible_after_seconds": self.config.visible_after_seconds,
                "item_master": sorted(self.config.item_master),
                "warehouse_timezone": self.config.warehouse_timezone,
                "duplicate_orders": self.config.duplicate_orders,
            }


# --------------------------------------------------------------------------------------------
# Control API JSON


def _required_string(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{key} must be a non-empty string")
    return value


def _optional_string(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidRequest(f"{key} must be a string")
    return str(value)


def _optional_datetime(payload: Mapping[str, Any], key: str, zone: ZoneInfo) -> datetime | None:
    value = payload.get(key)
    if value is None:
        return None
    try:
        return parse_iso_datetime(str(value), zone)
    except ValueError as exc:
        raise InvalidRequest(f"{key} must be an ISO 8601 datetime") from exc


def _quantity(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequest("quantity_shipped must be a number")
    try:
        quantity = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidRequest("quantity_shipped must be a number") from exc
    if not quantity.is_finite() or quantity < 0:
        raise InvalidRequest("quantity_shipped must be a finite number >= 0")
    return quantity


def config_changes_from_json(payload: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {"ship_after_seconds", "visible_after_seconds", "item_master", "duplicate_orders"}
    unknown = set(payload) - allowed
    if unknown:
        raise InvalidRequest(f"unknown settings: {sorted(unknown)}; allowed: {sorted(allowed)}")
    changes: dict[str, Any] = {
        key: non_negative_number(payload, key)
        for key in ("ship_after_seconds", "visible_after_seconds")
        if key in payload
    }
    if "item_master" in payload:
        items = payload["item_master"]
        if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
            raise InvalidRequest("item_master must be a list of non-empty strings")
        changes["item_master"] = set(items)
    if "duplicate_orders" in payload:
        if payload["duplicate_orders"] not in DUPLICATE_ORDERS:
            raise InvalidRequest(f"duplicate_orders must be one of {sorted(DUPLICATE_ORDERS)}")
        changes["duplicate_orders"] = payload["duplicate_orders"]
    return changes


def release_to_json(release: Release, now: datetime) -> dict[str, Any]:
    return {
        "client_order_number": release.client_order_number,
        "dcd_order_number": release.dcd_order_number,
        "release": release.release,
        "order_status": release.order_status,
        "ship_datetime": release.ship_datetime.isoformat(),
        "visible_at": release.visible_at.isoformat(),
        "visible": release.visible_at <= now,
        "items": [
            {
                "sku": item.sku,
                "quantity_shipped": format_quantity(item.quantity_shipped),
                "carrier": item.carrier,
                "service": item.service,
                "service_code": item.service_code,
                "tracking_number": item.tracking_number,
                "carton_id": item.carton_id,
            }
            for item in release.items
        ],
    }
