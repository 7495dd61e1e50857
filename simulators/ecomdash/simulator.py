"""The ecomdash simulator's state and rules (see the package docstring)."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from simulators.kit import FaultQueue, InvalidRequest

ROUTE = "submitTrackingInfo"
FAULT_KINDS = ("http_500", "rate_limited", "concurrency", "slow", "lost_answer")
MISSING_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key "
    "when making requests to an API."
)
INVALID_KEY = (
    "Access denied due to invalid subscription key. Make sure to provide a valid key for an "
    "active subscription."
)
FORBIDDEN = (
    "The provided 'ecd-subscription-key' / 'application-id' combination is not valid or does "
    "not belong to a company with a current ecomdash subscription."
)
OOPS = "Oops, something went wrong while processing your request"
TOO_MANY_AT_ONCE = "Too many concurrent requests for this account and operation."


@dataclass
class SimulatorConfig:
    base_path: str = "/api"
    call_seconds: float = 0.05
    rate_limit: int = 120
    rate_window_seconds: float = 60.0
    max_concurrent: int = 3
    subscription_keys: list[str] = field(default_factory=lambda: ["demo-apim-key"])

    def copy(self) -> SimulatorConfig:
        return SimulatorConfig(**{f.name: getattr(self, f.name) for f in fields(self)})


def config_from_env(env: Mapping[str, str]) -> SimulatorConfig:
    config = SimulatorConfig()
    numbers = {
        "ECOMDASH_SIM_CALL_SECONDS": ("call_seconds", float),
        "ECOMDASH_SIM_RATE_LIMIT": ("rate_limit", int),
        "ECOMDASH_SIM_RATE_WINDOW_SECONDS": ("rate_window_seconds", float),
        "ECOMDASH_SIM_MAX_CONCURRENT": ("max_concurrent", int),
    }
    for variable, (name, kind) in numbers.items():
        if env.get(variable):
            setattr(config, name, kind(env[variable]))
    if env.get("ECOMDASH_SIM_SUBSCRIPTION_KEYS"):
        config.subscription_keys = [
            k.strip() for k in env["ECOMDASH_SIM_SUBSCRIPTION_KEYS"].split(",") if k.strip()
        ]
    if env.get("ECOMDASH_SIM_BASE_PATH") is not None:
        config.base_path = env["ECOMDASH_SIM_BASE_PATH"]
    return config


@dataclass
class Account:
    name: str
    active: bool = True
    shipments: dict[int, set[int]] = field(default_factory=dict)  # ShipmentId -> line items
    carriers: dict[int, str] = field(default_factory=lambda: {1: "UPS", 2: "FedEx", 3: "USPS"})


class Refusal(Exception):
    """An answer other than 200: status, JSON body, headers."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, dict(headers or {})


