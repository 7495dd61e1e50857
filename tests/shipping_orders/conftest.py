"""Fixtures for the Shipping Order API tests: its simulator as its own process, a stack
(receiver, worker, real redis-server) pointed at it, webhooks from the simulator to the stack,
and hub messages built from the seed's shipment sample.

``sim`` runs each test twice: with the simulator answering in the seed's shapes and in the
vendor's real ones (a create answered REQUEST_RECEIVED and dispatched later, a string provider,
``trackingNumber``, ...; ``simulators.shipping_orders.shapes``)."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.pipeline.conftest import HUB_STORE, HUB_TOKEN, hub, redis_server
from tests.support.servers import HubServer
from tests.support.simulators import SimulatorProcess
from tests.support.stack import ROOT, RedisServer, Stack, serving, wait_until

__all__ = ["hub", "redis_server"]  # session fixtures shared with the pipeline tests

API_KEY, TENANT, LOCATION = "demo-so-key", "demo-tenant", "store-1"
WEBHOOK_SECRET = "test-webhook-secret"  # HUB_STORE's (SHIPPING_ORDERS_WEBHOOK_SECRET)
# Each test's store has a webhook secret of its own (SHIPPING_ORDERS_WEBHOOK_SECRETS), as each
# store has its own provider account: the stack knows the stores it will be given, named afresh
# for each session (Redis is shared with the pipeline tests).
STORES = [f"store-{uuid.uuid4().hex[:8]}" for _ in range(400)]
_next_store = iter(STORES)


def secret_of(store: str) -> str:
    """The webhook secret of one of the tests' stores."""
    return f"{WEBHOOK_SECRET}-{store}"


# A create whose outcome is unknown is looked up LANDS_WITHIN seconds after it was sent.
QUICK_LOOK = {
    "SHIPPING_ORDERS_CONNECT_TIMEOUT_SECONDS": "1",
    "SHIPPING_ORDERS_READ_TIMEOUT_SECONDS": "5",  # a loaded machine's answer is rarely later
    "SHIPPING_ORDERS_LATE_LANDING_SECONDS": "1",
}
LANDS_WITHIN = 7.0
SAMPLE = ROOT / "tests" / "fixtures" / "dotcom" / "shipment_ready.json"
FIXTURES = ROOT / "tests" / "shipping_orders" / "fixtures"
SHAPES = ("seed", "vendor")
# What the hub hears of an order before its dispatch: nothing in the seed's shape (a create
# answers ORDER_DISPATCHED), its receipt and estimates in the vendor's.
BEFORE_DISPATCH = {
    "seed": [],
    "vendor": [("pending", "REQUEST_RECEIVED"), ("accepted", "ESTIMATES_RECEIVED")],
}


def vendor_fixture(name: str) -> dict[str, Any]:
    """An order shaped like the vendor's documented objects (``fixtures/vendor_*.json``)."""
    loaded: dict[str, Any] = json.loads((FIXTURES / f"vendor_{name}.json").read_text())
    return loaded


def shipment_number() -> str:
    return f"H{uuid.uuid4().int % 10**11:011d}"


def ready_message(number: str | None = None, **shipment: Any) -> dict[str, Any]:
    """shipment:ready as the seed has it (a shipment in Chevy Chase, MD), fresh ids."""
    body = json.loads(SAMPLE.read_text())
    body["message_id"] = uuid.uuid4().hex[:24]
    sample = body["payload"]["shipment"]
    sample["number"] = number or shipment_number()
    sample["order_number"] = f"R{uuid.uuid4().int % 10**9:09d}"
    sample.update(copy.deepcopy(shipment))
    return body


def about(number: str, message: str = "shipment:cancel") -> dict[str, Any]:
    return {
        "message_id": uuid.uuid4().hex[:24],
        "message": message,
        "payload": {"shipment": {"number": number}},
    }


