"""Fixtures for the Dotcom tests: the Dotcom simulator as its own process, a stack (receiver,
worker, real redis-server) pointed at it, and hub messages built from the seed's samples."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests

from tests.pipeline.conftest import HUB_STORE, HUB_TOKEN, hub, redis_server
from tests.support.servers import HubServer
from tests.support.simulators import SimulatorProcess
from tests.support.stack import (
    ROOT,
    RedisServer,
    Stack,
    serving,
)

__all__ = ["hub", "redis_server"]  # session fixtures shared with the pipeline tests

FIXTURES = ROOT / "tests" / "fixtures" / "dotcom"
API_KEY, PASSWORD = "demo-api-key", "demo-password"
BASE_PATH = "/dcd_api_test/DCDAPIService.svc"
ENV_SHIPPING_LOOKUP = [{"UPS Ground (USD)": "03"}, {"UPS Two Day (USD)": "02"}]
SENT = "Successfully Sent Shipment to Dotcom Distribution"
# An order whose outcome is unknown is looked up LANDS_WITHIN seconds after it was sent.
QUICK_LOOK = {
    "DOTCOM_CONNECT_TIMEOUT_SECONDS": "1",
    "DOTCOM_READ_TIMEOUT_SECONDS": "5",  # a loaded machine's answer is rarely later
    "DOTCOM_LATE_LANDING_SECONDS": "2",
}
LANDS_WITHIN = 8.0


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def seed_shipment_ready() -> dict[str, Any]:
    """The seed's shipment:ready sample, corrected (the printed one has a stray ``]``)."""
    return json.loads(fixture_text("shipment_ready.json"))


def new_id() -> str:
    return uuid.uuid4().hex[:24]


def shipment_number() -> str:
    """A hub shipment number like the seed's ("H" and digits), unique per test."""
    return f"H{uuid.uuid4().int % 10**11:011d}"


def shipment_message(
    number: str | None = None,
    *,
    parameters: dict[str, Any] | None = None,
    items: list[dict[str, Any]] | None = None,
    **shipment: Any,
) -> dict[str, Any]:
    """A shipment:ready message like the seed's, with a fresh message id and shipment number.
    ``shipment`` overrides fields of the shipment (``shipping_address=...`` replaces it)."""
    body = seed_shipment_ready()
    body["message_id"] = new_id()
    sample = body["payload"]["shipment"]
    sample["number"] = number or shipment_number()
    sample["order_number"] = f"R{uuid.uuid4().int % 10**9:09d}"
    sample["shipping_method"] = "UPS Ground (USD)"
    if items is not None:
        sample["items"] = items
    sample.update(copy.deepcopy(shipment))
    if parameters:
        body["payload"]["parameters"] = [{"name": k, "value": v} for k, v in parameters.items()]
    return body


def poll_message(**parameters: Any) -> dict[str, Any]:
    """dotcom:shipment_results:poll as the seed has it, parameters prefixed as the hub sends."""
    body = json.loads(fixture_text("shipment_results_poll.json"))
    body["message_id"] = new_id()
    if parameters:
        body["payload"]["parameters"] = [
            {"name": f"dotcom.{k}", "value": v} for k, v in parameters.items()
        ]
    return body


class DotcomSimulator(SimulatorProcess):
    """``python -m simulators.dotcom`` on a free port, and its control API."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__("simulators.dotcom", env)

    @property
    def api_url(self) -> str:
        return f"{self.url}{BASE_PATH}"

    def orders(self) -> dict[str, Any]:
        return self.control("GET", "orders")

    def inject(
        self, number: str, release: str, ship_datetime: datetime, items: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return self.control(
            "POST",
            "shipments",
            {
                "client_order_number": number,
                "release": release,
                "ship_datetime": ship_datetime.isoformat(),
                "items": items,
            },
        )

    def fault(self, kind: str, route: str, count: int = 1) -> None:
        self.control("POST", "faults", {"kind": kind, "route": route, "count": count})


@pytest.fixture(scope="session")
def simulator_process() -> Iterator[DotcomSimulator]:
    # Orders ship at once and show at once: tests inject their own releases where timing matters.
    sim = DotcomSimulator({"DOTCOM_SIM_SHIP_AFTER": "0", "DOTCOM_SIM_VISIBLE_AFTER": "0"})
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator_process: DotcomSimulator) -> DotcomSimulator:
    """The simulator, emptied for this test."""
    simulator_process.reset()
    return simulator_process


def dotcom_env(sim: DotcomSimulator, hub: HubServer) -> dict[str, str]:
    return {
        "HUB_PUSH_URL": f"{hub.url}/push",
        "HUB_ACCESS_TOKEN": HUB_TOKEN,
        "HUB_STORE": HUB_STORE,
        "DOTCOM_API_URL": sim.api_url,
        "DOTCOM_API_KEY": API_KEY,
        "DOTCOM_PASSWORD": PASSWORD,
        "DOTCOM_SHIPPING_LOOKUP": json.dumps(ENV_SHIPPING_LOOKUP),
        "DOTCOM_POLL_LAG_SECONDS": "1",
        **QUICK_LOOK,
    }


@pytest.fixture(scope="session")
def dotcom_stack(
    redis_server: RedisServer, simulator_process: DotcomSimulator, hub: HubServer
) -> Iterator[Stack]:
    """Receiver and one worker configured for the simulator, shared by the Dotcom modules
    (each test uses its own message ids, shipment numbers and hub store)."""
    with serving(redis_server, dotcom_env(simulator_process, hub)) as running:
        yield running


@pytest.fixture
def store() -> str:
    """A hub store of its own: cursors and what was sent or confirmed do not leak between tests."""
    return f"store-{uuid.uuid4().hex[:8]}"


def post(
    stack: Stack, service: str, body: Any, store: str, *, wait: float = 30
) -> requests.Response:
    """POST a hub message to ``/dotcom/<service>`` for ``store`` and wait for the answer."""
    headers = stack.headers(**{"X-Hub-Store": store, "X-Hub-Wait": str(wait)})
    return requests.post(
        f"{stack.url}/dotcom/{service}", json=body, headers=headers, timeout=wait + 30
    )
