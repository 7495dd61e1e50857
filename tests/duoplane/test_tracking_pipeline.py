"""tracking (duoplane:shipment_results:poll) through the real pieces: every page read to the
short one, each shipment confirmed once across overlapping polls, the cursor (with its offset)
advanced; and pacing: many pages against a small bucket with no 429, Duoplane-Retry-After-Seconds
honoured."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.duoplane.conftest import (
    CAPACITY,
    PAGE_SIZE,
    PER_SECOND,
    PURCHASE_ORDER,
    DuoplaneSimulator,
    confirm_message,
    poll_message,
    post,
)
from tests.support.stack import RedisServer, Stack

CURSOR = "duoplane.last_polling_datetime"


def poll(stack: Stack, store: str, **parameters: Any) -> dict[str, Any]:
    response = post(stack, "tracking", poll_message(**parameters), store)
    assert response.status_code == 200, response.text
    return response.json()


def confirmed(answer: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """shipment:confirm payloads by Duoplane shipment id, none twice."""
    found: dict[int, dict[str, Any]] = {}
    for message in answer["messages"]:
        assert message["message"] == "shipment:confirm"
        shipment = message["payload"]["shipment"]
        assert shipment["duoplane_shipment_id"] not in found, "confirmed twice"
        found[shipment["duoplane_shipment_id"]] = shipment
    return found


def cursor_of(answer: dict[str, Any]) -> str:
    (parameter,) = answer["parameters"]
    assert parameter["name"] == CURSOR
    return parameter["value"]


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def list_requests(sim: DuoplaneSimulator, since: float) -> list[dict[str, Any]]:
    return [e for e in sim.requests(since)["log"] if e["route"] == "list"]


def test_a_poll_reads_every_page_and_confirms_each_shipment_once_across_polls(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str, redis_server: RedisServer
) -> None:
    sim.inject(count=3, updated_at=ago(hours=3))  # before the cursor's window
    ids = sim.inject(count=2 * PAGE_SIZE + 7, updated_at=ago(minutes=30), trackings=2)
    started = datetime.now(UTC)

    first = poll(duoplane_stack, store, last_polling_datetime=ago(hours=1))

    found = confirmed(first)
    assert sorted(found) == ids  # three pages, the last one short
    shipment = found[ids[0]]
    assert shipment == {
        "number": "1001-1",  # the purchase order number
        "order_number": None,
        "status": "shipped",
        "tracking": f"1ZSIM{ids[0]:08d}0",
        "tracking_numbers": [f"1ZSIM{ids[0]:08d}0", f"1ZSIM{ids[0]:08d}1"],
        "tracking_url": None,
        "carrier": "UPS",
        "carriers": ["UPS"],
        "service": None,
        "shipped_at": shipment["shipped_at"],
        "service_code": None,
        "shipping_method": None,
        "items": [{"name": "Blue Mug", "quantity": 1, "duoplane_order_item_id": 239417}],
        "cartons": [],
        "duoplane_shipment_id": ids[0],
        "duoplane_purchase_order_id": PURCHASE_ORDER,
    }
    assert shipment["shipped_at"].endswith("+00:00")
    cursor = cursor_of(first)
    moment = datetime.fromisoformat(cursor)
    assert moment.utcoffset() == timedelta(0)  # always with its offset
    assert started - timedelta(seconds=2) <= moment <= datetime.now(UTC)
    stored = redis_server.client().hget(f"shiphub:cursor:duoplane:{store}", "last_polling_datetime")
    assert stored is not None and json.loads(stored) == cursor

    # The next poll re-reads 300 s before the cursor: the same shipments again, none confirmed.
    later = sim.inject(count=2, updated_at=ago(seconds=1))
    second = poll(duoplane_stack, store)  # the stored cursor
    assert sorted(confirmed(second)) == later
    third = poll(duoplane_stack, store, last_polling_datetime=ago(hours=1))
    assert confirmed(third) == {}
    assert "already confirmed" in third["notifications"][-1]["description"]


def test_the_query_sends_its_time_with_an_offset_so_the_users_zone_does_not_shift_it(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    """The simulator reads a time without offset in the API user's zone: a client that dropped
    the offset would ask from 8 hours later (Los Angeles) and miss these."""
    sim.configure(time_zone="America/Los_Angeles")
    ids = sim.inject(count=2, updated_at=ago(minutes=12))
    answer = poll(duoplane_stack, store, last_polling_datetime=ago(minutes=10))
    assert sorted(confirmed(answer)) == ids  # 10 min + the 300 s overlap back


def test_a_first_poll_without_a_cursor_reads_24_hours_back(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    sim.inject(count=1, updated_at=ago(hours=25))
    recent = sim.inject(count=1, updated_at=ago(hours=23))
    answer = poll(duoplane_stack, store)
    assert sorted(confirmed(answer)) == recent


def test_a_shipment_sent_by_send_tracking_is_not_confirmed_back_to_the_hub(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    assert post(duoplane_stack, "send_tracking", confirm_message(), store).status_code == 200
    vendor = sim.inject(count=1)
    answer = poll(duoplane_stack, store, last_polling_datetime=ago(hours=1))
    assert sorted(confirmed(answer)) == vendor


def test_a_poll_of_many_pages_is_paced_by_the_bucket_and_meets_no_429(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    """10,000 shipments in 40 pages of 250 (and the empty 41st): 41 requests against a bucket
    of 5 draining 10/s (Duoplane's 40 and 2/s, scaled to keep the run short)."""
    ids = sim.inject(count=10_000, updated_at=ago(minutes=5))
    since = datetime.now(UTC).timestamp()
    answer = poll(duoplane_stack, store, last_polling_datetime=ago(minutes=10))

    assert len(confirmed(answer)) == len(ids)
    lists = list_requests(sim, since)
    pages = 10_000 // PAGE_SIZE + 1  # the last page is empty: 10,000 is a multiple
    # An attempt cut off by its deadline (a loaded machine) asks its page again, no other.
    attempts = int(duoplane_stack.record("duoplane", answer["message_id"])["attempts"])
    assert pages <= len(lists) <= pages + attempts - 1, (len(lists), attempts)
    assert sim.requests(since)["statuses"].get("429", 0) == 0
    assert [e["status"] for e in lists] == [200] * len(lists)
    took = lists[-1]["at"] - lists[0]["at"]
    assert took >= (len(lists) - CAPACITY - 1) / PER_SECOND * 0.8  # paced, not a burst


def test_duoplane_retry_after_seconds_is_honoured_and_the_poll_still_completes(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    ids = sim.inject(count=PAGE_SIZE + 5, updated_at=ago(minutes=5))
    sim.fault("list", "rate_limited", retry_after_seconds=1.5)
    since = datetime.now(UTC).timestamp()
    message = poll_message(last_polling_datetime=ago(minutes=10))
    response = post(duoplane_stack, "tracking", message, store)

    assert response.status_code == 200, response.text
    assert sorted(confirmed(response.json())) == ids
    lists = list_requests(sim, since)
    assert [e["status"] for e in lists] == [429, 200, 200]
    assert lists[1]["at"] - lists[0]["at"] >= 1.5  # waited as told, plus the margin
    assert duoplane_stack.record("duoplane", message["message_id"])["attempts"] == 1


def test_a_bucket_smaller_than_ours_is_kept_to_by_the_header_on_every_answer(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    """Someone else uses the same API user (here: Duoplane's bucket is smaller than we think,
    2 draining 5/s): the Duoplane-Retry-After-Seconds of each answer holds every worker until
    Duoplane has room, so the poll meets no 429 and goes at Duoplane's pace."""
    sim.configure(rate_capacity=2, rate_per_second=5)
    ids = sim.inject(count=6 * PAGE_SIZE, updated_at=ago(minutes=5))
    since = datetime.now(UTC).timestamp()
    message = poll_message(last_polling_datetime=ago(minutes=10))
    response = post(duoplane_stack, "tracking", message, store)

    assert response.status_code == 200, response.text
    assert len(confirmed(response.json())) == len(ids)
    lists = list_requests(sim, since)
    assert [e["status"] for e in lists] == [200] * 7
    assert lists[-1]["at"] - lists[0]["at"] >= (7 - 2 - 1) / 5 * 0.8
