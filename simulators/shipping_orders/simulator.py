"""The Shipping Order API simulator's state and behaviour (HTTP lives in ``app``)."""

from __future__ import annotations

import copy
import itertools
import os
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any

from simulators.kit import Fault, FaultQueue, InvalidRequest
from simulators.shipping_orders.config import (
    Location,
    SimulatorConfig,
    config_changes_from_json,
    location_from_json,
)
from simulators.shipping_orders.documents import (
    MAX_ID_LENGTH,
    apply_dispatch,
    check_edit,
    check_new_order,
    edit_changes,
    new_document,
    scenario_of,
    shipment_of,
)
from simulators.shipping_orders.errors import (
    API_ROUTES,
    ERROR_TABLE,
    ApiError,
    OrchestrationError,
    forbidden,
    invalid_data,
    not_found,
    orchestration_error,
    route_error,
    seed_type,
    table_error,
    too_many_requests,
    unauthorized,
    validation_error,
)
from simulators.shipping_orders.lifecycle import (
    BEFORE_PICKUP,
    NOT_CANCELLABLE,
    PICKED_UP,
    PLATFORM_USER,
    RETRYABLE,
    SCENARIO_PATHS,
    STATUSES,
    TERMINAL,
    history_entry,
    iso_ms,
    scenario_path,
)
from simulators.shipping_orders.listing import Listed, parse_list_request, run_list
from simulators.shipping_orders.orchestration import (
    PROVIDERS,
    Estimate,
    orchestrate,
    with_coordinates,
)
from simulators.shipping_orders.shapes import answered
from simulators.shipping_orders.webhooks import WebhookSender

API_FAULT_KINDS = ("http_500", "error", "slow", "lost_answer", "odd_answer")
WEBHOOK_FAULT_KINDS = ("drop", "duplicate", "delay")
FAULT_ROUTES = (*API_ROUTES, "webhook")
DEFAULT_DELAYS = {"slow": 5.0, "delay": 2.0}
CLOCK_POLL_SECONDS = 0.25
# Editing these after the provider has the parcel is refused; before, it re-runs orchestration.
REDISPATCH_FIELDS = frozenset({"deliveryAddress", "locationExternalId", "package"})
NO_EDIT = frozenset(
    {"ORDER_CANCELLED", "ORDER_DELIVERED", "ORDER_UNDELIVERABLE", "ERROR_EXCEPTION"}
)
UNKNOWN_LOCATION = (
    "Invalid Data: No such locationExternalId exists in our system. Please provide a valid "
    "locationExternalId."
)


def check_fault(fault: Fault) -> None:
    """Webhook kinds only on the webhook route, API kinds only on API routes; an ``error``
    fault names a ``type`` of the route's row in the seed's error table (either spelling)."""
    if fault.route == "webhook":
        if fault.kind not in WEBHOOK_FAULT_KINDS:
            raise InvalidRequest(f"route webhook takes kinds {list(WEBHOOK_FAULT_KINDS)}")
        return
    if fault.kind not in API_FAULT_KINDS:
        raise InvalidRequest(f"API routes take kinds {list(API_FAULT_KINDS)}")
    if fault.kind == "error":
        assert fault.route is not None
        allowed = ERROR_TABLE[fault.route]
        if seed_type(str(fault.extra.get("type"))) not in allowed:
            raise InvalidRequest(f"type must be one of {sorted(allowed)} on route {fault.route}")
        if not isinstance(fault.extra.get("message", ""), str):
            raise InvalidRequest("message must be a string")
    if fault.kind == "odd_answer":
        changes, removed = fault.extra.get("set", {}), fault.extra.get("remove", [])
        if not isinstance(changes, Mapping) or not (
            isinstance(removed, list) and all(isinstance(name, str) for name in removed)
        ):
            raise InvalidRequest("set must be an object and remove a list of field names")
        if not changes and not removed:
            raise InvalidRequest("odd_answer needs set or remove")


def oddly(route: str, payload: Any, fault: Fault) -> Any:
    """An ``odd_answer`` fault's answer: each order it carries (the data of a list, the entries
    of a status history) with the fault's ``set`` fields written over and ``remove`` fields
    taken out."""
    changes, removed = fault.extra.get("set", {}), fault.extra.get("remove", [])

    def odd(order: Any) -> Any:
        if not isinstance(order, dict):
            return order
        kept = {k: v for k, v in order.items() if k not in removed}
        return {**kept, **copy.deepcopy(changes)}

    if route == "list" and isinstance(payload, dict):
        return {**payload, "data": [odd(o) for o in payload.get("data", [])]}
    if route == "history" and isinstance(payload, list):
        return [
            {**block, "orderStatus": [odd(e) for e in block.get("orderStatus", [])]}
            for block in payload
        ]
    return odd(payload)


