"""Fixtures for the Spectrum tests: its simulator as its own process, held to a low rate limit
(5 requests per 2 s) so that every test runs under the pacing; a stack (receiver, worker, real
redis-server) pointed at it, paced to match; hub ``shipment:confirm`` messages with fresh
purchase orders the simulator knows."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.pipeline.conftest import HUB_STORE, HUB_TOKEN, hub, redis_server
from tests.support.servers import HubServer
from tests.support.simulators import SimulatorProcess
from tests.support.stack import RedisServer, Stack, serving

__all__ = ["hub", "redis_server"]  # session fixtures shared with the pipeline tests

TOKEN = "spectrum-good-token-4711"
SIM_RATE_LIMIT, SIM_WINDOW_SECONDS = 5, 2.0
# Our pace: 2 a second, no burst: at most 1 + 2 x 2 = 5 in any 2 s, the simulator's limit.
RATE_PER_MINUTE, BURST = 120, 1
FORBIDDEN_PAUSE_SECONDS = 2.0  # the simulator's window


class SpectrumSimulator(SimulatorProcess):
    """``python -m simulators.spectrum`` on a free port, and its control API."""

    def __init__(self) -> None:
        super().__init__(
            "simulators.spectrum",
            {
                "SPECTRUM_SIM_TOKENS": TOKEN,
                "SPECTRUM_SIM_RATE_LIMIT": str(SIM_RATE_LIMIT),
                "SPECTRUM_SIM_RATE_WINDOW_SECONDS": str(SIM_WINDOW_SECONDS),
            },
        )

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.control("POST", "config", changes)

    def fault(self, kind: str, count: int = 1, **extra: Any) -> None:
        self.control(
            "POST", "faults", {"route": "ship_notification", "kind": kind, "count": count, **extra}
        )

    def add_order(self, po: str, *recipe_sets: str) -> None:
        self.control(
            "POST", "orders", {"purchaseOrderNumber": po, "recipeSetReadableIds": [*recipe_sets]}
        )

    def order(self, po: str) -> dict[str, Any]:
        return self.control("GET", "orders")["orders"][po]

    def notifications(self, po: str | None = None) -> list[dict[str, Any]]:
        path = "notifications" + (f"?purchaseOrderNumber={po}" if po else "")
        return self.control("GET", path)["notifications"]

    def requests(self) -> dict[str, int]:
        return self.control("GET", "requests")["requests"]


@pytest.fixture(scope="session")
def simulator_process() -> Iterator[SpectrumSimulator]:
    sim = SpectrumSimulator()
    yield sim
    sim.stop()


def spectrum_env(sim: SpectrumSimulator, hub: HubServer) -> dict[str, str | None]:
    return {
        "HUB_PUSH_URL": f"{hub.url}/push",
        "HUB_ACCESS_TOKEN": HUB_TOKEN,
        "HUB_STORE": HUB_STORE,
        "SPECTRUM_API_URL": sim.url,
        "SPECTRUM_API_TOKEN": TOKEN,
        "SPECTRUM_RATE_PER_MINUTE": str(RATE_PER_MINUTE),
        "SPECTRUM_BURST": str(BURST),
        "SPECTRUM_FORBIDDEN_PAUSE_SECONDS": str(FORBIDDEN_PAUSE_SECONDS),
        # SPECTRUM_FORBIDDEN_RETRIES keeps its default (3): a bad token takes 4 attempts, so the
        # attempt limit must not end it first; waits for the pace need a longer deadline.
        "TASK_MAX_ATTEMPTS": "6",
        "TASK_TIME_LIMIT_SECONDS": "10",
        "BROKER_VISIBILITY_TIMEOUT_SECONDS": "20",
    }


@pytest.fixture(scope="session")
def spectrum_stack(
    redis_server: RedisServer, simulator_process: SpectrumSimulator, hub: HubServer
) -> Iterator[Stack]:
    with serving(redis_server, spectrum_env(simulator_process, hub)) as running:
        yield running


@pytest.fixture
def sim(simulator_process: SpectrumSimulator) -> SpectrumSimulator:
    """The simulator, emptied, at the low limit."""
    simulator_process.reset()
    simulator_process.configure(
        rate_limit=SIM_RATE_LIMIT, rate_window_seconds=SIM_WINDOW_SECONDS, unknown_status=409
    )
    return simulator_process


@pytest.fixture
def store() -> str:
    return f"store-{uuid.uuid4().hex[:8]}"


def purchase_order() -> str:
    return f"PO-{uuid.uuid4().hex[:10].upper()}"


def recipe_set() -> str:
    return uuid.uuid4().hex[:8].upper()


def confirm_message(
    po: str | None,
    recipe_sets: list[str],
    *,
    tracking: str | None = "1Z999AA10123456784",
    **shipment: Any,
) -> dict[str, Any]:
    """``shipment:confirm`` as the hub sends it (``worker.hub.messages.ConfirmedShipment``'s shape),
    its order number the purchase order, one item per recipe set."""
    body: dict[str, Any] = {
        "message_id": uuid.uuid4().hex[:24],
        "message": "shipment:confirm",
        "payload": {
            "shipment": {
                "number": f"H{uuid.uuid4().int % 10**11:011d}",
                "order_number": po,
                "status": "shipped",
                "tracking": tracking,
                "tracking_numbers": [tracking] if tracking else [],
                "tracking_url": None,
                "carrier": "UPS",
                "carriers": ["UPS"],
                "service": "Ground",
                "shipped_at": "2025-03-10T15:00:00+00:00",
                "items": [
                    {"sku": f"SKU-{at}", "quantity": 1, "spectrum_recipe_set_id": rs}
                    for at, rs in enumerate(recipe_sets)
                ],
                "cartons": [],
            }
        },
    }
    body["payload"]["shipment"].update(copy.deepcopy(shipment))
    return body


def again(body: dict[str, Any]) -> dict[str, Any]:
    """The same message under another message_id (the hub confirming it again)."""
    copied = copy.deepcopy(body)
    copied["message_id"] = uuid.uuid4().hex[:24]
    return copied
