"""The Spectrum simulator's state and behaviour (HTTP lives in ``app``)."""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulators.kit import FaultQueue, InvalidRequest
from simulators.spectrum.config import (
    SimulatorConfig,
    config_changes_from_json,
    recipe_set_ids,
)

ROUTE = "ship_notification"
FAULT_KINDS = ("http_500", "slow", "lost_answer", "forbidden")
DEFAULT_DELAYS = {"slow": 2.0}
TOKEN_HEADER = "SPECTRUM_API_TOKEN"
# The real 403 body is not documented; throttling and a bad token answer the same one, as
# Spectrum's do (providers.md: indistinguishable).
FORBIDDEN_BODY: dict[str, Any] = {"message": "Forbidden"}


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


def status_body(po: Any, status: str, details: str) -> dict[str, Any]:
    """Spectrum's ``ShipNotificationStatus``."""
    return {"purchaseOrderNumber": po, "status": status, "details": details}


class SpectrumSimulator:
    """Purchase orders and their recipe sets, the rate window, the notifications taken."""

    def __init__(
        self, config: SimulatorConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = copy.deepcopy(config or SimulatorConfig())
        self.clock = clock
        self.lock = threading.Lock()
        self.faults = FaultQueue((ROUTE,), FAULT_KINDS, default_delays=DEFAULT_DELAYS)
        self._reset_state()

    def _reset_state(self) -> None:
        # PO -> recipe set -> what was last set on it (None: no tracking yet).
        self.orders: dict[str, dict[str, dict[str, Any] | None]] = {
            po: dict.fromkeys(ids) for po, ids in self.config.orders.items()
        }
        self.notifications: list[dict[str, Any]] = []
        self.window: deque[float] = deque()
        self.counts: Counter[str] = Counter()

    # ----------------------------------------------------------------------------------------
    # Control

    def reset(self) -> None:
        with self.lock:
            self._reset_state()
        self.faults.clear()

    def config_report(self) -> dict[str, Any]:
        with self.lock:
            return self.config.report()

    def update_config(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        changes = config_changes_from_json(payload)
        with self.lock:
            for key, value in changes.items():
                setattr(self.config, key, value)
            if "orders" in changes:  # the orders become these, their tracking kept
                self.orders = {
                    po: {i: self.orders.get(po, {}).get(i) for i in ids}
                    for po, ids in changes["orders"].items()
                }
            return self.config.report()

    def add_order(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``{"purchaseOrderNumber", "recipeSetReadableIds": [...]}``: an order, or more recipe
        sets on one already there."""
        po = payload.get("purchaseOrderNumber")
        ids = recipe_set_ids(po, payload.get("recipeSetReadableIds"))
        with self.lock:
            order = self.orders.setdefault(str(po), {})
            for recipe_set in ids:
                order.setdefault(recipe_set, None)
            return {"purchaseOrderNumber": po, "recipeSets": copy.deepcopy(order)}

    def orders_report(self) -> dict[str, Any]:
        with self.lock:
            return {"orders": copy.deepcopy(self.orders)}

    def notifications_report(self, po: str | None = None) -> dict[str, Any]:
        with self.lock:
            taken = [n for n in self.notifications if po is None or n["purchaseOrderNumber"] == po]
            return {"notifications": copy.deepcopy(taken)}

    def requests_report(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": dict(self.counts)}

    # ----------------------------------------------------------------------------------------
    # The API

    def admit(self, headers: Sequence[tuple[str, str]] | None) -> Reply | None:
        """The gateway: the rate window (every request that is not throttled counts), then the
        token, read only from a header named ``SPECTRUM_API_TOKEN`` with its underscores
        (``headers`` are the raw header lines; None when the server did not keep them, and then
        no token can be told apart). A 403 either way, the same body; None when admitted."""
        with self.lock:
            self.counts["received"] += 1
            now = self.clock()
            while self.window and self.window[0] <= now - self.config.rate_window_seconds:
                self.window.popleft()
            if len(self.window) >= self.config.rate_limit:
                self.counts["throttled"] += 1
                return Reply(403, dict(FORBIDDEN_BODY))
            self.window.append(now)
            token = token_of(headers or ())
            if token is None or token not in self.config.tokens:
                self.counts["forbidden"] += 1
                if token is None and any(dashed(name) for name, _ in headers or ()):
                    self.counts["dashed_token_header"] += 1
                return Reply(403, dict(FORBIDDEN_BODY))
            return None

    def ship_notification(self, body: Any) -> Reply:
        """All or nothing: every line item's recipe set must be in the purchase order, else
        409 (or 404, ``unknown_status``) naming the unknown ones and nothing is updated."""
        try:
            po, lines = parse_notification(body)
        except InvalidRequest as exc:
            self._count("invalid")
            po = body.get("purchaseOrderNumber") if isinstance(body, Mapping) else None
            return Reply(400, status_body(po, "Error", str(exc)))
        with self.lock:
            order = self.orders.get(po, {})
            unknown = [line["recipeSetReadableId"] for line in lines]
            unknown = list(dict.fromkeys(i for i in unknown if i not in order))
            if unknown:
                self.counts["unknown"] += 1
                details = f"Unable to find recipeSetReadableId(s): {', '.join(unknown)}."
                return Reply(self.config.unknown_status, status_body(po, "Error", details))
            for line in lines:
                order[line["recipeSetReadableId"]] = {
                    "shipmentTracking": line["shipmentTracking"],
                    "serialNumbers": list(line.get("serialNumbers") or []),
                }
            self.notifications.append(
                {"purchaseOrderNumber": po, "lineItems": copy.deepcopy(lines), "at": time.time()}
            )
            self.counts["accepted"] += 1
        updated = ", ".join(dict.fromkeys(line["recipeSetReadableId"] for line in lines))
        details = f"Updated tracking number for recipeSetReadableId(s): {updated}."
        return Reply(200, status_body(po, "OK", details))

    def internal_error(self, po: Any) -> Reply:
        self._count("internal_errors")
        details = f"Ship Notification processing for {po} encountered an error."
        return Reply(500, status_body(po, "Error", details))

    def throttled_by_fault(self) -> Reply:
        self._count("throttled")
        return Reply(403, dict(FORBIDDEN_BODY))

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1


def token_of(headers: Sequence[tuple[str, str]]) -> str | None:
    """The value of the ``SPECTRUM_API_TOKEN`` header, spelt with underscores (any case)."""
    return next((v for n, v in headers if n.strip().upper() == TOKEN_HEADER), None)


def dashed(name: str) -> bool:
    return name.strip().upper() == TOKEN_HEADER.replace("_", "-")


def parse_notification(body: Any) -> tuple[str, list[dict[str, Any]]]:
    """The purchase order and line items of a request body; InvalidRequest naming what is
    wrong (the real API's answer to a malformed body is not documented: 400 here)."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("The request body must be a JSON object.")
    po = body.get("purchaseOrderNumber")
    if not isinstance(po, str) or not po.strip():
        raise InvalidRequest("purchaseOrderNumber is required.")
    lines = body.get("lineItems")
    if not isinstance(lines, list) or not lines:
        raise InvalidRequest("lineItems is required and must not be empty.")
    for at, line in enumerate(lines):
        if not isinstance(line, Mapping):
            raise InvalidRequest(f"lineItems[{at}] must be an object.")
        for name in ("recipeSetReadableId", "shipmentTracking"):
            if not isinstance(line.get(name), str) or not line[name].strip():
                raise InvalidRequest(f"lineItems[{at}].{name} is required.")
        serials = line.get("serialNumbers")
        if serials is not None and (
            not isinstance(serials, list) or not all(isinstance(s, str) for s in serials)
        ):
            raise InvalidRequest(f"lineItems[{at}].serialNumbers must be a list of strings.")
    return po, [dict(line) for line in lines]