class OrderNotFound(LookupError):
    """A control request names an order the simulator does not have (HTTP 404)."""


@dataclass(frozen=True)
class PendingDispatch:
    """What orchestration chose for an order received but not yet dispatched (vendor shape):
    written into the order when it reaches ORDER_DISPATCHED."""

    chosen: Estimate
    received: list[Estimate]
    serial: int  # its tracking number's


@dataclass
class Order:
    tenant_id: str
    doc: dict[str, Any]
    scenario: str
    path: tuple[str, ...]
    step: int  # index of the current status on ``path``; -1 when it is off the path
    history: list[dict[str, Any]]
    created_ms: int
    updated_ms: int
    moved_ms: int  # last status change: the clock steps the order step_seconds after it
    dispatch_later: bool = False  # created in the vendor's shape: REQUEST_RECEIVED first
    pending: PendingDispatch | None = None

    @property
    def status(self) -> str:
        return str(self.doc["status"])

    def answered(self, shape: str, *, created: bool = False) -> dict[str, Any]:
        """The order as the API answers it in ``shape``."""
        return answered(self.doc, shape, self.created_ms, created=created)

    def summary(self, shape: str) -> dict[str, Any]:
        return {
            "tenantId": self.tenant_id,
            "orderExternalId": self.doc["orderExternalId"],
            "status": self.status,
            "scenario": self.scenario,
            "path": list(self.path),
            "order": self.answered(shape),
            "statusHistory": copy.deepcopy(self.history),
        }


