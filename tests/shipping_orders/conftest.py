"""Fixtures for the Shipping Order API tests: its simulator as its own process, a stack
(receiver, worker, real redis-server) pointed at it, webhooks from the simulator to the stack,
and hub messages built from the seed's shipment sample."""

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
from tests.support.stack import ROOT, RedisServer, Stack, serving

__all__ = ["hub", "redis_server"]  # session fixtures shared with the pipeline tests

API_KEY, TENANT, LOCATION = "demo-so-key", "demo-tenant", "store-1"
WEBHOOK_SECRET = "test-webhook-secret"
SAMPLE = ROOT / "tests" / "fixtures" / "dotcom" / "shipment_ready.json"


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
        "SHIPPING_ORDERS_PAGE_SIZE": "2",  # polls read several pages
    }


@pytest.fixture(scope="session")
def so_stack(
    redis_server: RedisServer, simulator_process: ShippingOrdersSimulator, hub: HubServer
) -> Iterator[Stack]:
    with serving(redis_server, so_env(simulator_process, hub)) as running:
        yield running


@pytest.fixture
def store() -> str:
    return f"store-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sim(
    simulator_process: ShippingOrdersSimulator, so_stack: Stack, store: str
) -> ShippingOrdersSimulator:
    """The simulator, emptied, its webhooks going to the stack for this test's store."""
    simulator_process.control("POST", "reset")
    simulator_process.configure(
        webhook_url=f"{so_stack.url}/webhooks/shipping_orders?store={store}",
        webhook_secret=WEBHOOK_SECRET,
        error_spelling="seed",
        rate_limit_per_second=None,
        scenario="delivered",
    )
    return simulator_process


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


def updates(hub: HubServer, number: str) -> list[tuple[str, str]]:
    return [
        (m["payload"]["shipment"]["status"], m["payload"]["shipment"]["provider_status"])
        for m in hub_messages(hub, number)
        if m["message"] == "shipment:update"
    ]


def confirms(hub: HubServer, number: str) -> list[dict[str, Any]]:
    return [
        m["payload"]["shipment"]
        for m in hub_messages(hub, number)
        if m["message"] == "shipment:confirm"
    ]
