"""``GET /metrics`` through the real pieces (gunicorn, a Celery worker, redis-server, the Dotcom
simulator, a hub): what the worker, the pushes and the receiver count, as an operator reads it."""

from __future__ import annotations

import uuid
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.dotcom.conftest import DotcomSimulator, poll_message, post, shipment_message
from tests.metrics.conftest import POLL_LAG_SECONDS
from tests.support.servers import HubServer
from tests.support.stack import Stack, wait_until

Page = dict[tuple[str, frozenset[tuple[str, str]]], float]
SEND = {"integration": "dotcom", "service": "send_shipment"}


def scrape(stack: Stack) -> Page:
    response = requests.get(f"{stack.url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(page: Page, name: str, **labels: str) -> float:
    return page.get((name, frozenset(labels.items())), 0.0)


def moved(before: Page, after: Page) -> dict[str, float]:
    """What the Dotcom send_shipment numbers an operator pages on moved by."""

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    found = {
        outcome: delta("shiphub_messages_total", **SEND, outcome=outcome)
        for outcome in ("accepted", "retrying", "succeeded", "failed", "dead")
    }
    found["attempts"] = delta("shiphub_handler_duration_seconds_count", **SEND)
    found["provider_5xx"] = delta(
        "shiphub_retries_total", integration="dotcom", reason="provider_5xx"
    )
    found["http_error_calls"] = delta(
        "shiphub_provider_call_duration_seconds_count", integration="dotcom", outcome="http_error"
    )
    found["ok_calls"] = delta(
        "shiphub_provider_call_duration_seconds_count", integration="dotcom", outcome="ok"
    )
    found["dead_listed"] = delta("shiphub_dead_messages")
    return found


def send(stack: Stack, body: dict[str, Any]) -> requests.Response:
    return post(stack, "send_shipment", body, f"store-{uuid.uuid4().hex[:8]}", wait=45)


def test_messages_are_counted_by_outcome_with_their_attempts_and_retry_reasons(
    metrics_stack: Stack, sim: DotcomSimulator
) -> None:
    before = scrape(metrics_stack)

    assert send(metrics_stack, shipment_message()).status_code == 200  # succeeded
    sim.fault("http_500", "order")  # its first attempt meets a 500: retrying, then sent
    assert send(metrics_stack, shipment_message()).status_code == 200
    refused = shipment_message(items=[{"sku": "NOPE-1", "quantity": 1}])  # Dotcom refuses it
    assert send(metrics_stack, refused).status_code == 500
    sim.fault("http_500", "order", count=3)  # every attempt (TASK_MAX_ATTEMPTS=3): dead
    dead = shipment_message()
    assert send(metrics_stack, dead).status_code == 500
    assert metrics_stack.record("dotcom", dead["message_id"])["status"] == "dead"

    found = moved(before, scrape(metrics_stack))

    assert {k: found[k] for k in ("accepted", "succeeded", "failed", "dead")} == {
        "accepted": 4,
        "succeeded": 2,
        "failed": 1,
        "dead": 1,
    }
    assert found["retrying"] == 3  # one for the message sent on its 2nd try, two for the dead one
    assert found["provider_5xx"] == 3
    assert found["attempts"] == 7  # 1 + 2 + 1 + 3 handler runs, each timed
    assert found["http_error_calls"] == 4  # the four 500s
    # The two sent, the refused one (200 with order errors), and a look (GET /order) before
    # each of the three retries: a POST answered 500 may have landed.
    assert found["ok_calls"] == 6
    assert found["dead_listed"] == 1


def test_outbox_depth_and_age_grow_while_the_hub_refuses_pushes(
    metrics_stack: Stack, hub: HubServer
) -> None:
    wait_until(lambda: value(scrape(metrics_stack), "shiphub_outbox_pending") == 0, timeout=60)
    before = scrape(metrics_stack)
    with hub.lock:
        hub.down = True
    try:
        body = shipment_message()
        assert send(metrics_stack, body).status_code == 200

        def aged() -> Page | None:
            page = scrape(metrics_stack)
            return page if value(page, "shiphub_outbox_oldest_age_seconds") >= 6 else None

        # Pushes fail and are rescheduled (at most HUB_PUSH_RETRY_MAX_SECONDS=2 s apart), while
        # the answer's age counts from when it was ready, not from its next push.
        page = wait_until(aged, timeout=60)
        assert value(page, "shiphub_outbox_pending") == 1
        retried = value(
            page, "shiphub_deliveries_total", integration="dotcom", outcome="retrying"
        ) - value(before, "shiphub_deliveries_total", integration="dotcom", outcome="retrying")
        assert retried >= 2
        assert metrics_stack.record("dotcom", body["message_id"])["delivery"]["status"] == (
            "pending"
        )
    finally:
        with hub.lock:
            hub.down = False

    def settled() -> Page | None:
        page = scrape(metrics_stack)
        done = value(page, "shiphub_outbox_pending") == 0
        return page if done and value(page, "shiphub_outbox_oldest_age_seconds") == 0 else None

    after = wait_until(settled, timeout=60)
    delivered = value(
        after, "shiphub_deliveries_total", integration="dotcom", outcome="delivered"
    ) - value(before, "shiphub_deliveries_total", integration="dotcom", outcome="delivered")
    assert delivered == 1
    assert hub.received(body["message_id"])


def test_a_dotcom_poll_shows_its_stores_lag_and_when_its_cursor_moved(
    metrics_stack: Stack,
) -> None:
    store = f"store-{uuid.uuid4().hex[:8]}"
    labels = {"integration": "dotcom", "store": store}
    assert ("shiphub_poll_lag_seconds", frozenset(labels.items())) not in scrape(metrics_stack)

    response = post(metrics_stack, "tracking", poll_message(), store, wait=45)

    assert response.status_code == 200, response.text
    page = scrape(metrics_stack)
    # The window (and so the cursor) ends DOTCOM_POLL_LAG_SECONDS before the poll.
    lag = value(page, "shiphub_poll_lag_seconds", **labels)
    assert POLL_LAG_SECONDS - 2 <= lag <= POLL_LAG_SECONDS + 60
    assert 0 <= value(page, "shiphub_poll_cursor_age_seconds", **labels) <= 60
    polls = {"integration": "dotcom", "service": "tracking"}
    assert value(page, "shiphub_messages_total", **polls, outcome="succeeded") >= 1
