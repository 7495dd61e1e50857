"""One failed message, seen by every operator's tool: Flower, /metrics, the logs, the command line
and the operations page all say the same thing about it (real redis-server, gunicorn, Celery
worker, Flower and the `shiphub` console script)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import requests

from tests.pipeline.conftest import stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import ROOT, Stack, free_port, serving, wait_until

REFUSAL = "No such SKU: WIDGET-9"


def flower_tasks(port: int, message_id: str) -> list[dict[str, Any]]:
    found = requests.get(f"http://127.0.0.1:{port}/api/tasks", timeout=5).json()
    return [t for t in found.values() if message_id in str(t.get("args"))]


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if found == labels:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{labels} in /metrics")


def log_lines(stack: Stack, service: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stack.services[service].output().splitlines() if line]


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SHIPHUB_URL": stack.url,
        "ENDPOINT_KEY": Stack.ENDPOINT_KEY,
        "REDIS_URL": stack.redis.url,
    }
    shiphub = os.path.join(os.path.dirname(sys.executable), "shiphub")
    return subprocess.run(
        [shiphub, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_flower_metrics_logs_cli_and_ops_agree_about_one_failed_message(
    provider: ProviderServer, hub: HubServer
) -> None:
    refused = order_message()
    message_id = refused["message_id"]
    provider.script(refused["payload"]["order"]["number"], {"status": 422, "errors": [REFUSAL]})
    flower_port = free_port()
    env = {**stack_env(provider, hub), "LOG_FORMAT": "json", "OPS_PASSWORD": "ops-secret"}
    with serving(None, env) as stack:  # its own Redis: the counters are this test's alone
        stack.start_flower(flower_port)

        def flower_follows() -> bool:  # a fresh message each time: Flower may miss the first
            probe = order_message()
            stack.post("/acme/send_order", probe, wait=10)
            time.sleep(0.3)
            return any(
                t["state"] == "SUCCESS" for t in flower_tasks(flower_port, probe["message_id"])
            )

        wait_until(flower_follows, timeout=60)
        answered = stack.post("/acme/send_order", refused, wait=20)
        assert answered.status_code == 500

        # Flower: the message's task failed, with the provider's reason.
        failed = wait_until(
            lambda: [t for t in flower_tasks(flower_port, message_id) if t["state"] == "FAILURE"],
            timeout=30,
        )
        assert REFUSAL in failed[0]["exception"]

        # /metrics: one failed message of acme's send_order.
        text = requests.get(f"{stack.url}/metrics", timeout=10).text
        assert (
            metric(
                text,
                "shiphub_messages_total",
                integration="acme",
                service="send_order",
                outcome="failed",
            )
            == 1
        )

        # The logs: the worker's line about its outcome names it, its service and its attempt.
        about = [
            line for line in log_lines(stack, "worker") if line.get("message_id") == message_id
        ]
        assert about, stack.logs()
        assert all(line["integration"] == "acme" for line in about)
        # Celery's own "Task shiphub.deliver[...] received" is written before the push reads
        # which service answered: every other line names it.
        assert {line.get("service") for line in about if "received" not in line["message"]} == {
            "send_order"
        }
        assert any(line.get("attempt") == 1 and REFUSAL in line["message"] for line in about)

        # The command line: the record, failed, with the same reason; exit code 0 (it was shown).
        shown = cli(stack, "show", "acme", message_id, "--json")
        assert shown.returncode == 0, shown.stderr
        record = json.loads(shown.stdout)
        assert record["status"] == "failed"
        assert REFUSAL in record["last_error"]

        # The operations page: listed among recent messages as failed, with the reason.
        page = requests.get(f"{stack.url}/ops", auth=("ops", "ops-secret"), timeout=10)
        assert page.status_code == 200
        row = next(r for r in page.text.split("<tr") if message_id in r)
        assert "failed" in row
        assert REFUSAL in row