class ShippingOrdersSimulator:
    """Orders of every tenant, the lifecycle clock, webhooks, faults and counters.

    All state is guarded by ``lock`` (the fault queue and the webhook sender keep their own and
    never wait for it); webhooks are sent by the sender's thread, never under the lock.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.config.ensure_locations()
        self.lock = threading.Lock()
        self.orders: dict[tuple[str, str], Order] = {}
        self.requests: dict[str, int] = dict.fromkeys(API_ROUTES, 0)
        self.rate_limited = 0
        self._recent: dict[str, deque[int]] = {}
        # Not reset by /_sim/reset: ids and tracking numbers stay unique for the process.
        self._serial = itertools.count(1)
        self._machine = os.urandom(5).hex()
        self.faults = FaultQueue(
            FAULT_ROUTES,
            (*API_FAULT_KINDS, *WEBHOOK_FAULT_KINDS),
            route_required=True,
            default_delays=DEFAULT_DELAYS,
            extra_fields=("type", "message", "set", "remove"),
            check=check_fault,
        )
        self.webhooks = WebhookSender()
        self._stopping = threading.Event()
        self._clock: threading.Thread | None = None

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the lifecycle clock and the webhook sender (daemon threads)."""
        self.webhooks.start()
        if self._clock is None:
            self._clock = threading.Thread(
                target=self._run_clock, name="shipping-orders-clock", daemon=True
            )
            self._clock.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._clock is not None:
            self._clock.join(timeout=2)
        self.webhooks.stop()

    def _run_clock(self) -> None:
        while not self._stopping.wait(self._clock_interval()):
            self.tick()

    def _clock_interval(self) -> float:
        step = self.config.step_seconds
        return min(CLOCK_POLL_SECONDS, step) if step > 0 else CLOCK_POLL_SECONDS

    def now_ms(self) -> int:
        moment = self.config.clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)

    # -- the gate: counting, rate limit, authentication ---------------------------------------

    def admit(self, route: str, api_key: str | None) -> ApiError | None:
        """Count a request; 429 when the key went over ``rate_limit_per_second`` in the last
        second (a sliding window; refused requests do not count towards it).

        The real threshold, its unit (key, tenant, IP) and whether a Retry-After header comes
        with the 429 are unknown: this limits per API key and sends no Retry-After."""
        with self.lock:
            self.requests[route] += 1
            limit = self.config.rate_limit_per_second
            if limit is None:
                return None
            now = self.now_ms()
            window = self._recent.setdefault(api_key or "", deque())
            while window and window[0] <= now - 1000:
                window.popleft()
            if len(window) >= limit:
                self.rate_limited += 1
                return too_many_requests()
            window.append(now)
            return None

    def authenticate(self, api_key: str | None, tenant_id: str | None) -> str:
        """The tenant of a request: 403 without a key, 401 for a wrong key or tenantId."""
        if not api_key:
            raise forbidden()
        with self.lock:
            tenant = self.config.accounts.get(api_key)
        if tenant is None:
            raise unauthorized("Invalid Api Key!")
        if tenant_id != tenant:
            raise unauthorized("Invalid tenantId")
        return tenant

    # -- API ----------------------------------------------------------------------------------

    def create(self, tenant: str, body: Any) -> dict[str, Any]:
        check_new_order(body)
        external_id = body["orderExternalId"]
        with self.lock:
            now = self.now_ms()
            location = self._location(tenant, body["locationExternalId"])
            if (tenant, external_id) in self.orders:
                raise route_error("create", "DUPLICATE_ID", self.config.error_spelling)
            delivery_address = self._geocoded(body["deliveryAddress"], "create")
            serial = next(self._serial)
            doc = new_document(
                body,
                order_id=self._new_id(now, serial),
                tenant=tenant,
                delivery_address=delivery_address,
                pickup_address=location.address,
                pickup_contact=location.contact,
                barcode=f"1YT4V9{serial:010d}",
            )
            chosen, received = self._orchestrate("create", location, doc, now)
            later = self.config.shape == "vendor"
            scenario = scenario_of(doc, self.config.scenario)
            order = Order(
                tenant_id=tenant,
                doc=doc,
                scenario=scenario,
                path=scenario_path(scenario, dispatch_later=later),
                step=0,
                history=[],
                created_ms=now,
                updated_ms=now,
                moved_ms=now,
                dispatch_later=later,
            )
            doc["createdAt"] = iso_ms(now)
            if later:  # received now; dispatched when the clock (or advance) gets there
                order.pending = PendingDispatch(chosen, received, serial)
                self._set_status(order, "REQUEST_RECEIVED", now, PLATFORM_USER)
            else:
                apply_dispatch(doc, chosen, received, chosen.provider.tracking_id(serial))
                for status in ("REQUEST_RECEIVED", "ESTIMATES_RECEIVED", "ORDER_DISPATCHED"):
                    self._set_status(order, status, now, PLATFORM_USER)
            order.updated_ms = now
            doc["lastUpdatedAt"] = iso_ms(now)
            self.orders[(tenant, external_id)] = order
            self._notify(order)
            return order.answered(self.config.shape, created=True)

    def get(self, tenant: str, external_id: str) -> dict[str, Any]:
        with self.lock:
            return self._order(tenant, external_id, "get").answered(self.config.shape)

    def edit(self, tenant: str, external_id: str, body: Any) -> dict[str, Any]:
        check_edit(body)
        with self.lock:
            order = self._order(tenant, external_id, "edit")
            now, status = self.now_ms(), order.status
            if status in NO_EDIT:
                raise validation_error(
                    "status", f"Invalid Data: an order in {status} cannot be edited"
                )
            if body.get("orderExternalId") not in (None, external_id):
                raise validation_error(
                    "orderExternalId", "Invalid Data: orderExternalId cannot be changed"
                )
            changes = edit_changes(order.doc, body)
            if status in PICKED_UP and changes.keys() & {"package", "itemList"}:
                raise validation_error(
                    "package", "packages parameter cannot be changed post order dispatch"
                )
            if status in PICKED_UP and "locationExternalId" in changes:
                raise validation_error(
                    "locationExternalId",
                    "Invalid Data: locationExternalId cannot be changed after pickup",
                )
            location = self._location(
                tenant, changes.get("locationExternalId", order.doc["locationExternalId"])
            )
            if "deliveryAddress" in changes:
                changes["deliveryAddress"] = self._geocoded(changes["deliveryAddress"], "edit")
            draft = {**order.doc, **changes}
            redispatch: tuple[Estimate, list[Estimate]] | None = None
            not_yet_picked_up = status in BEFORE_PICKUP or order.pending is not None
            if not_yet_picked_up and changes.keys() & REDISPATCH_FIELDS:
                redispatch = self._orchestrate("edit", location, draft, now)
            # Everything checked: apply.
            order.doc.update(changes)
            if "locationExternalId" in changes:
                order.doc["pickupAddress"] = dict(location.address)
                order.doc["pickupContact"] = dict(location.contact)
            if "orderAttributes" in changes:
                self._set_scenario(order, scenario_of(order.doc, order.scenario))
            if redispatch is not None and order.pending is not None:
                chosen, received = redispatch  # not dispatched yet: dispatched so, later
                order.pending = replace(order.pending, chosen=chosen, received=received)
            elif redispatch is not None:
                chosen, received = redispatch
                same = chosen.provider.name == (order.doc.get("provider") or {}).get("name")
                tracking = None if same else chosen.provider.tracking_id(next(self._serial))
                apply_dispatch(order.doc, chosen, received, tracking)
                if not same and status != "ORDER_DISPATCHED":
                    # A new provider starts over: dispatched, not yet assigned.
                    self._set_status(order, "ORDER_DISPATCHED", now, PLATFORM_USER)
                    order.step = 0
            self._touch(order, now)
            self._notify(order)
            return order.answered(self.config.shape)

    def cancel(self, tenant: str, external_id: str) -> dict[str, Any]:
        spelling = self.config.error_spelling
        with self.lock:
            order = self._order(tenant, external_id, "cancel")
            status = order.status
            if status == "ORDER_CANCELLED":
                raise route_error("cancel", "ORDER_ALREADY_CANCELED", spelling)
            if status in NOT_CANCELLABLE:
                raise route_error("cancel", "CANCELLATION_NOT_ALLOWED", spelling)
            if status in PICKED_UP:
                raise self._cancellation_failed(order)
            now = self.now_ms()
            order.pending = None  # cancelled before dispatch: never dispatched
            self._set_status(order, "ORDER_CANCELLED", now, PLATFORM_USER)
            order.step = -1
            self._notify(order)
            return order.answered(self.config.shape)

    def _cancellation_failed(self, order: Order) -> ApiError:
        """422 ORDER_CANCELLATION_FAILED carrying the delivery provider's own error."""
        provider = PROVIDERS.get((order.doc.get("provider") or {}).get("name", ""))
        carrier = provider.carrier if provider else "Provider"
        code, message = (
            provider.cancel_error
            if provider
            else ("NON_CANCELABLE_DELIVERY", "Delivery is already picked up")
        )
        vendor = self.config.error_spelling == "vendor"
        return ApiError(
            422,  # the vendor's 400 is the app's (``shapes.VENDOR_HTTP_STATUS``)
            "ORDER_CANCELLATION_FAILED",
            "DSP failed to cancel order" if vendor else "Provider failed to cancel order",
            items=[{"provider": carrier, "type": code, "message": message, "code": 400}],
        )

    def retry(self, tenant: str, external_id: str) -> dict[str, Any]:
        with self.lock:
            order = self._order(tenant, external_id, "retry")
            if order.status not in RETRYABLE:
                raise table_error("retry", "INVALID_OPERATION")
            now = self.now_ms()
            location = self._location(tenant, order.doc["locationExternalId"])
            try:
                chosen, received = self._orchestrate("retry", location, order.doc, now)
            except ApiError:
                self._set_status(order, "ESTIMATES_FAILED", now, PLATFORM_USER, retry=True)
                order.step = -1
                self._notify(order)
                raise
            if order.scenario == "failed":
                order.scenario = "delivered"  # a retried dispatch goes through
            order.path, order.step = SCENARIO_PATHS[order.scenario], 0
            order.dispatch_later, order.pending = False, None
            apply_dispatch(
                order.doc, chosen, received, chosen.provider.tracking_id(next(self._serial))
            )
            order.doc["actualPickupTime"] = order.doc["actualDeliveryTime"] = None
            self._set_status(order, "ESTIMATES_RECEIVED", now, PLATFORM_USER, retry=True)
            self._set_status(order, "ORDER_DISPATCHED", now, PLATFORM_USER, retry=True)
            self._notify(order)
            return order.answered(self.config.shape)

    def status_history(self, tenant: str, external_id: str) -> list[dict[str, Any]]:
        """The seed lists no 404 for this route: an unknown order answers ``[]``."""
        with self.lock:
            order = self.orders.get((tenant, external_id))
            if order is None:
                return []
            return [
                {
                    "orderId": order.doc["id"],
                    "tenantId": tenant,
                    "orderStatus": copy.deepcopy(order.history),
                    "trackingUrl": (order.doc.get("referenceLinks") or {}).get("trackingUrl"),
                }
            ]

    def list_orders(self, tenant: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise invalid_data("Invalid Data: the request body must be a JSON object")
        with self.lock:
            now = self.now_ms()
            request = parse_list_request(body, tenant, now)
            listed = [
                Listed((order.updated_ms, order.doc["id"]), order.created_ms, order.doc)
                for (owner, _), order in self.orders.items()
                if owner == tenant
            ]
            shape = self.config.shape
            return run_list(
                request, tenant, listed, now, lambda o: answered(o.document, shape, o.created_ms)
            )

    # -- lifecycle ----------------------------------------------------------------------------

    def tick(self) -> int:
        """Move every order whose last change is ``step_seconds`` old one step; how many moved."""
        with self.lock:
            step_ms = self.config.step_seconds * 1000
            if step_ms <= 0:
                return 0
            now = self.now_ms()
            return sum(
                1
                for order in self.orders.values()
                if now - order.moved_ms >= step_ms and self._step(order, now)
            )

    def advance(
        self, external_id: str, tenant: str | None, to: str | None, force: bool
    ) -> dict[str, Any]:
        """One step now; or steps along the order's path up to ``to``; or, with ``force``, set
        ``to`` whatever the path (off the path the clock leaves the order alone)."""
        with self.lock:
            order = self._control_order(external_id, tenant)
            now = self.now_ms()
            if to is None:
                if not self._step(order, now):
                    raise InvalidRequest(
                        f"order {external_id} is {order.status}: no further step on its "
                        f"{order.scenario} path"
                    )
            elif force:
                if to not in STATUSES:
                    raise InvalidRequest(f"to must be one of {list(STATUSES)}")
                self._set_status(order, to, now, self._provider_user(order))
                order.step = order.path.index(to) if to in order.path else -1
                self._notify(order)
            else:
                ahead = [
                    i for i in range(max(order.step, 0) + 1, len(order.path)) if order.path[i] == to
                ]
                if order.step < 0 or order.status in TERMINAL or not ahead:
                    raise InvalidRequest(
                        f"{to} is not ahead of {order.status} on the {order.scenario} path "
                        f"{list(order.path)} (use force to set any status)"
                    )
                while order.step < ahead[0]:
                    self._step(order, now)
            return order.answered(self.config.shape)

    def _step(self, order: Order, now: int) -> bool:
        if order.status in TERMINAL or order.step < 0 or order.step >= len(order.path) - 1:
            return False
        order.step += 1
        self._set_status(order, order.path[order.step], now, self._provider_user(order))
        self._notify(order)
        return True

    @staticmethod
    def _provider_user(order: Order) -> str:
        provider = order.doc.get("provider") or {}
        return str(provider.get("displayName") or PLATFORM_USER)

    def _set_status(
        self, order: Order, status: str, now: int, user: str, *, retry: bool = False
    ) -> None:
        if status == "ORDER_DISPATCHED" and order.pending is not None:
            pending, order.pending = order.pending, None
            tracking = pending.chosen.provider.tracking_id(pending.serial)
            apply_dispatch(order.doc, pending.chosen, pending.received, tracking)
        order.doc["status"] = status
        order.history.append(history_entry(status, now, user, retry=retry))
        order.moved_ms = now
        if status == "PICKUP_COMPLETED":
            order.doc["actualPickupTime"] = now
        if status == "ORDER_DELIVERED":
            order.doc["actualDeliveryTime"] = now
        self._touch(order, now)

    @staticmethod
    def _touch(order: Order, now: int) -> None:
        """Move lastUpdatedAt: never backwards and never twice the same, so every change moves
        the order forward in the list's (lastUpdatedAt, id) order."""
        order.updated_ms = max(now, order.updated_ms + 1)
        order.doc["lastUpdatedAt"] = iso_ms(order.updated_ms)

    @staticmethod
    def _set_scenario(order: Order, scenario: str) -> None:
        if scenario != order.scenario:
            order.scenario = scenario
            order.path = scenario_path(scenario, dispatch_later=order.dispatch_later)
            order.step = order.path.index(order.status) if order.status in order.path else -1

    def _notify(self, order: Order) -> None:
        """Queue the webhook of the order's current state (call with the lock held)."""
        url = self.config.webhook_url
        if url is None:
            return
        payload = order.answered(self.config.shape)
        payload["storeExternalId"] = order.doc["locationExternalId"]
        self.webhooks.submit(
            order_external_id=order.doc["orderExternalId"],
            status=order.status,
            payload=payload,
            url=url,
            secret=self.config.webhook_secret,
            retry_delays=self.config.webhook_retry_delays,
            timeout=self.config.webhook_timeout_seconds,
            fault=self.faults.take("webhook"),
        )

    # -- helpers (lock held) ------------------------------------------------------------------

    def _order(self, tenant: str, external_id: str, route: str) -> Order:
        if len(external_id) > MAX_ID_LENGTH and route in ("get", "retry"):
            raise table_error(route, "INVALID_DATA")  # "Invalid Order Id" (422)
        order = self.orders.get((tenant, external_id))
        if order is None:
            raise not_found(route, external_id)
        return order

    def _location(self, tenant: str, external_id: str) -> Location:
        location = self.config.locations.get(tenant, {}).get(external_id)
        if location is None:
            raise ApiError(422, "INVALID_DATA", UNKNOWN_LOCATION)
        return location

    def _geocoded(self, address: Mapping[str, Any], route: str) -> dict[str, Any]:
        try:
            return with_coordinates(address)
        except OrchestrationError as exc:
            raise orchestration_error(route, exc, self.config.error_spelling) from exc

    def _orchestrate(
        self, route: str, location: Location, doc: Mapping[str, Any], now: int
    ) -> tuple[Estimate, list[Estimate]]:
        try:
            return orchestrate(location.rules, shipment_of(doc, location.address), now)
        except OrchestrationError as exc:
            raise orchestration_error(route, exc, self.config.error_spelling) from exc

    def _new_id(self, now: int, serial: int) -> str:
        """24 hex digits like a MongoDB ObjectId: seconds, a per-process part, a counter."""
        return f"{now // 1000 & 0xFFFFFFFF:08x}{self._machine}{serial & 0xFFFFFF:06x}"

    def _control_order(self, external_id: str, tenant: str | None) -> Order:
        for (owner, order_id), order in self.orders.items():
            if order_id == external_id and tenant in (None, owner):
                return order
        raise OrderNotFound(f"no order {external_id}" + (f" of tenant {tenant}" if tenant else ""))

    # -- control ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget orders, counters, faults and the webhook log; the settings stay."""
        with self.lock:
            self.orders.clear()
            self.requests = dict.fromkeys(API_ROUTES, 0)
            self.rate_limited = 0
            self._recent.clear()
        self.faults.clear()
        self.webhooks.reset()

    def orders_report(self, tenant: str | None) -> dict[str, Any]:
        with self.lock:
            orders = [
                order.summary(self.config.shape)
                for (owner, _), order in self.orders.items()
                if tenant in (None, owner)
            ]
        return {"orders": orders, "count": len(orders)}

    def order_report(self, external_id: str, tenant: str | None) -> dict[str, Any]:
        with self.lock:
            return self._control_order(external_id, tenant).summary(self.config.shape)

    def requests_report(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "total": sum(self.requests.values()),
                "rate_limited": self.rate_limited,
            }

    def locations_report(self) -> dict[str, Any]:
        with self.lock:
            return {"locations": self._config_report()["locations"]}

    def update_location(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            tenant, location = location_from_json(payload, self.config)
            self.config.locations.setdefault(tenant, {})[location.external_id] = location
            return location.to_json(tenant)

    def config_report(self) -> dict[str, Any]:
        with self.lock:
            return self._config_report()

    def _config_report(self) -> dict[str, Any]:
        locations = [
            location.to_json(tenant)
            for tenant, by_id in self.config.locations.items()
            for location in by_id.values()
        ]
        return {**self.config.report(), "locations": locations}

    def update_config(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Settings, and ``locations`` (a list of ``/_sim/locations`` objects); all or nothing."""
        changes = config_changes_from_json(payload)
        entries = payload.get("locations", [])
        if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
            raise InvalidRequest("locations must be a list of location objects")
        with self.lock:
            staged = [location_from_json(entry, self.config) for entry in entries]
            for name, value in changes.items():
                setattr(self.config, name, value)
            for tenant, location in staged:
                self.config.locations.setdefault(tenant, {})[location.external_id] = location
            self.config.ensure_locations()
            return self._config_report()
