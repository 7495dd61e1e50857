"""Fixtures for the Duoplane tests: its simulator as its own process (a small, fast bucket), a
stack (receiver, worker, real redis-server) pointed at it, and hub messages: ``shipment:confirm``
with Duoplane's ids, and the poll."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.pipeline.conftest import HUB_STORE, HUB_TOKEN, hub, redis_server
from tests.support.servers import HubServer
from tests.support.simulators import SimulatorProcess
from tests.support.stack import RedisServer, Stack, serving

__all__ = ["hub", "redis_server"]  # session fixtures shared with the pipeline tests

API_KEY, PASSWORD = "demo-dp-key", "demo-dp-password"
PURCHASE_ORDER, MUG, PLATE = 987654, 239417, 239418  # the seed's sample purchase order
# The simulator's bucket and ours: small and fast, so pacing shows within a second or two.
CAPACITY, PER_SECOND = 5, 10
PAGE_SIZE = 250  # Duoplane's default and maximum
CONNECT_TIMEOUT, READ_TIMEOUT, LATE_LANDING = 2, 10, 3
LANDS_WITHIN = CONNECT_TIMEOUT + READ_TIMEOUT + LATE_LANDING


def shipment_number() -> str:
    return f"H{uuid.uuid4().int % 10**11:011d}"


def tracking_number() -> str:
    return f"1Z{uuid.uuid4().hex[:14].upper()}"


def confirm_message(**shipment: Any) -> dict[str, Any]:
    """shipment:confirm as the hub sends it (ConfirmedShipment's shape) with Duoplane's ids:
    two cartons, one of the seed's items split over both."""
    first, second = tracking_number(), tracking_number()
    body = {
        "number": shipment_number(),
        "order_number": f"R{uuid.uuid4().int % 10**9:09d}",
        "status": "shipped",
        "tracking": first,
        "tracking_numbers": [first, second],
        "tracking_url": None,
        "carrier": "UPS",
        "carriers": ["UPS"],
        "service": "Ground",
        "shipped_at": "2026-11-23T05:00:00+00:00",
        "duoplane_purchase_order_id": PURCHASE_ORDER,
        "items": [
            {"sku": "MUG-BLUE", "quantity": 1, "duoplane_order_item_id": MUG},
            {"sku": "PLATE-RED", "quantity": 1, "duoplane_order_item_id": PLATE},
            {"sku": "PLATE-RED", "quantity": 1, "duoplane_order_item_id": PLATE},
        ],
        "cartons": [
            {"carton_id": "C1", "tracking_number": first},
            {"carton_id": "C2", "tracking_number": second},
        ],
    }
    body.update(shipment)
    return {
        "message_id": uuid.uuid4().hex[:24],
        "message": "shipment:confirm",
        "payload": {"shipment": body},
    }


def poll_message(**parameters: Any) -> dict[str, Any]:
    return {
        "message_id": uuid.uuid4().hex[:24],
        "message": "duoplane:shipment_results:poll",
        "payload": {
            "parameters": [{"name": f"duoplane.{k}", "value": v} for k, v in parameters.items()]
        },
    }


class DuoplaneSimulator(SimulatorProcess):
    """``python -m simulators.duoplane`` on a free port, and its control API."""

    def __init__(self) -> None:
        super().__init__(
            "simulators.duoplane",
            {
                "DUOPLANE_SIM_ACCOUNTS": f"{API_KEY}:{PASSWORD}",
                "DUOPLANE_SIM_RATE_CAPACITY": str(CAPACITY),
                "DUOPLANE_SIM_RATE_PER_SECOND": str(PER_SECOND),
            },
        )

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.control("POST", "config", changes)

    def fault(self, route: str, kind: str, count: int = 1, **extra: Any) -> None:
        self.control("POST", "faults", {"route": route, "kind": kind, "count": count, **extra})

    def shipments(self, purchase_order_id: int | None = None) -> list[dict[str, Any]]:
        query = f"?purchase_order_id={purchase_order_id}" if purchase_order_id else ""
        return self.control("GET", f"shipments{query}")["shipments"]

    def with_tracking(self, number: str) -> list[dict[str, Any]]:
        return [
            s
            for s in self.shipments()
            if number in [t["tracking"] for t in s["shipment_trackings_attributes"]]
        ]

    def inject(self, **fields: Any) -> list[int]:
        return self.control("POST", "shipments", fields)["ids"]

    def requests(self, since: float | None = None) -> dict[str, Any]:
        return self.control("GET", "requests" + (f"?since={since}" if since else ""))

    def api(self, method: str, path: str, body: Any = None) -> requests.Response:
        """A request to the API itself, as the test's own API user."""
        return requests.request(
            method, f"{self.url}{path}", json=body, auth=(API_KEY, PASSWORD), timeout=10
        )


@pytest.fixture(scope="session")
def simulator_process() -> Iterator[DuoplaneSimulator]:
    sim = DuoplaneSimulator()
    yield sim
    sim.stop()


def duoplane_env(sim: DuoplaneSimulator, hub: HubServer) -> dict[str, str]:
    return {
        "HUB_PUSH_URL": f"{hub.url}/push",
        "HUB_ACCESS_TOKEN": HUB_TOKEN,
        "HUB_STORE": HUB_STORE,
        "DUOPLANE_API_URL": sim.url,
        "DUOPLANE_API_KEY": API_KEY,
        "DUOPLANE_PASSWORD": PASSWORD,
        "DUOPLANE_PAGE_SIZE": str(PAGE_SIZE),
        "DUOPLANE_RATE_CAPACITY": str(CAPACITY),
        "DUOPLANE_RATE_PER_SECOND": str(PER_SECOND),
        "TASK_TIME_LIMIT_SECONDS": "20",  # a poll of many pages at 10 requests a second
        # A create whose outcome is unknown (its answer lost) is looked up once it can no longer
        # land: LANDS_WITHIN seconds after it was sent, not the defaults' 95.
        "DUOPLANE_CONNECT_TIMEOUT_SECONDS": str(CONNECT_TIMEOUT),
        "DUOPLANE_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
        "DUOPLANE_LATE_LANDING_SECONDS": str(LATE_LANDING),
    }


@pytest.fixture(scope="session")
def duoplane_stack(
    redis_server: RedisServer, simulator_process: DuoplaneSimulator, hub: HubServer
) -> Iterator[Stack]:
    with serving(redis_server, duoplane_env(simulator_process, hub)) as running:
        yield running


@pytest.fixture
def store() -> str:
    return f"store-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sim(simulator_process: DuoplaneSimulator, duoplane_stack: Stack) -> DuoplaneSimulator:
    """The simulator, emptied (purchase orders back to the seeded ones), its bucket small."""
    simulator_process.reset()
    simulator_process.configure(
        rate_capacity=CAPACITY, rate_per_second=PER_SECOND, error_format="object"
    )
    return simulator_process


def post(stack: Stack, service: str, body: dict[str, Any], store: str) -> requests.Response:
    return stack.post(f"/duoplane/{service}", body, wait=30, store=store)


def vendor_shipment(sim: DuoplaneSimulator, tracking: list[str]) -> int:
    """A shipment entered at Duoplane by hand (through the API, as a vendor's tool would)."""
    made = sim.api(
        "POST",
        f"/purchase_orders/{PURCHASE_ORDER}/shipments.json",
        {
            "shipment": {
                "shipper_id": 1,
                "shipment_items_attributes": [{"order_item_id": MUG, "quantity": 1}],
                "shipment_trackings_attributes": [{"tracking": n} for n in tracking],
            }
        },
    )
    assert made.status_code == 200, made.text
    return int(made.json()["id"])
