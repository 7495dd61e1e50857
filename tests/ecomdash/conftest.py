"""Fixtures for the ecomdash tests: its simulator as its own process, a stack (receiver, a
Celery worker with enough threads to gather a batch, a redis-server of its own) pointed at it,
and hub ``shipment:confirm`` messages."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.pipeline.conftest import HUB_STORE, HUB_TOKEN, hub
from tests.support.servers import HubServer
from tests.support.simulators import SimulatorProcess
from tests.support.stack import RedisServer, Stack, wait_until

__all__ = ["hub"]

SUBSCRIPTION_KEY, ECD_KEY = "demo-apim-key", "demo-ecd-key"
CARRIER_LOOKUP = '[{"UPS": 1}, {"FedEx": 2}]'
BATCH_SIZE = 100
WORKER_THREADS = 120  # a batch gathers as many records as there are handlers waiting


class EcomdashSimulator(SimulatorProcess):
    """``python -m simulators.ecomdash`` on a free port, and its control API."""

    def __init__(self) -> None:
        super().__init__("simulators.ecomdash", {"ECOMDASH_SIM_CALL_SECONDS": "0.05"})

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def fault(self, kind: str, count: int = 1, **extra: Any) -> None:
        self.control(
            "POST", "faults", {"route": "submitTrackingInfo", "kind": kind, "count": count, **extra}
        )

    def configure(self, **changes: Any) -> None:
        self.control("POST", "config", changes)

    def add_shipments(self, first: int, count: int, items: int = 2) -> None:
        self.control(
            "POST",
            "shipments",
            {"ecd_key": ECD_KEY, "first": first, "count": count, "items": items},
        )

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "stats")

    def tracking(self, shipment: int | None = None) -> list[dict[str, Any]]:
        query = f"?shipment={shipment}" if shipment is not None else ""
        return self.control("GET", f"tracking{query}")["tracking"]


@pytest.fixture(scope="session")
def simulator_process() -> Iterator[EcomdashSimulator]:
    sim = EcomdashSimulator()
    yield sim
    sim.stop()


def ecomdash_env(sim: EcomdashSimulator, hub: HubServer, **extra: str) -> dict[str, str | None]:
    return {
        "HUB_PUSH_URL": f"{hub.url}/push",
        "HUB_ACCESS_TOKEN": HUB_TOKEN,
        "HUB_STORE": HUB_STORE,
        "ECOMDASH_API_URL": sim.api_url,
        "ECOMDASH_SUBSCRIPTION_KEY": SUBSCRIPTION_KEY,
        "ECOMDASH_ECD_KEY": ECD_KEY,
        "ECOMDASH_CARRIER_LOOKUP": CARRIER_LOOKUP,
        "ECOMDASH_BATCH_WINDOW_SECONDS": "0.5",
        "ECOMDASH_BATCH_SIZE": str(BATCH_SIZE),
        "ECOMDASH_READ_TIMEOUT_SECONDS": "5",
        "TASK_TIME_LIMIT_SECONDS": "30",
        "TASK_MAX_ATTEMPTS": "10",
        "REDIS_MAX_CONNECTIONS": "100",
        **extra,
    }


@contextlib.contextmanager
def ecomdash_stack(
    env: dict[str, str | None], worker: str = "worker", threads: int = WORKER_THREADS
) -> Iterator[Stack]:
    """Receiver and one worker of ``threads`` threads on a redis-server of their own (no other
    package's worker may take ecomdash's messages), stopped after the block."""
    server = RedisServer().start()
    stack = Stack(server, env)
    try:
        stack.start_web()
        stack.start_worker(worker, concurrency=threads)
        yield stack
    finally:
        stack.stop()
        server.stop()


@pytest.fixture(scope="session")
def stack(simulator_process: EcomdashSimulator, hub: HubServer) -> Iterator[Stack]:
    with ecomdash_stack(ecomdash_env(simulator_process, hub)) as running:
        yield running


@pytest.fixture
def sim(simulator_process: EcomdashSimulator) -> EcomdashSimulator:
    simulator_process.reset()
    simulator_process.configure(call_seconds=0.05, rate_limit=120, rate_window_seconds=60)
    return simulator_process


def confirm_message(shipment_id: int | str | None, **shipment: Any) -> dict[str, Any]:
    """``shipment:confirm`` as the hub sends it to a sales channel, fresh ids and a fresh
    tracking number (the stack remembers deliveries across tests)."""
    tracking = f"1Z{uuid.uuid4().hex[:16].upper()}"
    body: dict[str, Any] = {
        "number": f"H{uuid.uuid4().int % 10**11:011d}",
        "order_number": f"R{uuid.uuid4().int % 10**9:09d}",
        "status": "shipped",
        "tracking": tracking,
        "tracking_numbers": [tracking],
        "tracking_url": f"https://www.ups.com/track?tracknum={tracking}",
        "carrier": "UPS",
        "service": "Ground",
        "shipped_at": "2024-05-01T10:15:00-04:00",
        "items": [{"sku": "ROR-00013", "quantity": 1}],
        "cartons": [{"carton_id": "C1", "tracking_number": tracking}],
        **shipment,
    }
    if shipment_id is not None:
        body["ecomdash_shipment_id"] = shipment_id
    return {
        "message_id": uuid.uuid4().hex[:24],
        "message": "shipment:confirm",
        "payload": {"shipment": body},
    }


def post_all(stack: Stack, bodies: list[dict[str, Any]], clients: int = 50) -> None:
    """Post concurrently, answers not awaited (each 200 queued)."""

    def post(body: dict[str, Any]) -> int:
        return stack.post("/ecomdash/send_tracking", body).status_code

    with ThreadPoolExecutor(clients) as pool:
        codes = list(pool.map(post, bodies))
    assert set(codes) == {200}, codes


def statuses(stack: Stack, message_ids: list[str]) -> dict[str, str]:
    client = stack.redis.client()
    pipe = client.pipeline(transaction=False)
    for message_id in message_ids:
        pipe.hget(f"shiphub:msg:ecomdash:{message_id}", "status")
    return dict(zip(message_ids, pipe.execute(), strict=True))


def wait_finished(stack: Stack, message_ids: list[str], timeout: float = 60.0) -> dict[str, str]:
    """Every message's final status, once none is queued, processing or retrying."""
    final = {"succeeded", "failed", "dead"}
    return wait_until(
        lambda: (
            (found := statuses(stack, message_ids))
            and all(s in final for s in found.values())
            and found
        ),
        timeout=timeout,
        every=0.2,
    )


def elapsed_since(started: float) -> float:
    return time.monotonic() - started
