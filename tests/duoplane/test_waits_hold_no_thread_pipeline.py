"""Duoplane's handlers waiting for its pace hold no worker thread (real redis-server, a Celery
worker of one thread, Duoplane's simulator and the test provider over HTTP): when the next page must
wait longer than ``PACE_SLEEP_MAX_SECONDS``, the poll's attempt ends and the message comes back
when that page may go, resuming from the page it stopped at. Meanwhile the worker's one thread
handles another integration's message at once, and the poll still reads every page once and
confirms every shipment once. The same for ``send_tracking``, whose look, create and look
again each take room: its look after creating comes back when it may go, and the confirmation
is answered as sent, once.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.duoplane.conftest import (
    PAGE_SIZE,
    PURCHASE_ORDER,
    DuoplaneSimulator,
    confirm_message,
    duoplane_env,
    poll_message,
)
from tests.duoplane.test_tracking_pipeline import confirmed, list_requests
from tests.pipeline.conftest import provider, stack_env
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, wait_until

__all__ = ["provider"]  # the test provider's fixture, shared with the pipeline tests

PAGES = 5
# Our bucket: 2 requests, draining one every 2 s: from the third page on, each waits 2 s, longer
# than PACE_SLEEP_MAX_SECONDS (1 s by default). The simulator's own bucket is larger: the wait
# is our pace's, not a 429's.
PACE = {"DUOPLANE_RATE_CAPACITY": "2", "DUOPLANE_RATE_PER_SECOND": "0.5"}
PROMPT_SECONDS = 1.5  # a message nothing waits in front of is handled within this


@contextlib.contextmanager
def one_thread(env: dict[str, str | None]) -> Iterator[Stack]:
    """A receiver and one worker of one thread on a Redis of their own."""
    server = RedisServer().start()
    stack = Stack(server, env)
    try:
        stack.start_web()
        stack.start_worker(concurrency=1)
        yield stack
    finally:
        stack.stop()
        server.stop()


def order_message() -> dict[str, Any]:
    return {
        "message_id": uuid.uuid4().hex[:24],
        "message": "order:ready",
        "payload": {"order": {"number": uuid.uuid4().hex[:12], "quantity": 1}},
    }


def test_a_poll_waiting_for_its_pace_frees_the_thread_and_confirms_every_shipment_once(
    simulator_process: DuoplaneSimulator, provider: ProviderServer, hub: HubServer
) -> None:
    sim = simulator_process
    sim.reset()
    ids = sim.inject(count=(PAGES - 1) * PAGE_SIZE + 10, updated_at=_ago(minutes=5))
    env = {**duoplane_env(sim, hub), **stack_env(provider, hub), **PACE}
    since = datetime.now(UTC).timestamp()
    poll = poll_message(last_polling_datetime=_ago(minutes=10))
    with one_thread(env) as stack, ThreadPoolExecutor(1) as waiting:
        answered = waiting.submit(stack.post, "/duoplane/tracking", poll, wait=55, store="s1")
        wait_until(lambda: len(list_requests(sim, since)) >= 2, timeout=20)  # then it waits

        order = order_message()
        started = time.monotonic()
        assert stack.post("/acme/send_order", order).status_code == 200
        status = stack.wait_status("acme", order["message_id"], "succeeded", "failed", timeout=30)
        took = time.monotonic() - started

        assert status["status"] == "succeeded"
        assert took < PROMPT_SECONDS, f"the Acme order waited {took:.1f} s behind the poll's pace"
        response = answered.result(timeout=60)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert sorted(confirmed(answer)) == ids  # every shipment, none twice
        summary = answer["notifications"][-1]["description"]  # counted across its attempts
        assert summary.startswith(f"{len(ids)} new shipment(s) updated since"), summary
        assert f"({PAGES} page(s))" in summary, summary
        record = stack.record("duoplane", poll["message_id"])
        assert record["status"] == "succeeded"
        assert int(record["attempts"]) == 1  # waiting for the pace is not a failed attempt
    lists = list_requests(sim, since)
    assert [e["status"] for e in lists] == [200] * PAGES  # every page read once
    # the pages that waited went at our pace: one every 2 s after the first two
    assert lists[-1]["at"] - lists[1]["at"] >= (PAGES - 2) * 2 * 0.9


def test_a_confirmation_waiting_for_its_pace_frees_the_thread_and_is_sent_once(
    simulator_process: DuoplaneSimulator, provider: ProviderServer, hub: HubServer
) -> None:
    """Our bucket of 2 requests draining one every 4 s: the look and the create go at once, the
    look after creating waits 4 s, scheduled rather than slept."""
    sim = simulator_process
    sim.reset()
    env = {
        **duoplane_env(sim, hub),
        **stack_env(provider, hub),
        "DUOPLANE_RATE_CAPACITY": "2",
        "DUOPLANE_RATE_PER_SECOND": "0.25",
    }
    body = confirm_message()
    since = datetime.now(UTC).timestamp()
    with one_thread(env) as stack, ThreadPoolExecutor(1) as waiting:
        answered = waiting.submit(stack.post, "/duoplane/send_tracking", body, wait=55)
        wait_until(lambda: any(e["route"] == "create" for e in sim.requests(since)["log"]), 20)

        order = order_message()
        started = time.monotonic()
        assert stack.post("/acme/send_order", order).status_code == 200
        status = stack.wait_status("acme", order["message_id"], "succeeded", "failed", timeout=30)
        took = time.monotonic() - started

        assert status["status"] == "succeeded"
        assert took < PROMPT_SECONDS, f"the Acme order waited {took:.1f} s behind the pace"
        response = answered.result(timeout=60)
        assert response.status_code == 200, response.text
        (note,) = response.json()["notifications"]
        assert note["subject"] == "Tracking sent to Duoplane", note  # not "found": it made it
        record = stack.record("duoplane", body["message_id"])
        assert record["status"] == "succeeded"
        assert int(record["attempts"]) == 1  # waiting for the pace is not a failed attempt
    (created,) = sim.shipments(PURCHASE_ORDER)  # one shipment
    tracking = body["payload"]["shipment"]["tracking_numbers"]
    assert [t["tracking"] for t in created["shipment_trackings_attributes"]] == tracking


def _ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def test_a_poll_longer_than_its_attempt_reads_on_where_the_attempt_ended(
    simulator_process: DuoplaneSimulator, provider: ProviderServer, hub: HubServer
) -> None:
    """Each list answer takes 1.5 s and an attempt has 4 s: the 5 pages cannot be read in one
    attempt. An attempt cut off (its deadline, a read timeout: a transient failure) confirms and
    sends ahead what it read and keeps where it got; the next reads on from the page it was on,
    so the poll ends, every shipment confirmed once, and no page before it read again."""
    sim = simulator_process
    sim.reset()
    ids = sim.inject(count=(PAGES - 1) * PAGE_SIZE + 10, updated_at=_ago(minutes=5))
    sim.fault("list", "slow", count=1000, delay_seconds=1.5)
    env = {
        **duoplane_env(sim, hub),
        **stack_env(provider, hub),
        "TASK_TIME_LIMIT_SECONDS": "4",
        "RETRY_MAX_SECONDS": "1",
        "TASK_MAX_ATTEMPTS": "10",
    }
    since = datetime.now(UTC).timestamp()
    poll = poll_message(last_polling_datetime=_ago(minutes=10))
    with one_thread(env) as stack:
        response = stack.post("/duoplane/tracking", poll, wait=90, store="s1")
        assert response.status_code == 200, response.text
        answer = response.json()
        assert sorted(confirmed(answer)) == ids  # every shipment, none twice
        record = stack.record("duoplane", poll["message_id"])
        assert record["status"] == "succeeded"
        assert int(record["attempts"]) > 1  # it did take more than one attempt
    read = [e for e in list_requests(sim, since) if e["status"] == 200]
    pages = [e.get("page") for e in read]
    # A page cut off by the deadline is asked again; one answered whole is not.
    assert len(read) <= PAGES + int(record["attempts"]) - 1, pages
