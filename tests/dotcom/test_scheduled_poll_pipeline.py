"""The beat polls Dotcom for the configured account with no hub message, and the confirmations
are pushed to the hub: once each, however many overlapping windows see them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.dotcom.conftest import DotcomSimulator, dotcom_env, post, shipment_message
from tests.pipeline.conftest import HUB_STORE
from tests.support.servers import HubServer
from tests.support.stack import Stack, serving, wait_until
from worker.integrations.dotcom.mapping import dotcom_time, parse_cursor

NEW_YORK = ZoneInfo("America/New_York")
INITIAL_CURSOR = dotcom_time(datetime.now(UTC) - timedelta(hours=2), NEW_YORK)


@pytest.fixture
def beat_stack(sim: DotcomSimulator, hub: HubServer) -> Iterator[Stack]:
    """A stack of its own (its own Redis, so no other worker takes its tasks) with a beat that
    polls dotcom.tracking every 2 seconds, credentials and initial cursor from DOTCOM_*."""
    env = {
        **dotcom_env(sim, hub),
        "POLLS": "dotcom.tracking=2",
        "DOTCOM_LAST_POLLING_DATETIME": INITIAL_CURSOR,
    }
    with serving(None, env) as running:
        yield running


def confirmed(hub: HubServer, number: str) -> list[tuple[str, dict[str, Any]]]:
    """(message_id, shipment) of every confirmation of ``number`` the hub received."""
    with hub.lock:
        answers = list(hub.answers)
    return [
        (answer["message_id"], message["payload"]["shipment"])
        for answer in answers
        for message in answer.get("messages", [])
        if message["payload"]["shipment"]["number"] == number
    ]


def test_scheduled_poll_pushes_confirmations_without_a_hub_message(
    beat_stack: Stack, sim: DotcomSimulator, hub: HubServer
) -> None:
    stack = beat_stack
    sent = shipment_message()
    number = sent["payload"]["shipment"]["number"]
    assert post(stack, "send_shipment", sent, HUB_STORE).status_code == 200
    sim.inject(
        number,
        "01",
        datetime.now(UTC) - timedelta(minutes=1),
        [
            {"sku": "9011CC", "quantity_shipped": "1.00", "tracking_number": "1ZBEAT1"},
            {"sku": "2001SSBM", "quantity_shipped": "1.00", "tracking_number": "1ZBEAT2"},
        ],
    )

    stack.start_beat()

    wait_until(lambda: confirmed(hub, number), timeout=40)
    polls_before = sim.orders()["shipment_requests"]
    wait_until(lambda: sim.orders()["shipment_requests"] >= polls_before + 2, timeout=20)
    found = confirmed(hub, number)
    assert len(found) == 1, found  # later, overlapping windows saw it again and skipped it
    message_id, shipment = found[0]
    assert message_id.startswith("scheduled-dotcom-tracking-")
    assert shipment["order_number"] == sent["payload"]["shipment"]["order_number"]
    assert shipment["tracking_numbers"] == ["1ZBEAT1", "1ZBEAT2"]
    record = stack.record("dotcom", message_id)
    assert record["status"] == "succeeded"
    (parameter,) = record["answer"]["parameters"]
    assert parameter["name"] == "dotcom.last_polling_datetime"
    raw = stack.redis.client().hget(f"shiphub:cursor:dotcom:{HUB_STORE}", "last_polling_datetime")
    assert raw is not None
    assert parse_cursor(json.loads(raw), NEW_YORK) > parse_cursor(INITIAL_CURSOR, NEW_YORK)
    assert "Sending due task poll dotcom.tracking" in stack.services["beat"].output()