def poll_message() -> dict[str, Any]:
    return {
        "message_id": uuid.uuid4().hex[:24],
        "message": "shipping_orders:shipment_results:poll",
        "payload": {},
    }


class ShippingOrdersSimulator(SimulatorProcess):
    """``python -m simulators.shipping_orders`` on a free port, and its control API."""

    def __init__(self) -> None:
        super().__init__(
            "simulators.shipping_orders",
            {
                "SHIPPING_ORDERS_SIM_STEP_SECONDS": "0",  # tests move orders themselves
                "SHIPPING_ORDERS_SIM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            },
        )
        self.shape = "seed"

    def prepare(self, shape: str, **settings: Any) -> ShippingOrdersSimulator:
        """Emptied, answering in ``shape`` (the vendor's with its error spellings), defaults
        for the rest unless ``settings`` say otherwise."""
        self.control("POST", "reset")
        self.shape = shape
        defaults: dict[str, Any] = {
            "webhook_secret": WEBHOOK_SECRET,
            "error_spelling": shape,
            "rate_limit_per_second": None,
            "scenario": "delivered",
        }
        self.configure(shape=shape, **{**defaults, **settings})
        return self

    @property
    def before_dispatch(self) -> list[tuple[str, str]]:
        return list(BEFORE_DISPATCH[self.shape])

    @property
    def first_answered(self) -> tuple[str, str]:
        """The status a create answers."""
        return ("pending", "REQUEST_RECEIVED") if self.shape == "vendor" else FIRST_DISPATCHED

    def dispatch(self, number: str) -> None:
        """In the vendor's shape, move a received order on to its dispatch (seed: it is)."""
        if self.shape == "vendor":
            self.advance(number, "ORDER_DISPATCHED")

    def dispatch_in_turn(self, hub: HubServer, number: str) -> None:
        """``dispatch``, a step at a time, each told to the hub before the next. The webhooks of
        two steps made at once are two messages handled side by side: the later step may be
        handled first, and the earlier is then no news (never told), which a test of the whole
        sequence cannot allow."""
        if self.shape != "vendor":
            return
        for _, raw in [*self.before_dispatch[1:], FIRST_DISPATCHED]:
            self.advance(number, raw)
            wait_until(lambda step=raw: step in [s for _, s in updates(hub, number)], timeout=20)

    def tracking(self, number: str) -> str:
        """The order's tracking number as text, in either shape."""
        order = self.order(number)["order"]
        return str(order.get("trackingNumber", order.get("trackingId")))

    def carrier(self, number: str) -> str:
        provider = self.order(number)["order"]["provider"]
        return str(provider["name"] if isinstance(provider, dict) else provider)

    def configure(self, **changes: Any) -> None:
        self.control("POST", "config", changes)

    def fault(self, route: str, kind: str, count: int = 1, **extra: Any) -> None:
        self.control("POST", "faults", {"route": route, "kind": kind, "count": count, **extra})

    def order(self, number: str) -> dict[str, Any]:
        return self.control("GET", f"orders/{number}")

    def orders_numbered(self, number: str) -> list[dict[str, Any]]:
        return [
            o for o in self.control("GET", "orders")["orders"] if o["orderExternalId"] == number
        ]

    def advance(self, number: str, to: str | None = None) -> dict[str, Any]:
        return self.control("POST", f"orders/{number}/advance", {"to": to} if to else {})

    def requests_to(self, route: str) -> int:
        return int(self.control("GET", "requests")["requests"].get(route, 0))

    def webhooks_of(self, number: str) -> list[dict[str, Any]]:
        return [
            w for w in self.control("GET", "webhooks")["webhooks"] if w["orderExternalId"] == number
        ]


@pytest.fixture(scope="session")
def simulator_process() -> Iterator[ShippingOrdersSimulator]:
    sim = ShippingOrdersSimulator()
    yield sim
    sim.stop()


def so_env(sim: ShippingOrdersSimulator, hub: HubServer) -> dict[str, str]:
    return {
        "HUB_PUSH_URL": f"{hub.url}/push",
        "HUB_ACCESS_TOKEN": HUB_TOKEN,
        "HUB_STORE": HUB_STORE,
        "SHIPPING_ORDERS_API_URL": sim.url,
        "SHIPPING_ORDERS_API_KEY": API_KEY,
        "SHIPPING_ORDERS_TENANT_ID": TENANT,
        "SHIPPING_ORDERS_LOCATION_EXTERNAL_ID": LOCATION,
        "SHIPPING_ORDERS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SHIPPING_ORDERS_WEBHOOK_SECRETS": json.dumps({s: secret_of(s) for s in STORES}),
        "SHIPPING_ORDERS_PAGE_SIZE": "2",  # polls read several pages
        **QUICK_LOOK,
    }


@pytest.fixture(scope="session")
def so_stack(
    redis_server: RedisServer, simulator_process: ShippingOrdersSimulator, hub: HubServer
) -> Iterator[Stack]:
    with serving(redis_server, so_env(simulator_process, hub)) as running:
        yield running


def next_store() -> str:
    """A store no test used before, with a webhook secret of its own (``secret_of``)."""
    return next(_next_store)


@pytest.fixture
def store() -> str:
    """A store no test used before, with a webhook secret of its own (``secret_of``)."""
    return next_store()


def webhook_url(stack: Stack, store: str) -> str:
    return f"{stack.url}/webhooks/shipping_orders?store={store}"


@pytest.fixture(params=SHAPES)
def sim(
    request: pytest.FixtureRequest,
    simulator_process: ShippingOrdersSimulator,
    so_stack: Stack,
    store: str,
) -> ShippingOrdersSimulator:
    """The simulator, emptied, in each shape in turn, its webhooks going to the stack for this
    test's store."""
    return simulator_process.prepare(
        request.param, webhook_url=webhook_url(so_stack, store), webhook_secret=secret_of(store)
    )


@pytest.fixture
def vendor_sim(
    simulator_process: ShippingOrdersSimulator, so_stack: Stack, store: str
) -> ShippingOrdersSimulator:
    """The simulator in the vendor's shapes only."""
    return simulator_process.prepare(
        "vendor", webhook_url=webhook_url(so_stack, store), webhook_secret=secret_of(store)
    )


def hub_messages(hub: HubServer, number: str) -> list[dict[str, Any]]:
    """Every message pushed to the hub about shipment ``number``, in the order they came."""
    with hub.lock:
        answers = list(hub.answers)
    return [
        m
        for answer in answers
        for m in answer.get("messages", [])
        if m["payload"].get("shipment", {}).get("number") == number
    ]


FIRST_DISPATCHED = ("dispatched", "ORDER_DISPATCHED")


def updates(hub: HubServer, number: str) -> list[tuple[str, str]]:
    return [
        (m["payload"]["shipment"]["status"], m["payload"]["shipment"]["provider_status"])
        for m in hub_messages(hub, number)
        if m["message"] == "shipment:update"
    ]


def shipments_told(hub: HubServer, number: str, raw_status: str) -> list[dict[str, Any]]:
    """The ``shipment:update`` payloads of ``number`` with the API status ``raw_status``."""
    return [
        m["payload"]["shipment"]
        for m in hub_messages(hub, number)
        if m["message"] == "shipment:update"
        and m["payload"]["shipment"]["provider_status"] == raw_status
    ]


def notes(answer: dict[str, Any], level: str) -> list[str]:
    """An answer's notifications of one level, subject and description in one text."""
    return [
        f"{n['subject']}: {n['description']}"
        for n in answer.get("notifications", [])
        if n["level"] == level
    ]


def confirms(hub: HubServer, number: str) -> list[dict[str, Any]]:
    return [
        m["payload"]["shipment"]
        for m in hub_messages(hub, number)
        if m["message"] == "shipment:confirm"
    ]
