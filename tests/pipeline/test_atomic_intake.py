"""The task the intake's accept script queues is an ordinary Celery task: a real worker on the
integration's queue consumes it, retries it, and Flower shows it (real redis-server, gunicorn,
Celery worker and Flower)."""

from __future__ import annotations

import json
from typing import Any

import requests

from tests.pipeline.conftest import stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, free_port, wait_until


def test_a_message_queued_by_the_accept_script_is_consumed_retried_and_shown_in_flower(
    provider: ProviderServer, hub: HubServer
) -> None:
    redis_server = RedisServer().start()  # its own: the acme queue is read exactly
    stack = Stack(redis_server, stack_env(provider, hub))
    body = order_message()
    number, message_id = body["payload"]["order"]["number"], body["message_id"]
    provider.script(number, {"status": 503})  # the first attempt fails: a retry, then success
    port = free_port()
    try:
        stack.start_web()
        stack.start_worker("hub-only", queues="hub")  # nobody consumes acme yet
        stack.start_flower(port)

        assert stack.post("/acme/send_order", body).status_code == 200
        redis = redis_server.client()
        waiting = [json.loads(raw) for raw in redis.lrange("acme", 0, -1)]
        assert [m["headers"]["shiphub_message"] for m in waiting] == [f"acme:{message_id}"]
        task_id = waiting[0]["headers"]["id"]

        stack.start_worker("acme", queues="acme")
        stack.wait_status("acme", message_id, "succeeded", timeout=60)
        hub.wait_for(message_id, timeout=30)

        def shown() -> dict[str, Any] | None:
            tasks = requests.get(f"http://127.0.0.1:{port}/api/tasks", timeout=5).json()
            return tasks.get(task_id)

        queued_task = wait_until(lambda: (t := shown()) and t["state"] == "RETRY" and t, 30)
        record = stack.record("acme", message_id)
    finally:
        stack.stop()
        redis_server.stop()
    assert queued_task["name"] == "acme.order_ready"
    assert message_id in str(queued_task["args"])
    assert "503" in queued_task["exception"]
    assert queued_task["worker"].startswith("acme@")  # routed to the integration's queue
    assert (record["status"], record["attempts"]) == ("succeeded", 2)
    assert len(hub.received(message_id)) == 1
    assert provider.effects_for(number) == 1
