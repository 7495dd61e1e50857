"""An upgrade: records written before the state indexes existed (failed, dead and retrying ones
that no index lists) are listed by ``GET /messages`` once a worker of this version starts, each
scored by when it entered its state as the live path scores it; one that succeeded is not; and a
second run adds nothing. On the real pieces: redis-server, gunicorn, Celery workers, the Acme
provider over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.pipeline.conftest import stack_env
from tests.pipeline.test_failed_listing import REFUSED, a_store, ids, listed, send
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import Stack, serving, wait_until
from worker.store.schema import STATE_PREFIX, STATES_BACKFILLED

HELD_SECONDS = 120  # the retrying message stays retrying for the whole test


@pytest.fixture
def upgraded(provider: ProviderServer, hub: HubServer) -> Iterator[Stack]:
    """A receiver and a worker on a Redis of their own (no other worker indexes its records)."""
    env = {**stack_env(provider, hub), "RETRY_MAX_SECONDS": str(HELD_SECONDS * 2)}
    with serving(None, env) as running:
        yield running


def indexes(client: redis.Redis) -> dict[str, list[tuple[str, float]]]:
    """Every state index, with its entries and their scores."""
    return {
        key: client.zrange(key, 0, -1, withscores=True)
        for key in sorted(client.scan_iter(STATE_PREFIX + "*"))
    }


def test_records_written_before_the_indexes_are_listed_once_a_worker_starts(
    upgraded: Stack, provider: ProviderServer
) -> None:
    stack, shop = upgraded, a_store()
    failed = send(stack, provider, shop, REFUSED)
    dead = send(stack, provider, shop, *[{"status": 503, "errors": ["maintenance"]}] * 3)
    succeeded = send(stack, provider, shop)
    retrying = send(stack, provider, shop, {"status": 503, "retry_after": HELD_SECONDS})
    for message_id, status in (
        (failed, "failed"),
        (dead, "dead"),
        (succeeded, "succeeded"),
        (retrying, "retrying"),
    ):
        stack.wait_status("acme", message_id, status)
    client = stack.redis.client()
    live = indexes(client)  # as the live path wrote them
    assert live

    # The records as a version without the indexes left them: no index, no backfill yet.
    stack.services["worker"].stop()
    client.delete(STATES_BACKFILLED, *live)
    assert listed(stack, store=shop, status="failed,dead,retrying") == []

    stack.start_worker("upgraded")
    everything = wait_until(
        lambda: listed(stack, store=shop, status="failed,dead,retrying"), timeout=30
    )
    wait_until(lambda: client.get(STATES_BACKFILLED) == "done", timeout=30)

    assert sorted(ids(everything)) == sorted([failed, dead, retrying])
    assert {(row["message_id"], row["status"]) for row in everything} == {
        (failed, "failed"),
        (dead, "dead"),
        (retrying, "retrying"),
    }
    assert succeeded not in ids(listed(stack, status="failed,dead,retrying", limit=500))
    assert indexes(client) == live  # the same entries, scored as the live path scored them

    # A second run (the marker gone, another worker starting) adds nothing.
    client.delete(STATES_BACKFILLED)
    stack.start_worker("again")
    wait_until(lambda: client.get(STATES_BACKFILLED) == "done", timeout=30)
    assert indexes(client) == live
