"""The Duoplane simulator's state: API users, their leaky buckets, carriers, purchase orders
with order items, and shipments; all in memory under one lock."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from simulators.kit import Fault, FaultQueue, InvalidRequest, non_negative_number

ROUTES = ("list", "create", "update")
FAULT_KINDS = ("http_500", "slow", "lost_answer", "rate_limited")
DEFAULT_ACCOUNTS = "demo-dp-key:demo-dp-password"
MAX_PER_PAGE = 250
REQUEST_LOG = 20000

# The seed's carrier table, then a few more a retailer's account might hold (our choice).
SEED_CARRIERS: tuple[tuple[int, str, str | None], ...] = (
    (1, "UPS", "UPSN"),
    (2, "FedEx", "FEDX"),
    (17, "US Postal", "USPS"),
    (395, "DHL eCommerce", None),
)
EXTRA_CARRIERS: tuple[tuple[int, str, str | None], ...] = (
    (9, "OnTrac", "EMSY"),
    (31, "Canada Post", None),
)
# Purchase orders present after start and reset: the seed's sample (987654, items 239417 and
# 239418), and two more.
SEED_PURCHASE_ORDERS: tuple[dict[str, Any], ...] = (
    {
        "id": 987654,
        "public_reference": "1001-1",
        "order_items": [
            {"id": 239417, "name": "Blue Mug", "sku": "MUG-BLUE", "quantity": 1},
            {"id": 239418, "name": "Red Plate", "sku": "PLATE-RED", "quantity": 2},
        ],
    },
    {
        "id": 987655,
        "public_reference": "1002-1",
        "order_items": [
            {"id": 239419, "name": "Tea Towel", "sku": "TOWEL-01", "quantity": 3},
            {"id": 239420, "name": "Apron", "sku": "APRON-01", "quantity": 1},
        ],
    },
    {
        "id": 987656,
        "public_reference": "1003-1",
        "order_items": [{"id": 239421, "name": "Teapot", "sku": "POT-01", "quantity": 1}],
    },
)
Clock = Callable[[], float]


class ApiError(Exception):
    """An answer other than success: its status and body (and headers)."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def time_text(moment: float) -> str:
    """Duoplane's times: UTC, ISO 8601 with milliseconds and ``Z``."""
    text = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@dataclass
class LeakyBucket:
    """One API user's bucket: each request adds one; it drains ``per_second``. A request that
    finds it full is refused and still adds one (up to twice the capacity): requests made while
    limited lengthen the wait."""

    level: float = 0.0
    at: float = 0.0

    def drain(self, now: float, per_second: float) -> None:
        self.level = max(0.0, self.level - (now - self.at) * per_second)
        self.at = now

    def wait(self, capacity: float, per_second: float) -> float:
        """Seconds until one more request fits."""
        return max(0.0, (self.level + 1 - capacity) / per_second)


@dataclass
class Config:
    accounts: dict[str, str]
    rate_capacity: float = 40.0
    rate_per_second: float = 2.0
    time_zone: str = "America/New_York"  # the API user's zone: times without offset
    error_format: str = "object"  # {"errors": {...}} or "list": {"errors": [...]}
    carriers: list[tuple[int, str, str | None]] = field(
        default_factory=lambda: [*SEED_CARRIERS, *EXTRA_CARRIERS]
    )

    def report(self) -> dict[str, Any]:
        return {
            "accounts": sorted(self.accounts),
            "rate_capacity": self.rate_capacity,
            "rate_per_second": self.rate_per_second,
            "time_zone": self.time_zone,
            "error_format": self.error_format,
            "carriers": [{"id": i, "name": n, "scac": s} for i, n, s in self.carriers],
        }


def parse_accounts(raw: str) -> dict[str, str]:
    accounts = {}
    for pair in raw.split(","):
        key, sep, password = pair.strip().partition(":")
        if not sep or not key or not password:
            raise ValueError("accounts are key:password pairs separated by commas")
        accounts[key] = password
    return accounts


