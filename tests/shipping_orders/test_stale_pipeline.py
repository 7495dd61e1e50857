"""Shipments that stopped moving, through the real pieces: the Shipping Order API's simulator
moves an order to in transit and signs its webhook to the receiver, a Celery worker turns it
into a ``shipment:update`` stored with its answer, and once ``STALE_SHIPMENT_DAYS`` (here about
17 seconds) has passed without news the shipment is listed on ``/ops/stale`` and counted by
``shiphub_stale_shipments``; delivered, it leaves both. A Redis of its own: no other test's
shipments are on the move there."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.shipping_orders.conftest import (
    ShippingOrdersSimulator,
    next_store,
    ready_message,
    secret_of,
    so_env,
    updates,
    webhook_url,
)
from tests.support.servers import HubServer
from tests.support.stack import Stack, serving, wait_until
from tests.test_ops import Page

STALE_DAYS = 0.0002  # 17.28 seconds
STALE_SECONDS = STALE_DAYS * 86400
OPS = {"Authorization": "Basic " + base64.b64encode(f"ops:{Stack.ENDPOINT_KEY}".encode()).decode()}


@pytest.fixture(scope="module")
def stale_stack(simulator_process: ShippingOrdersSimulator, hub: HubServer) -> Iterator[Stack]:
    env = {**so_env(simulator_process, hub), "STALE_SHIPMENT_DAYS": str(STALE_DAYS)}
    with serving(None, env) as running:
        yield running


def stale_rows(stack: Stack) -> list[list[str]]:
    response = requests.get(f"{stack.url}/ops/stale", headers=OPS, timeout=10)
    assert response.status_code == 200, response.text
    return Page(response.text).table("stale-shipment")


def stale_gauge(stack: Stack) -> dict[str, float]:
    text = requests.get(f"{stack.url}/metrics", headers=stack.headers(), timeout=10).text
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "shiphub_stale_shipments"
    ]
    return {s.labels["integration"]: s.value for s in family.samples}


def test_a_shipment_in_transit_without_news_is_listed_as_stopped_and_leaves_when_delivered(
    stale_stack: Stack, simulator_process: ShippingOrdersSimulator, hub: HubServer
) -> None:
    store = next_store()
    sim = simulator_process.prepare(
        "seed", webhook_url=webhook_url(stale_stack, store), webhook_secret=secret_of(store)
    )
    body = ready_message()
    number = body["payload"]["shipment"]["number"]
    sent = stale_stack.post("/shipping_orders/send_shipment", body, wait=20, store=store)
    assert sent.status_code == 200, sent.text

    moved_at = time.time()
    sim.control("POST", f"orders/{number}/advance", {"to": "IN_TRANSIT", "force": True})
    wait_until(lambda: ("in_transit", "IN_TRANSIT") in updates(hub, number), timeout=30)
    assert stale_rows(stale_stack) == []  # news: not stale yet
    assert stale_gauge(stale_stack)["shipping_orders"] == 0

    rows = wait_until(lambda: stale_rows(stale_stack), timeout=STALE_SECONDS + 30, every=0.5)
    assert time.time() - moved_at >= STALE_SECONDS - 1  # not before its time (a status time
    # may be written to the second)
    provider, at_store, listed, status, raw, *_ = rows[0]
    assert len(rows) == 1
    assert (provider, at_store, listed, status, raw) == (
        "shipping_orders",
        store,
        number,
        "in_transit",
        "IN_TRANSIT",
    )
    assert stale_gauge(stale_stack)["shipping_orders"] == 1

    sim.control("POST", f"orders/{number}/advance", {"to": "ORDER_DELIVERED", "force": True})
    wait_until(lambda: ("delivered", "ORDER_DELIVERED") in updates(hub, number), timeout=30)
    wait_until(lambda: stale_rows(stale_stack) == [], timeout=10, every=0.2)
    assert stale_gauge(stale_stack)["shipping_orders"] == 0
