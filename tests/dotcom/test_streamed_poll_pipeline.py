"""A poll of thousands of releases through the real pieces: its answer leaves the worker in
batches stored ahead of its end, and an answer cut off half-way (the worker read part of the
document, then it broke) still confirms every release exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from tests.dotcom.conftest import DotcomSimulator, poll_message, post
from tests.dotcom.test_tracking_pipeline import confirms, cursor_value, hour_ago, item
from tests.support.servers import HubServer
from tests.support.stack import RedisServer, Stack, wait_until
from worker.integrations.dotcom.handlers import RECALL_BATCH
from worker.store.schema import parts_key

RELEASES = 5 * RECALL_BATCH  # cut in half, the first attempt reads two and a half batches


def inject(sim: DotcomSimulator, count: int) -> set[tuple[str, str]]:
    shipped = datetime.now(UTC) - timedelta(minutes=5)
    numbers = [f"S{index:07d}" for index in range(count)]

    def one(number: str) -> None:
        sim.inject(number, "01", shipped, [item("9011CC", tracking_number=f"1Z{number}")])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, numbers))
    return {(number, "01") for number in numbers}


def test_a_big_poll_cut_half_way_confirms_every_release_once_in_parts_pushed_in_order(
    dotcom_stack: Stack,
    sim: DotcomSimulator,
    store: str,
    redis_server: RedisServer,
    hub: HubServer,
) -> None:
    expected = inject(sim, RELEASES)
    sim.fault("malformed_xml", "shipment")  # the first answer is cut in half
    poll = poll_message(last_polling_datetime=hour_ago())

    response = post(dotcom_stack, "tracking", poll, store, wait=240)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(confirms(answer)) == expected  # the hub that waits gets all of it, once each
    record = dotcom_stack.record("dotcom", poll["message_id"])
    # Two attempts, or more when a loaded machine makes one overrun the tests' 4 s time limit:
    # each goes on from what the ones before it stored ahead.
    assert record["attempts"] >= 2, record
    ahead = redis_server.client().llen(parts_key("dotcom", poll["message_id"]))
    assert ahead >= 1  # the first attempt's first batch was stored ahead, and kept
    (summary,) = [n for n in answer["notifications"] if n["level"] == "info"]
    assert summary["description"].startswith(f"{RELEASES} new shipment(s) from ")

    wait_until(lambda: any(p["parameters"] for p in hub.received(poll["message_id"])), 120)
    pushed = hub.received(poll["message_id"])
    assert [p["part"] for p in pushed] == list(range(1, len(pushed) + 1))
    assert {p["parts"] for p in pushed} == {len(pushed)}
    assert len(pushed) > ahead  # the rest of the answer after the parts stored ahead
    assert set(confirms({"messages": [m for p in pushed for m in p["messages"]]})) == expected
    assert cursor_value(pushed[-1]) == cursor_value(answer)
    assert all(p["parameters"] == [] for p in pushed[:-1])


def test_a_poll_of_one_batch_answers_in_one_piece_as_before(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str, hub: HubServer
) -> None:
    expected = inject(sim, 20)
    poll = poll_message(last_polling_datetime=hour_ago())

    response = post(dotcom_stack, "tracking", poll, store)

    assert response.status_code == 200, response.text
    assert set(confirms(response.json())) == expected
    (pushed,) = [hub.wait_for(poll["message_id"])]
    wait_until(lambda: len(hub.received(poll["message_id"])) >= 1, 30)
    assert "part" not in pushed
    assert set(confirms(pushed)) == expected