def config_from_env(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    config = Config(parse_accounts(env.get("DUOPLANE_SIM_ACCOUNTS") or DEFAULT_ACCOUNTS))
    if env.get("DUOPLANE_SIM_RATE_CAPACITY"):
        config.rate_capacity = float(env["DUOPLANE_SIM_RATE_CAPACITY"])
    if env.get("DUOPLANE_SIM_RATE_PER_SECOND"):
        config.rate_per_second = float(env["DUOPLANE_SIM_RATE_PER_SECOND"])
    if env.get("DUOPLANE_SIM_TIME_ZONE"):
        config.time_zone = env["DUOPLANE_SIM_TIME_ZONE"]
    if env.get("DUOPLANE_SIM_ERROR_FORMAT"):
        config.error_format = env["DUOPLANE_SIM_ERROR_FORMAT"]
    return config


class DuoplaneSimulator:
    def __init__(self, config: Config | None = None, clock: Clock = time.time) -> None:
        self.config = config or config_from_env()
        self.clock = clock
        self.lock = threading.RLock()
        self.faults = FaultQueue(
            ROUTES,
            FAULT_KINDS,
            default_delays={"slow": 5.0},
            extra_fields=("retry_after_seconds",),
        )
        self.reset()

    # -- kit protocol ----------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.buckets: dict[str, LeakyBucket] = {}
            self.shipments: dict[int, dict[str, Any]] = {}
            self.purchase_orders: dict[int, dict[str, Any]] = {}
            self.next_shipment_id = 500001
            self.next_line_id = 700001
            self.next_order_item_id = 300001
            self.requests: Counter[str] = Counter()
            self.statuses: Counter[int] = Counter()
            self.log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG)
            for order in SEED_PURCHASE_ORDERS:
                self.add_purchase_order(order)
            self.faults.clear()

    def config_report(self) -> dict[str, Any]:
        with self.lock:
            return self.config.report()

    def update_config(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            for name in ("rate_capacity", "rate_per_second"):
                if name in payload:
                    value = non_negative_number(payload, name)
                    if value <= 0:
                        raise InvalidRequest(f"{name} must be > 0")
                    setattr(self.config, name, value)
            if "accounts" in payload:
                accounts = payload["accounts"]
                if not isinstance(accounts, Mapping) or not accounts:
                    raise InvalidRequest("accounts must be an object {api_key: password}")
                self.config.accounts = {str(k): str(v) for k, v in accounts.items()}
            if "time_zone" in payload:
                try:
                    ZoneInfo(str(payload["time_zone"]))
                except (ZoneInfoNotFoundError, ValueError):
                    raise InvalidRequest("time_zone must be an IANA zone") from None
                self.config.time_zone = str(payload["time_zone"])
            if "error_format" in payload:
                if payload["error_format"] not in ("object", "list"):
                    raise InvalidRequest("error_format must be 'object' or 'list'")
                self.config.error_format = payload["error_format"]
            if "carriers" in payload:
                self.config.carriers = [*SEED_CARRIERS, *_carriers(payload["carriers"])]
            return self.config.report()

    # -- auth and rate --------------------------------------------------------------------

    def authenticate(self, user: str | None, password: str | None) -> str:
        with self.lock:
            if user is None or self.config.accounts.get(user) != password:
                raise ApiError(
                    401,
                    "HTTP Basic: Access denied.\n",
                    {"WWW-Authenticate": 'Basic realm="Application"'},
                )
            return user

    def admit(self, user: str) -> float:
        """Count one request in the user's bucket; the seconds it must wait before the next
        (sent as Duoplane-Retry-After-Seconds). ApiError 429 when the bucket is full."""
        with self.lock:
            now = self.clock()
            bucket = self.buckets.setdefault(user, LeakyBucket(at=now))
            capacity, rate = self.config.rate_capacity, self.config.rate_per_second
            bucket.drain(now, rate)
            if bucket.level + 1 > capacity:
                bucket.level = min(bucket.level + 1, 2 * capacity)
                wait = retry_after_text(bucket.wait(capacity, rate))
                raise ApiError(
                    429,
                    {"errors": [f"Rate limit exceeded. Retry in {wait} seconds."]},
                    {"Duoplane-Retry-After-Seconds": wait},
                )
            bucket.level += 1
            return bucket.wait(capacity, rate)

    def arrive(self, route: str) -> float:
        """Count a request as it arrives (a slow one is seen before it is answered)."""
        with self.lock:
            self.requests[route] += 1
            return self.clock()

    def record(self, route: str, status: int, arrived: float) -> None:
        """Log a request once answered: its route, status and arrival time."""
        with self.lock:
            self.statuses[status] += 1
            self.log.append({"route": route, "status": status, "at": arrived})

    # -- purchase orders ------------------------------------------------------------------

    def add_purchase_order(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            items = payload.get("order_items") or []
            if not isinstance(items, list) or not items:
                raise InvalidRequest("order_items must be a non-empty list")
            po_id = payload.get("id") or max(self.purchase_orders, default=987653) + 1
            if not isinstance(po_id, int) or isinstance(po_id, bool) or po_id < 1:
                raise InvalidRequest("id must be a positive integer")
            order = {
                "id": po_id,
                "public_reference": str(payload.get("public_reference") or f"{po_id}-1"),
                "order_items": [self._order_item(item) for item in items],
            }
            self.purchase_orders[po_id] = order
            return order

    def _order_item(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, Mapping):
            raise InvalidRequest("each order item must be an object")
        item_id = item.get("id")
        if item_id is None:
            item_id = self.next_order_item_id
            self.next_order_item_id += 1
        return {
            "id": int(item_id),
            "name": str(item.get("name") or f"Item {item_id}"),
            "sku": str(item.get("sku") or f"SKU-{item_id}"),
            "quantity": int(item.get("quantity") or 1),
            "cost": str(item.get("cost") or "10.0"),
        }

    # -- shipments ------------------------------------------------------------------------

    def create_shipment(self, po_id: int, payload: Any) -> dict[str, Any]:
        """A new shipment on the purchase order (a repeated request makes another one, as the
        real API does: nothing here checks for duplicates or over-shipping)."""
        with self.lock:
            order = self.purchase_orders.get(po_id)
            if order is None:
                raise ApiError(404, {"errors": [f"Purchase order {po_id} not found"]})
            fields = payload.get("shipment") if isinstance(payload, Mapping) else None
            if not isinstance(fields, Mapping):
                raise self._invalid({"shipment": ['is missing: send {"shipment": {...}}']})
            problems: dict[str, list[str]] = {}
            carrier = self._carrier(fields, problems)
            lines = self._lines(order, fields.get("shipment_items_attributes"), problems)
            trackings = self._trackings(fields.get("shipment_trackings_attributes"), problems)
            if problems:
                raise self._invalid(problems)
            now = self.clock()
            shipment = {
                "id": self.next_shipment_id,
                "purchase_order_id": po_id,
                "purchase_order_public_reference": order["public_reference"],
                "created_at": time_text(now),
                "updated_at": time_text(now),
                "shipper_id": carrier[0],
                "shipper_name": carrier[1],
                "shipper_scac_code": carrier[2],
                "vendor_invoice_reference": fields.get("vendor_invoice_reference"),
                "vendor_shipping_cost": fields.get("vendor_shipping_cost"),
                "vendor_handling_cost": fields.get("vendor_handling_cost"),
                "shipper_invoice_reference": fields.get("shipper_invoice_reference"),
                "shipper_shipping_cost": fields.get("shipper_shipping_cost"),
                "shipment_trackings_attributes": trackings,
                "shipment_items_attributes": lines,
                "_updated": now,
            }
            self.next_shipment_id += 1
            self.shipments[shipment["id"]] = shipment
            return public(shipment)

    def _invalid(self, problems: Mapping[str, list[str]]) -> ApiError:
        if self.config.error_format == "list":
            listed = [
                f"{name.replace('_', ' ').capitalize()} {message}"
                for name, messages in problems.items()
                for message in messages
            ]
            return ApiError(422, {"errors": listed})
        return ApiError(422, {"errors": dict(problems)})

    def _carrier(
        self, fields: Mapping[str, Any], problems: dict[str, list[str]]
    ) -> tuple[int | None, str | None, str | None]:
        given = [k for k in ("shipper_id", "shipper_name", "shipper_scac_code") if fields.get(k)]
        if len(given) != 1:
            problems["shipper"] = [
                "must be given by exactly one of shipper_id, shipper_name or shipper_scac_code"
            ]
            return (None, None, None)
        key, value = given[0], fields[given[0]]
        for carrier in self.config.carriers:
            if (
                (key == "shipper_id" and str(value) == str(carrier[0]))
                or (key == "shipper_name" and str(value).strip().lower() == carrier[1].lower())
                or (key == "shipper_scac_code" and carrier[2] and str(value).upper() == carrier[2])
            ):
                return carrier
        problems["shipper"] = [f"{value!s} does not match a carrier in this Duoplane account"]
        return (None, None, None)

    def _lines(
        self, order: Mapping[str, Any], given: Any, problems: dict[str, list[str]]
    ) -> list[dict[str, Any]]:
        if not isinstance(given, list) or not given:
            problems["shipment_items"] = ["must contain at least one item"]
            return []
        items = {item["id"]: item for item in order["order_items"]}
        lines = []
        for entry in given:
            entry = entry if isinstance(entry, Mapping) else {}
            item = items.get(_int(entry.get("order_item_id")))
            quantity = _int(entry.get("quantity"))
            if item is None:
                problems.setdefault("shipment_items", []).append(
                    f"order item {entry.get('order_item_id')} is not on purchase order "
                    f"{order['id']}"
                )
                continue
            if quantity is None or quantity < 1:
                problems.setdefault("shipment_items", []).append(
                    f"quantity of order item {item['id']} must be greater than 0"
                )
                continue
            lines.append(
                {
                    "id": self.next_line_id,
                    "order_item_id": item["id"],
                    "quantity": quantity,
                    "cost": item["cost"],
                    "order_item_name": item["name"],
                    "serial_codes": [],
                }
            )
            self.next_line_id += 1
        return lines

    def _trackings(self, given: Any, problems: dict[str, list[str]]) -> list[dict[str, Any]]:
        numbers = [
            str(entry["tracking"]).strip()
            for entry in (given if isinstance(given, list) else [])
            if isinstance(entry, Mapping) and str(entry.get("tracking") or "").strip()
        ]
        if not numbers:
            problems["shipment_trackings"] = ["must contain at least one tracking number"]
        trackings = []
        for number in numbers:
            trackings.append({"id": self.next_line_id, "tracking": number})
            self.next_line_id += 1
        return trackings

    def update_shipment(self, shipment_id: int, payload: Any) -> dict[str, Any]:
        with self.lock:
            shipment = self.shipments.get(shipment_id)
            if shipment is None:
                raise ApiError(404, {"errors": [f"Shipment {shipment_id} not found"]})
            fields = payload.get("shipment") if isinstance(payload, Mapping) else None
            if not isinstance(fields, Mapping):
                raise self._invalid({"shipment": ['is missing: send {"shipment": {...}}']})
            for name in (
                "vendor_invoice_reference",
                "vendor_shipping_cost",
                "vendor_handling_cost",
                "shipper_invoice_reference",
                "shipper_shipping_cost",
            ):
                if name in fields:
                    shipment[name] = fields[name]
            self.touch(shipment)
            return public(shipment)

    def touch(self, shipment: dict[str, Any], at: float | None = None) -> None:
        moment = self.clock() if at is None else at
        shipment["_updated"] = moment
        shipment["updated_at"] = time_text(moment)

    def search(self, args: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /shipments.json``: the shipments matching ``search[...]``, by id ascending,
        one page of them."""
        per_page = min(_page_number(args, "per_page", MAX_PER_PAGE), MAX_PER_PAGE)
        page = _page_number(args, "page", 1)
        with self.lock:
            found = [s for s in self.shipments.values() if self._matches(s, args)]
            found.sort(key=lambda s: s["id"])
            chosen = found[(page - 1) * per_page : page * per_page]
            include_order = args.get("include_shipment_purchase_order") in ("1", "true")
            return [self._listed(s, include_order) for s in chosen]

    def _listed(self, shipment: Mapping[str, Any], include_order: bool) -> dict[str, Any]:
        shown = public(shipment)
        if include_order:
            order = self.purchase_orders.get(shipment["purchase_order_id"]) or {}
            shown["purchase_order"] = dict(order)
        return shown

    def _matches(self, shipment: Mapping[str, Any], args: Mapping[str, str]) -> bool:
        for name, op in (
            ("updated_at_min", "min"),
            ("updated_at_max", "max"),
            ("created_at_min", "min"),
            ("created_at_max", "max"),
        ):
            raw = args.get(f"search[{name}]")
            if not raw:
                continue
            limit = self._time(name, raw)
            moment = (
                shipment["_updated"]
                if name.startswith("updated")
                else _epoch(shipment["created_at"])
            )
            if (op == "min" and moment < limit) or (op == "max" and moment > limit):
                return False
        tracking = args.get("search[tracking]")
        if tracking and not any(
            tracking in t["tracking"] for t in shipment["shipment_trackings_attributes"]
        ):
            return False
        number = args.get("search[purchase_order_number]")
        if number and shipment["purchase_order_public_reference"] != number:
            return False
        po_id = args.get("search[purchase_order_id]")
        return not po_id or str(shipment["purchase_order_id"]) == po_id.strip()

    def _time(self, name: str, raw: str) -> float:
        """A search time: ISO 8601; without an offset, the API user's own zone (as the seed
        says), which is where a client that forgets the offset goes wrong."""
        try:
            moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(
                400, {"errors": [f"search[{name}] {raw!r} is not a valid time"]}
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(self.config.time_zone))
        return moment.timestamp()

    def inject(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Shipments made as a vendor would (control route): ``count`` of them on purchase
        order ``purchase_order_id`` (the first seeded one by default), updated at
        ``updated_at`` (ISO 8601, default now) plus ``step_seconds`` each, with
        ``trackings`` tracking numbers each (default 1) and ``shipper_id`` (default 1)."""
        count = payload.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100000:
            raise InvalidRequest("count must be an integer from 1 to 100000")
        trackings = payload.get("trackings", 1)
        if isinstance(trackings, bool) or not isinstance(trackings, int) or trackings < 1:
            raise InvalidRequest("trackings must be an integer >= 1")
        step = non_negative_number(payload, "step_seconds") if "step_seconds" in payload else 0.0
        with self.lock:
            po_id = payload.get("purchase_order_id") or min(self.purchase_orders)
            order = self.purchase_orders.get(po_id)
            if order is None:
                raise InvalidRequest(f"no purchase order {po_id}")
            carrier = next(
                (c for c in self.config.carriers if c[0] == payload.get("shipper_id", 1)), None
            )
            if carrier is None:
                raise InvalidRequest("shipper_id is not a known carrier")
            start = self.clock()
            if payload.get("updated_at"):
                try:
                    start = datetime.fromisoformat(
                        str(payload["updated_at"]).replace("Z", "+00:00")
                    ).timestamp()
                except ValueError:
                    raise InvalidRequest("updated_at must be ISO 8601 with an offset") from None
            prefix = str(payload.get("tracking_prefix") or "1ZSIM")
            item = order["order_items"][0]
            ids = []
            for n in range(count):
                sid = self.next_shipment_id
                self.next_shipment_id += 1
                at = start + n * step
                numbers = [f"{prefix}{sid:08d}{k}" for k in range(trackings)]
                self.shipments[sid] = {
                    "id": sid,
                    "purchase_order_id": order["id"],
                    "purchase_order_public_reference": order["public_reference"],
                    "created_at": time_text(at),
                    "updated_at": time_text(at),
                    "shipper_id": carrier[0],
                    "shipper_name": carrier[1],
                    "shipper_scac_code": carrier[2],
                    "vendor_invoice_reference": None,
                    "shipper_invoice_reference": None,
                    "shipper_shipping_cost": None,
                    "shipment_trackings_attributes": [
                        {"id": sid * 10 + k, "tracking": t} for k, t in enumerate(numbers)
                    ],
                    "shipment_items_attributes": [
                        {
                            "id": sid * 10,
                            "order_item_id": item["id"],
                            "quantity": 1,
                            "cost": item["cost"],
                            "order_item_name": item["name"],
                            "serial_codes": [],
                        }
                    ],
                    "_updated": at,
                }
                ids.append(sid)
            return {"count": count, "ids": ids}

    def listing(self, purchase_order_id: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                public(s)
                for s in sorted(self.shipments.values(), key=lambda s: s["id"])
                if purchase_order_id is None or str(s["purchase_order_id"]) == purchase_order_id
            ]

    def request_report(self, since: float | None) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "total": sum(self.requests.values()),
                "rate_limited": self.statuses[429],
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "log": [e for e in self.log if since is None or e["at"] >= since],
            }

    def take_fault(self, route: str) -> Fault | None:
        return self.faults.take(route)


def public(shipment: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in shipment.items() if not k.startswith("_")}


def _carriers(raw: Any) -> list[tuple[int, str, str | None]]:
    if not isinstance(raw, list):
        raise InvalidRequest("carriers must be a list of {id, name, scac}")
    found = []
    for entry in raw:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), int):
            raise InvalidRequest("each carrier needs an integer id and a name")
        found.append((entry["id"], str(entry.get("name") or entry["id"]), entry.get("scac")))
    return found


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _page_number(args: Mapping[str, str], name: str, default: int) -> int:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    number = _int(raw)
    if number is None or number < 1:
        raise ApiError(400, {"errors": [f"{name} must be a positive integer"]})
    return number


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def retry_after_text(value: float) -> str:
    """Duoplane-Retry-After-Seconds: whole seconds would round a 0.5 s wait to 0 or 1; the
    simulator sends the exact wait with two decimals (our choice: the real unit is seconds)."""
    return f"{value:.2f}"
