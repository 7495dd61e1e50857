"""What a Dotcom shipment costs in Redis once its messages' records have expired (real stack,
real redis-server, the simulator): at most 200 bytes each, and what it remembers is still
enough to answer a repeat as "already sent", refuse a reused number naming what differs, and
never confirm a release twice."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tests.dotcom.conftest import (
    DotcomSimulator,
    dotcom_env,
    poll_message,
    post,
    shipment_message,
)
from tests.pipeline.conftest import HUB_STORE
from tests.support.servers import HubServer
from tests.support.stack import Stack, serving, wait_until
from worker.integrations.dotcom.mapping import dotcom_time

SHIPMENTS = 120
BYTES_PER_SHIPMENT = 200
RECORD_TTL = 4
# Kept at a fixed size whatever the number of messages (the operators' latest 1,000): not a
# shipment's cost.
FIXED_SIZE = {"shiphub:recent"}


@pytest.fixture
def expiring_stack(sim: DotcomSimulator, hub: HubServer) -> Iterator[Stack]:
    """A stack of its own whose records expire RECORD_TTL seconds after their answer is pushed;
    handler memory keeps its default retention (180 days)."""
    env = {**dotcom_env(sim, hub), "RECORD_TTL_SECONDS": str(RECORD_TTL)}
    with serving(None, env) as running:
        yield running


def kept_bytes(client: redis.Redis) -> int:
    """MEMORY USAGE summed over every key but the fixed-size ones."""
    return sum(
        client.memory_usage(key, samples=0) or 0
        for key in client.scan_iter(count=1000)
        if key not in FIXED_SIZE
    )


def no_record_left(client: redis.Redis) -> bool:
    return not any(client.scan_iter("shiphub:msg:*", count=1000)) and not any(
        client.scan_iter("shiphub:once:*", count=1000)
    )


def test_a_shipment_costs_at_most_200_bytes_once_its_records_expired_and_is_still_known(
    expiring_stack: Stack, sim: DotcomSimulator
) -> None:
    stack, client = expiring_stack, expiring_stack.redis.client()
    hour_ago = dotcom_time(datetime.now(UTC) - timedelta(hours=1), UTC)
    warm = post(stack, "tracking", poll_message(last_polling_datetime=hour_ago), HUB_STORE)
    assert warm.status_code == 200, warm.text
    wait_until(lambda: no_record_left(client), timeout=30)
    before = kept_bytes(client)
    sent = [shipment_message() for _ in range(SHIPMENTS)]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda m: post(stack, "send_shipment", m, HUB_STORE), sent))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers][:3]
    confirmed: list[str] = []

    def all_confirmed() -> bool:  # the window ends a second back: poll until it holds them all
        poll = post(stack, "tracking", poll_message(last_polling_datetime=hour_ago), HUB_STORE)
        assert poll.status_code == 200, poll.text
        confirmed.extend(m["payload"]["shipment"]["number"] for m in poll.json()["messages"])
        return len(confirmed) >= SHIPMENTS

    wait_until(all_confirmed, timeout=30, every=1)
    assert sorted(confirmed) == sorted(m["payload"]["shipment"]["number"] for m in sent)
    wait_until(lambda: no_record_left(client), timeout=60)
    after = kept_bytes(client)

    per_shipment = (after - before) / SHIPMENTS
    assert per_shipment <= BYTES_PER_SHIPMENT, f"{per_shipment:.0f} B per shipment"

    # What is left still answers for each shipment, months of retention after its records.
    first = sent[0]["payload"]["shipment"]
    again = shipment_message(first["number"], order_number=first["order_number"])
    repeat = post(stack, "send_shipment", again, HUB_STORE)
    assert repeat.status_code == 200, repeat.text
    (note,) = repeat.json()["notifications"]
    assert "already sent" in note["description"]
    assert sent[0]["message_id"] in note["description"]

    address = copy.deepcopy(first["shipping_address"])
    address["address1"] = "7 Elsewhere Road"
    other = shipment_message(
        first["number"], order_number=first["order_number"], shipping_address=address
    )
    refused = post(stack, "send_shipment", other, HUB_STORE)
    assert refused.status_code == 500, refused.text
    (note,) = refused.json()["notifications"]
    assert "shipping" in note["description"]  # the part that differs, named...
    assert "7 Elsewhere Road" in note["description"]  # ...with what this message carries
    assert sent[0]["message_id"] in note["description"]

    overlapping = post(stack, "tracking", poll_message(last_polling_datetime=hour_ago), HUB_STORE)
    assert overlapping.status_code == 200, overlapping.text
    assert overlapping.json()["messages"] == []
    assert overlapping.json()["notifications"][-1]["description"].endswith(
        f"; {SHIPMENTS} already confirmed"
    )
    assert sim.orders()["order_requests"] == SHIPMENTS
