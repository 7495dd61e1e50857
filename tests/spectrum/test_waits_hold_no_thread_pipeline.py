"""Waits we impose ourselves hold no worker thread (real redis-server, a Celery worker with two
threads, Spectrum's simulator and the test provider over HTTP):

* a Spectrum backlog waiting for its pace is scheduled for when each call may go, not slept in a
  thread, so another integration's message is handled at once, and the backlog still goes out
  within Spectrum's limit, each message in one attempt;
* an integration held to ``<NAME>_MAX_CONCURRENCY`` takes no more threads than that: its other
  messages are deferred, not blocked, and another integration's message is handled at once.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.pipeline.conftest import provider, stack_env
from tests.spectrum.conftest import (
    SpectrumSimulator,
    confirm_message,
    purchase_order,
    recipe_set,
    spectrum_env,
)
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, wait_until

__all__ = ["provider"]  # the test provider's fixture, shared with the pipeline tests

THREADS = 2
PROMPT_SECONDS = 1.5  # a message nothing waits in front of is handled within this


@contextlib.contextmanager
def two_threads(env: dict[str, str | None]) -> Iterator[Stack]:
    """A receiver and one worker of ``THREADS`` threads on a Redis of their own."""
    server = RedisServer().start()
    stack = Stack(server, env)
    try:
        stack.start_web()
        stack.start_worker(concurrency=THREADS)
        yield stack
    finally:
        stack.stop()
        server.stop()


@pytest.fixture
def env(
    simulator_process: SpectrumSimulator, provider: ProviderServer, hub: HubServer
) -> dict[str, str | None]:
    simulator_process.reset()
    return {**spectrum_env(simulator_process, hub), **stack_env(provider, hub)}


def order_message() -> dict[str, Any]:
    return {
        "message_id": uuid.uuid4().hex[:24],
        "message": "order:ready",
        "payload": {"order": {"number": uuid.uuid4().hex[:12], "quantity": 1}},
    }


def finished(stack: Stack, integration: str, body: dict[str, Any]) -> dict[str, Any]:
    return stack.wait_status(
        integration, body["message_id"], "succeeded", "failed", "dead", timeout=60
    )


def handled_in(stack: Stack, path: str, integration: str, body: dict[str, Any]) -> float:
    """Post ``body`` and wait for its success: the seconds it took."""
    started = time.monotonic()
    assert stack.post(path, body).status_code == 200
    assert finished(stack, integration, body)["status"] == "succeeded"
    return time.monotonic() - started


def test_a_paced_backlog_holds_no_thread_and_still_goes_out_within_the_limit(
    env: dict[str, str | None], simulator_process: SpectrumSimulator
) -> None:
    """Paced to one call every 3 s, 5 confirmations take 12 s to go out: meanwhile an Acme order
    is handled at once, and the confirmations all go, each in one attempt, never throttled."""
    sim = simulator_process
    po = purchase_order()
    sets = [recipe_set() for _ in range(5)]
    sim.add_order(po, *sets)
    bodies = [confirm_message(po, [rs]) for rs in sets]
    with two_threads({**env, "SPECTRUM_RATE_PER_MINUTE": "20"}) as stack:
        for body in bodies:
            assert stack.post("/spectrum/send_tracking", body).status_code == 200
        wait_until(lambda: len(sim.notifications(po)) >= 2, timeout=20)

        took = handled_in(stack, "/acme/send_order", "acme", order_message())

        assert took < PROMPT_SECONDS, f"the Acme order waited {took:.1f} s behind the pace"
        records = [finished(stack, "spectrum", b) for b in bodies]
        assert {r["status"] for r in records} == {"succeeded"}
        assert {int(r["attempts"]) for r in records} == {1}  # waiting is not a failed attempt
        assert len(sim.notifications(po)) == 5
        assert sim.requests().get("throttled", 0) == 0


def test_an_integration_held_to_its_concurrency_leaves_the_other_threads_free(
    env: dict[str, str | None], provider: ProviderServer, simulator_process: SpectrumSimulator
) -> None:
    """ACME_MAX_CONCURRENCY=1: four slow Acme orders take one of the two threads at a time, so a
    Spectrum confirmation is handled at once; the orders are all made, one at a time."""
    sim = simulator_process
    orders = [order_message() for _ in range(5)]
    for body in orders:
        provider.script(body["payload"]["order"]["number"], {"delay": 2})
    po, rs = purchase_order(), recipe_set()
    sim.add_order(po, rs)
    with two_threads({**env, "ACME_MAX_CONCURRENCY": "1"}) as stack:
        for body in orders:
            assert stack.post("/acme/send_order", body).status_code == 200
        wait_until(lambda: sum(provider.requests[o["payload"]["order"]["number"]] for o in orders))

        took = handled_in(stack, "/spectrum/send_tracking", "spectrum", confirm_message(po, [rs]))

        assert took < PROMPT_SECONDS, f"the confirmation waited {took:.1f} s behind Acme"
        records = [finished(stack, "acme", b) for b in orders]
        assert {r["status"] for r in records} == {"succeeded"}
        assert {int(r["attempts"]) for r in records} == {1}  # deferred, not failed
        assert all(provider.effects_for(o["payload"]["order"]["number"]) == 1 for o in orders)


def test_an_invalid_concurrency_limit_stops_the_worker_naming_it(
    env: dict[str, str | None],
) -> None:
    server = RedisServer().start()
    stack = Stack(server, {**env, "SPECTRUM_MAX_CONCURRENCY": "none"})
    try:
        worker = stack._celery("worker", "worker", "--pool", "threads")
        wait_until(lambda: not worker.alive(), timeout=60)
        assert worker.process.returncode == 3
        assert "SPECTRUM_MAX_CONCURRENCY must be a whole number" in worker.output()
    finally:
        stack.stop()
        server.stop()