def whole(value: Any) -> int | None:
    """20405, 20405.0, "20405" -> 20405; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


class EcomdashSimulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.faults = FaultQueue([ROUTE], FAULT_KINDS, extra_fields=["retry_after"])
        self.reset()

    # -- control ----------------------------------------------------------------------------
    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            demo = Account("demo")
            for shipment in (20404, 20405):
                demo.shipments[shipment] = {shipment * 10 + 1, shipment * 10 + 2}
            self.accounts: dict[str, Account] = {
                "demo-ecd-key": demo,
                "lapsed-ecd-key": Account("lapsed", active=False),
            }
            self.calls_at: dict[str, deque[float]] = {}
            self.in_flight: Counter[str] = Counter()
            self.max_concurrency = 0
            self.calls = 0
            self.answered: Counter[str] = Counter()
            self.tracking: list[dict[str, Any]] = []
            self.batch = 0
        self.faults.clear()

    def config_report(self) -> dict[str, Any]:
        return {f.name: getattr(self.config, f.name) for f in fields(self.config)}

    def update_config(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        kinds = {"call_seconds": float, "rate_window_seconds": float}
        for name, value in payload.items():
            if name in ("rate_limit", "max_concurrent"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise InvalidRequest(f"{name} must be an integer >= 1")
                setattr(self.config, name, value)
            elif name in kinds:
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise InvalidRequest(f"{name} must be a number >= 0")
                setattr(self.config, name, float(value))
            elif name == "subscription_keys":
                if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
                    raise InvalidRequest("subscription_keys must be a list of strings")
                self.config.subscription_keys = list(value)
            else:
                raise InvalidRequest(f"unknown setting {name!r}")
        return self.config_report()

    def set_account(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        key = payload.get("ecd_key")
        if not isinstance(key, str) or not key:
            raise InvalidRequest("ecd_key is required")
        with self.lock:
            account = self.accounts.setdefault(key, Account(str(payload.get("name") or key[:8])))
            if "active" in payload:
                account.active = bool(payload["active"])
            return {"name": account.name, "active": account.active}

    def add_shipments(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        key, first, count = payload.get("ecd_key"), payload.get("first"), payload.get("count")
        items = payload.get("items", 2)
        if not isinstance(key, str) or key not in self.accounts:
            raise InvalidRequest("ecd_key must name an account")
        for name, value in (("first", first), ("count", count), ("items", items)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidRequest(f"{name} must be an integer >= 0")
        with self.lock:
            shipments = self.accounts[key].shipments
            for shipment in range(first, first + count):
                shipments[shipment] = {shipment * 10 + i for i in range(1, items + 1)}
        return {"created": count}

    def tracking_report(self, shipment: int | None = None) -> dict[str, Any]:
        with self.lock:
            taken = [t for t in self.tracking if shipment is None or t["ShipmentId"] == shipment]
        return {"tracking": taken}

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": self.calls,
                "answered": dict(self.answered),
                "records": len(self.tracking),
                "max_concurrency": self.max_concurrency,
                "in_flight": sum(self.in_flight.values()),
            }

    # -- the API ----------------------------------------------------------------------------
    def admit(self, gateway_key: str | None, ecd_key: str | None) -> str:
        """Steps 1-3: the gateway's key, the rate and the concurrency; the account's slot is
        taken (``finish`` gives it back). Raises Refusal."""
        if not gateway_key:
            raise Refusal(401, {"statusCode": 401, "message": MISSING_KEY})
        if gateway_key not in self.config.subscription_keys:
            raise Refusal(401, {"statusCode": 401, "message": INVALID_KEY})
        account = ecd_key or ""
        now = time.time()
        with self.lock:
            self.calls += 1
            window = self.calls_at.setdefault(account, deque())
            while window and window[0] <= now - self.config.rate_window_seconds:
                window.popleft()
            if len(window) >= self.config.rate_limit:
                wait = max(1, math.ceil(window[0] + self.config.rate_window_seconds - now))
                raise Refusal(
                    429,
                    {
                        "statusCode": 429,
                        "message": f"Rate limit is exceeded. Try again in {wait} seconds.",
                    },
                    {"Retry-After": str(wait)},
                )
            window.append(now)
            if self.in_flight[account] >= self.config.max_concurrent:
                raise Refusal(429, {"Message": TOO_MANY_AT_ONCE})
            self.in_flight[account] += 1
            self.max_concurrency = max(self.max_concurrency, self.in_flight[account])
        return account

    def finish(self, account: str, status: int) -> None:
        with self.lock:
            self.in_flight[account] -= 1
            self.answered[str(status)] += 1

    def count(self, status: int) -> None:
        with self.lock:
            self.answered[str(status)] += 1

    def account(self, ecd_key: str) -> Account:
        with self.lock:
            found = self.accounts.get(ecd_key) if ecd_key else None
        if found is None or not found.active:
            raise Refusal(403, {"Message": FORBIDDEN})
        return found

    def submit(self, account: Account, body: Any) -> dict[str, Any]:
        if not isinstance(body, list):
            raise Refusal(400, {"Message": "The request is invalid."})
        with self.lock:
            self.batch += 1
            data = [self._record(account, record, self.batch) for record in body]
        found = sum(1 for d in data if d["WasSuccessful"])
        return {
            "status": "Success",
            "messages": [f"Found {found} shipments associated with this request"],
            "pagination": None,
            "data": data,
        }

    def _record(self, account: Account, record: Any, call: int) -> dict[str, Any]:
        if not isinstance(record, Mapping):
            return {"Request": record, "WasSuccessful": False, "Messages": ["Invalid record."]}
        echo = _echo(record)
        problems = self._problems(account, record, echo)
        if problems:
            return {"Request": echo, "WasSuccessful": False, "Messages": problems}
        self.tracking.append({"account": account.name, **echo, "call": call})
        return {"Request": echo, "WasSuccessful": True, "Messages": None}

    def _problems(
        self, account: Account, record: Mapping[str, Any], echo: Mapping[str, Any]
    ) -> list[str]:
        shipment = echo["ShipmentId"]
        if shipment is None:
            return ["ShipmentId is required."]
        if shipment not in account.shipments:
            return [f"Shipment {record.get('ShipmentId')} was not found."]
        problems: list[str] = []
        carriers = [echo["CarrierId"], *(i.get("CarrierId") for i in echo["LineItems"])]
        if record.get("CarrierId") is not None and echo["CarrierId"] is None:
            problems.append("CarrierId is not a valid number.")
        for carrier in carriers:
            if carrier is not None and carrier not in account.carriers:
                problems.append(f"Carrier {carrier} was not found.")
        items = echo["LineItems"]
        if not items and not echo.get("TrackingNumber"):
            problems.append("TrackingNumber is required when LineItems are not provided.")
        for item in items:
            item_id = item.get("LineItemId")
            if item_id not in account.shipments[shipment]:
                problems.append(f"LineItem {item_id} was not found on shipment {shipment}.")
            elif not item.get("TrackingNumber") and not echo.get("TrackingNumber"):
                problems.append(f"TrackingNumber is required for LineItem {item_id}.")
        for name in ("ShippedDate", "EstimatedDeliveryDate"):
            value = echo.get(name)
            if value is not None and not _is_date(value):
                problems.append(f"{name} is not a valid date.")
        return problems


def _echo(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as ecomdash echoes it in ``Request``: ids as integers."""
    items = record.get("LineItems") if isinstance(record.get("LineItems"), list) else []
    return {
        "ShipmentId": whole(record.get("ShipmentId")),
        "CarrierId": whole(record.get("CarrierId")),
        "TrackingNumber": record.get("TrackingNumber"),
        "TrackingURL": record.get("TrackingURL"),
        "ShippedDate": record.get("ShippedDate"),
        "EstimatedDeliveryDate": record.get("EstimatedDeliveryDate"),
        "LineItems": [
            {
                "LineItemId": whole(i.get("LineItemId")),
                "CarrierId": whole(i.get("CarrierId")),
                "TrackingNumber": i.get("TrackingNumber"),
                "TrackingURL": i.get("TrackingURL"),
            }
            for i in items
            if isinstance(i, Mapping)
        ],
    }


def _is_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True
