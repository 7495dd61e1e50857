"""The guarantees on the time axis, through real processes: a handler slower than its deadline, a
live handler outliving its lease, a dead one losing it, a provider or a hub down for longer than
a minute, a back-off longer than the visibility timeout, Redis failing under a running handler,
duplicate push tasks, and what Flower shows."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import requests
from celery import Celery

from tests.pipeline.conftest import stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, free_port, serving, wait_until


@contextlib.contextmanager
def stack_with(
    redis_server: RedisServer | None,
    provider: ProviderServer,
    hub: HubServer,
    **env: str | None,
) -> Iterator[Stack]:
    """A receiver and a worker with these settings on top of the pipeline's."""
    with serving(redis_server, {**stack_env(provider, hub), **env}) as running:
        yield running


def test_a_provider_call_slower_than_the_deadline_is_cut_and_its_late_answer_changes_nothing(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    number, message_id = body["payload"]["order"]["number"], body["message_id"]
    # The first call answers (a 503) only after 9 s, well past the 3 s deadline, the lease and
    # the visibility timeout.
    provider.script(number, {"delay": 9, "status": 503})
    settings = {"TASK_TIME_LIMIT_SECONDS": "3", "LEASE_SECONDS": "2"}
    with stack_with(redis_server, provider, hub, **settings) as stack:
        started = time.monotonic()
        assert stack.post("/acme/send_order", body).status_code == 200

        stack.wait_status("acme", message_id, "succeeded", timeout=40)
        took = time.monotonic() - started
        hub.wait_for(message_id)
        time.sleep(10)  # the slow first call has answered by now

        record = stack.record("acme", message_id)
    assert took < 9  # the first attempt ended at its deadline, not when the provider answered
    assert (record["status"], record["attempts"]) == ("succeeded", 2)
    assert len(hub.received(message_id)) == 1
    assert provider.effects_for(number) == 1


def test_a_live_handler_keeps_its_lease_beyond_lease_seconds_and_the_visibility_timeout(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    number, message_id = body["payload"]["order"]["number"], body["message_id"]
    provider.script(number, {"delay": 7})  # succeeds after 7 s
    settings = {
        "LEASE_SECONDS": "1",
        "TASK_TIME_LIMIT_SECONDS": "20",
        "BROKER_VISIBILITY_TIMEOUT_SECONDS": "3",  # the broker redelivers it meanwhile
    }
    with stack_with(redis_server, provider, hub, **settings) as stack:
        assert stack.post("/acme/send_order", body).status_code == 200
        stack.wait_status("acme", message_id, "succeeded", timeout=30)
        hub.wait_for(message_id)
        time.sleep(2)
        record = stack.record("acme", message_id)
    assert record["attempts"] == 1
    assert provider.requests[number] == 1
    assert len(hub.received(message_id)) == 1


def test_a_killed_worker_loses_its_lease_quickly_and_its_message_is_recovered(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    number, message_id = body["payload"]["order"]["number"], body["message_id"]
    provider.held.clear()
    provider.release.clear()
    provider.script(number, {"hold": True})
    settings = {
        "LEASE_SECONDS": "2",
        "TASK_TIME_LIMIT_SECONDS": "60",
        "BROKER_VISIBILITY_TIMEOUT_SECONDS": "120",
        "WATCHDOG_INTERVAL_SECONDS": "1",
    }
    with stack_with(redis_server, provider, hub, **settings) as stack:
        assert stack.post("/acme/send_order", body).status_code == 200
        assert provider.held.wait(20), "the provider call never started"
        stack.services["worker"].kill()
        provider.release.set()
        stack.start_worker("second")
        killed = time.monotonic()

        record = stack.wait_status("acme", message_id, "succeeded", timeout=25)
        recovered = time.monotonic() - killed
        hub.wait_for(message_id)
    assert recovered < 20  # not the 120 s visibility timeout, nor the 60 s time limit
    assert record["attempts"] == 2
    assert provider.effects_for(number) == 1


def test_a_provider_down_for_longer_than_six_attempts_is_retried_until_it_is_back(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    number, message_id = body["payload"]["order"]["number"], body["message_id"]
    # Down for eight attempts (counted, not timed: a loaded machine makes fewer in a time span).
    down = {"status": 503, "errors": ["maintenance"]}
    provider.script(number, *[down] * 8)
    settings = {"TASK_MAX_ATTEMPTS": None, "RETRY_MAX_SECONDS": "1"}
    with stack_with(redis_server, provider, hub, **settings) as stack:
        assert stack.post("/acme/send_order", body).status_code == 200

        record = stack.wait_status("acme", message_id, "succeeded", "dead", timeout=40)
        hub.wait_for(message_id)
    assert record["status"] == "succeeded"
    assert record["attempts"] == 9  # the default limit (6) does not apply
    assert provider.effects_for(number) == 1
    assert len(hub.received(message_id)) == 1


def test_the_retry_budget_is_time_not_attempts(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    number, message_id = body["payload"]["order"]["number"], body["message_id"]
    provider.script(number, {"status": 503, "errors": ["maintenance"], "until": time.time() + 60})
    settings = {"TASK_MAX_ATTEMPTS": None, "RETRY_MAX_SECONDS": "1", "RETRY_FOR_SECONDS": "6"}
    with stack_with(redis_server, provider, hub, **settings) as stack:
        assert stack.post("/acme/send_order", body).status_code == 200

        record = stack.wait_status("acme", message_id, "dead", timeout=30)
        pushed = hub.wait_for(message_id)
    received = _epoch(record["received_at"])
    assert 5.5 <= _epoch(record["finished_at"]) - received <= 9
    assert record["attempts"] > 6
    assert "maintenance" in pushed["notifications"][0]["description"]


def test_a_back_off_longer_than_the_visibility_timeout_runs_the_retry_once(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    number, message_id = body["payload"]["order"]["number"], body["message_id"]
    provider.script(number, {"status": 503, "retry_after": 8})
    settings = {
        "RETRY_MAX_SECONDS": "30",
        "BROKER_VISIBILITY_TIMEOUT_SECONDS": "4",
        "TASK_TIME_LIMIT_SECONDS": "2",
    }
    with stack_with(redis_server, provider, hub, **settings) as stack:
        started = time.monotonic()
        assert stack.post("/acme/send_order", body).status_code == 200
        record = stack.wait_status("acme", message_id, "succeeded", timeout=30)
        took = time.monotonic() - started
        hub.wait_for(message_id)
        time.sleep(3)
    assert took >= 8  # Retry-After honoured, beyond the visibility timeout
    assert provider.requests[number] == 2
    assert record["attempts"] == 2
    assert len(hub.received(message_id)) == 1


def test_the_hub_down_for_longer_than_fifteen_pushes_still_gets_the_answer_once(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    message_id = body["message_id"]
    settings = {"HUB_PUSH_RETRY_MAX_SECONDS": "1"}
    with stack_with(redis_server, provider, hub, **settings) as stack:
        with hub.lock:
            hub.down = True
        try:
            assert stack.post("/acme/send_order", body).status_code == 200
            wait_until(lambda: hub.attempts_by_id[message_id] >= 1, timeout=20)
            time.sleep(20)  # fifteen pushes a second apart would have given up by now
            assert stack.record("acme", message_id)["delivery"]["status"] == "pending"
        finally:
            with hub.lock:
                hub.down = False
        hub.wait_for(message_id, timeout=20)
        time.sleep(2)
        record = stack.record("acme", message_id)
    assert len(hub.received(message_id)) == 1
    assert record["delivery"]["status"] == "delivered"
    assert record["delivery"]["attempts"] > 15


def test_duplicate_push_tasks_collapse_into_one_chain_and_one_push(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    message_id = body["message_id"]
    settings = {"HUB_PUSH_RETRY_MAX_SECONDS": "1"}

    def deliver_tasks_run(stack: Stack) -> int:
        return stack.services["worker"].output().count("Task shiphub.deliver[")

    with stack_with(redis_server, provider, hub, **settings) as stack:
        with hub.lock:
            hub.down = True
        try:
            assert stack.post("/acme/send_order", body).status_code == 200
            wait_until(lambda: hub.attempts_by_id[message_id] >= 1, timeout=20)
            celery = Celery(broker=stack.redis.url)
            for _ in range(8):  # as a redelivery, the watchdog or a replay could add them
                celery.send_task("shiphub.deliver", args=["acme", message_id], queue="hub")
            time.sleep(2)
            tasks_before, pushes_before = deliver_tasks_run(stack), hub.attempts_by_id[message_id]
            time.sleep(8)
            tasks = deliver_tasks_run(stack) - tasks_before
            pushes = hub.attempts_by_id[message_id] - pushes_before
        finally:
            with hub.lock:
                hub.down = False
        hub.wait_for(message_id, timeout=20)
        time.sleep(3)
    # One chain: a task per push, at most one every 0.5 s (a 1 s back-off jittered to 50-100 %).
    # Nine chains that never collapse would run about nine tasks a second.
    assert tasks <= 2 * (8 / 0.5 + 1)  # "received" and "succeeded"/"retry" lines per task
    assert pushes <= 8 / 0.5 + 1
    assert len(hub.received(message_id)) == 1


def test_a_redis_error_under_a_running_handler_is_retried_promptly(
    provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    number, message_id = body["payload"]["order"]["number"], body["message_id"]
    provider.script(number, {"delay": 3})  # Redis goes away while the provider works
    settings = {
        "TASK_TIME_LIMIT_SECONDS": "60",
        "BROKER_VISIBILITY_TIMEOUT_SECONDS": "120",
        "LEASE_SECONDS": "10",
        "WATCHDOG_INTERVAL_SECONDS": "1",
    }
    with stack_with(None, provider, hub, **settings) as stack:  # a Redis of its own to stop
        assert stack.post("/acme/send_order", body).status_code == 200
        wait_until(lambda: provider.requests[number] >= 1, timeout=20)
        stack.redis.stop()
        time.sleep(5)  # the provider answered meanwhile; the handler could not write
        stack.redis.start()
        back = time.monotonic()

        stack.wait_status("acme", message_id, "succeeded", timeout=40)
        recovered = time.monotonic() - back
        hub.wait_for(message_id, timeout=20)
    assert recovered < 20  # not the ~20 minutes of the watchdog's old deadline
    assert provider.effects_for(number) == 1


def test_flower_shows_failed_and_dead_messages_as_failure_and_a_waiting_retry_as_retry(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> None:
    refused, flaky = order_message(), order_message()
    provider.script(
        refused["payload"]["order"]["number"], {"status": 422, "errors": ["No such SKU"]}
    )
    provider.script(flaky["payload"]["order"]["number"], {"status": 503, "retry_after": 60})
    port = free_port()
    with stack_with(redis_server, provider, hub, RETRY_MAX_SECONDS="5") as stack:
        stack.start_flower(port)

        def tasks_of(message_id: str) -> list[dict]:
            found = requests.get(f"http://127.0.0.1:{port}/api/tasks", timeout=5).json()
            return [t for t in found.values() if message_id in str(t.get("args"))]

        def flower_follows() -> bool:  # a fresh message each time: Flower may miss the first
            probe = order_message()
            stack.post("/acme/send_order", probe, wait=10)
            time.sleep(0.3)
            return any(t["state"] == "SUCCESS" for t in tasks_of(probe["message_id"]))

        wait_until(flower_follows, timeout=30)
        assert stack.post("/acme/send_order", refused, wait=20).status_code == 500
        assert stack.post("/acme/send_order", flaky).status_code == 200
        stack.wait_status("acme", flaky["message_id"], "retrying")

        failed = wait_until(
            lambda: [t for t in tasks_of(refused["message_id"]) if t["state"] == "FAILURE"],
            timeout=20,
        )
        retrying = wait_until(
            lambda: [t for t in tasks_of(flaky["message_id"]) if t["state"] == "RETRY"],
            timeout=20,
        )
        record = stack.record("acme", refused["message_id"])
    assert "No such SKU" in failed[0]["exception"]
    assert "503" in retrying[0]["exception"]
    assert record["status"] == "failed"  # what the hub is told is unchanged


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()
