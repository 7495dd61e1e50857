"""Structured logs of every process, as production runs them: each line of the Procfile (gunicorn,
a Celery worker, beat, Flower) started as written, with LOG_FORMAT=json, against the Dotcom
simulator, a fake hub and a real redis-server. One message succeeds, one is retried until it is
dead, one request is refused, and a few requests put a secret or a sentinel where a careless log
line would copy it. Then every process is stopped and its whole output read."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from tests.dotcom.conftest import (
    ENV_SHIPPING_LOOKUP,
    QUICK_LOOK,
    DotcomSimulator,
    shipment_message,
)
from tests.support.servers import HubServer
from tests.support.stack import ROOT, RedisServer, Service, free_port, wait_until

HUB_STORE = "logs-store"
SERVICE = "send_shipment"
REQUIRED = ("time", "level", "logger", "message")


@dataclass
class Run:
    """What the processes wrote while the scenario ran, and what the scenario sent."""

    secrets: dict[str, str]
    sentinels: list[str]
    ok_id: str
    dead_id: str
    echo_id: str
    failed_id: str
    outputs: dict[str, str] = field(default_factory=dict)

    def lines(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.outputs[name].splitlines() if line.strip()]

    def all_lines(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, line) for name in self.outputs for line in self.lines(name)]

    def about(self, message_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(n, line) for n, line in self.all_lines() if line.get("message_id") == message_id]

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{text[-6000:]}" for n, text in self.outputs.items())


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    pairs = (line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): command.strip() for name, command in pairs}


def the_secrets(api_key: str, password: str) -> dict[str, str]:
    return {
        "ENDPOINT_KEY": f"endpoint-{secrets.token_hex(8)}",
        "HUB_ACCESS_TOKEN": f"hub-token-{secrets.token_hex(8)}",
        "HUB_PUSH_SECRET": f"whsec_{base64.b64encode(secrets.token_bytes(32)).decode()}",
        "SHIPHUB_SECRET_KEY": Fernet.generate_key().decode(),
        "OPS_PASSWORD": f"ops-{secrets.token_hex(8)}",
        "DOTCOM_API_KEY": api_key,
        "DOTCOM_PASSWORD": password,
    }


def process_env(
    redis_server: RedisServer, sim: DotcomSimulator, hub: HubServer, given: dict[str, str]
) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("LOG_", "FLOWER_"))}
    return {
        **inherited,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "LOG_FORMAT": "json",
        "REDIS_URL": redis_server.url,
        "PORT": str(free_port()),
        "WEB_ADDRESS": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        "WORKER_CONCURRENCY": "4",
        "FLOWER_PORT": str(free_port()),
        "FLOWER_ADDRESS": "127.0.0.1",
        "HUB_PUSH_URL": f"{hub.url}/push",
        "HUB_STORE": HUB_STORE,
        "DOTCOM_API_URL": sim.api_url,
        "DOTCOM_SHIPPING_LOOKUP": json.dumps(ENV_SHIPPING_LOOKUP),
        **QUICK_LOOK,
        "TASK_MAX_ATTEMPTS": "3",
        "RETRY_BASE_SECONDS": "0.2",
        "RETRY_MAX_SECONDS": "1",
        "TASK_TIME_LIMIT_SECONDS": "10",
        "POLLS": "off",
        **given,
    }


def start(env: dict[str, str], log_dir: Path, services: dict[str, Service]) -> None:
    """Every Procfile line as written (bash expands its ${VAR:-default}), each in its group."""
    for name, command in procfile().items():
        services[name] = Service(name, ["bash", "-c", f"exec {command}"], env, log_dir)
    web, flower = f"http://127.0.0.1:{env['PORT']}", f"http://127.0.0.1:{env['FLOWER_PORT']}"
    wait_until(
        lambda: services["web"].running() and requests.get(f"{web}/healthz", timeout=2).ok, 60
    )
    wait_until(lambda: services["worker"].running() and "ready." in services["worker"].output(), 60)
    wait_until(
        lambda: services["flower"].running() and requests.get(f"{flower}/healthcheck").ok, 60
    )
    wait_until(lambda: services["beat"].running() and services["beat"].output().strip(), 60)


def scenario(web: str, token: str, sim: DotcomSimulator, hub: HubServer, run: Run) -> None:
    headers = {"X-Hub-Token": token, "X-Hub-Wait": "60"}

    def send(body: dict[str, Any]) -> requests.Response:
        return requests.post(f"{web}/dotcom/{SERVICE}", json=body, headers=headers, timeout=90)

    ok = shipment_message()
    ok["message_id"] = run.ok_id
    assert send(ok).status_code == 200

    sim.fault("http_500", "order", count=20)  # every attempt fails: retried, then dead
    dead = shipment_message()
    dead["message_id"] = run.dead_id
    assert send(dead).status_code == 500
    sim.reset()

    failed = shipment_message(shipping_method="Teleport")  # refused before any call: failed
    failed["message_id"] = run.failed_id
    assert send(failed).status_code == 500

    echo = shipment_message()  # a message_id that quotes a secret lands in many lines' fields
    echo["message_id"] = run.echo_id
    assert send(echo).status_code == 200

    refused = requests.post(f"{web}/dotcom/{SERVICE}", json=ok, headers={"X-Hub-Token": "wrong"})
    assert refused.status_code == 401
    probe = requests.get(
        f"{web}/healthz?probe={run.sentinels[0]}", headers={"X-Probe": run.sentinels[1]}
    )
    assert probe.ok
    secret_path = f"{web}/messages/dotcom/{run.secrets['DOTCOM_PASSWORD']}"
    assert requests.get(secret_path, headers={"X-Hub-Token": token}).status_code == 404

    for message_id in (run.ok_id, run.dead_id, run.echo_id, run.failed_id):
        hub.wait_for(message_id, timeout=60)


@pytest.fixture(scope="module")
def run(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    api_key, password = f"dotcom-key-{secrets.token_hex(6)}", f"dotcom-pw-{secrets.token_hex(6)}"
    given = the_secrets(api_key, password)
    sim = DotcomSimulator(
        {
            "DOTCOM_SIM_ACCOUNTS": f"{api_key}:{password}",
            "DOTCOM_SIM_SHIP_AFTER": "0",
            "DOTCOM_SIM_VISIBLE_AFTER": "0",
        }
    )
    hub = HubServer(given["HUB_ACCESS_TOKEN"], HUB_STORE, (given["HUB_PUSH_SECRET"],))
    recorded = Run(
        secrets=given,
        sentinels=[f"query-{secrets.token_hex(6)}", f"header-{secrets.token_hex(6)}"],
        ok_id=f"logs-ok-{secrets.token_hex(4)}",
        dead_id=f"logs-dead-{secrets.token_hex(4)}",
        echo_id=f"echo-{given['OPS_PASSWORD']}",
        failed_id=f"logs-failed-{secrets.token_hex(4)}",
    )
    env = process_env(redis_server, sim, hub, given)
    services: dict[str, Service] = {}
    try:
        start(env, tmp_path_factory.mktemp("process-logs"), services)
        web = f"http://127.0.0.1:{env['PORT']}"
        scenario(web, given["ENDPOINT_KEY"], sim, hub, recorded)
        wait_until(lambda: _deliveries_done(services["worker"].output(), recorded), 30)
    finally:
        for service in services.values():
            service.stop()
        recorded.outputs = {n: s.log_path.read_text(errors="replace") for n, s in services.items()}
        hub.close()
        sim.stop()
    yield recorded


def _deliveries_done(worker_output: str, run: Run) -> bool:
    """Each answer's push task has logged its end (its line comes after the hub took it)."""
    ends = [
        json.loads(line)
        for line in worker_output.splitlines()
        if "shiphub.deliver" in line and "succeeded" in line
    ]
    return {e.get("message_id") for e in ends} >= {run.ok_id, run.dead_id, run.failed_id}


def test_every_line_of_every_process_is_one_json_object(run: Run) -> None:
    assert set(run.outputs) == {"web", "worker", "beat", "flower"}
    for name, text in run.outputs.items():
        assert text.strip(), f"{name} wrote nothing"
        for line in text.splitlines():
            try:
                parsed = json.loads(line)
            except ValueError:
                pytest.fail(f"{name} wrote a line that is not JSON: {line!r}")
            assert isinstance(parsed, dict), line
            assert all(parsed.get(key) for key in REQUIRED), line


def test_no_secret_set_in_the_environment_appears_in_any_output(run: Run) -> None:
    for name, text in run.outputs.items():
        for variable, value in run.secrets.items():
            assert value not in text, f"{name} wrote {variable}"
    # Where a secret was bound to be written (a path, a message_id), it was redacted: in the
    # receiver's access line, and in the worker's lines about the message that quotes one.
    web_paths = {line.get("path") for line in run.lines("web")}
    assert "/messages/dotcom/[redacted]" in web_paths
    echoed = [line for line in run.lines("worker") if line.get("message_id") == "echo-[redacted]"]
    assert any("succeeded" in line["message"] for line in echoed), echoed


def test_access_lines_carry_neither_query_strings_nor_headers(run: Run) -> None:
    access = [line for line in run.lines("web") if line["logger"] == "gunicorn.access"]
    probes = [line for line in access if line["path"] == "/healthz" and line["status"] == 200]
    assert probes and probes[-1]["method"] == "GET", access
    for sentinel in run.sentinels:  # one was in a query string, one in a request header
        assert sentinel not in run.outputs["web"]


@pytest.mark.parametrize("which", ["ok_id", "dead_id"])
def test_every_line_about_a_message_names_it(run: Run, which: str) -> None:
    message_id = getattr(run, which)
    for name, text in run.outputs.items():
        for line in text.splitlines():
            if message_id in line:
                parsed = json.loads(line)
                assert parsed.get("message_id") == message_id, f"{name}: {line}"
                assert parsed.get("integration") == "dotcom", f"{name}: {line}"


def test_the_receiver_logs_one_intake_line_per_message_with_its_fields(run: Run) -> None:
    intake = [line for line in run.lines("web") if "intake" in line]
    by_id = {line.get("message_id"): line for line in intake if line["intake"] != "refused"}
    for message_id, status in ((run.ok_id, 200), (run.dead_id, 500)):
        line = by_id[message_id]
        assert line["intake"] == "queued" and line["status"] == status, line
        assert (line["integration"], line["service"]) == ("dotcom", SERVICE), line
        assert "payload" not in json.dumps(line), line
    assert [line["message_id"] for line in intake if line["intake"] == "queued"].count(
        run.ok_id
    ) == 1
    refused = [line for line in intake if line["intake"] == "refused"]
    assert [(r["status"], r["reason"], r["level"]) for r in refused] == [
        (401, "Unauthorized", "WARNING")
    ]
    accessed = [
        line
        for line in run.lines("web")
        if line["logger"] == "gunicorn.access" and line.get("message_id") == run.ok_id
    ]
    assert accessed and accessed[0]["path"] == f"/dotcom/{SERVICE}", accessed


def test_worker_lines_of_a_message_carry_service_and_attempt(run: Run) -> None:
    worker = run.lines("worker")
    for message_id, attempts in ((run.ok_id, [1]), (run.dead_id, [1, 2, 3])):
        handled = [
            line
            for line in worker
            if line.get("message_id") == message_id
            and line.get("service") == SERVICE
            and "shiphub.deliver" not in line["message"]
        ]
        assert all(line["integration"] == "dotcom" for line in handled), handled
        # Celery's "received" line, written before the attempt begins, and its outcome line
        # (succeeded, retry, raised), written after, each once per attempt.
        received = [line for line in handled if line["logger"] == "celery.worker.strategy"]
        assert len(received) == len(attempts), handled
        outcomes = [line for line in handled if line["logger"] == "celery.app.trace"]
        assert [line["attempt"] for line in outcomes] == attempts, outcomes
    dead = [line for line in worker if "dead after 3 attempts" in line["message"]]
    assert [(d["message_id"], d["service"], d["attempt"]) for d in dead] == [
        (run.dead_id, SERVICE, 3)
    ]


def test_delivery_lines_carry_the_message_id_and_nothing_stale(run: Run) -> None:
    for message_id in (run.ok_id, run.dead_id):
        pushes = [
            line
            for line in run.lines("worker")
            if line.get("message_id") == message_id and "shiphub.deliver" in line["message"]
        ]
        assert any("succeeded" in line["message"] for line in pushes), pushes
        for line in pushes:
            assert line["integration"] == "dotcom", line
            if line["logger"] == "celery.worker.strategy":
                # Received before the push reads its record: the thread ran the message's
                # attempt before, and its service and attempt are gone.
                assert "attempt" not in line and "service" not in line, line
            else:
                # Once the push has taken its delivery: the message's service, the push's
                # number (the hub took the first).
                assert (line["service"], line["attempt"]) == (SERVICE, 1), line


def manual_warnings_query() -> list[str]:
    """The manual's command for a worker's warnings (docs/operations.md, Logs), as its words."""
    page = (ROOT / "docs" / "operations.md").read_text()
    (line,) = [
        line.strip()
        for line in page.splitlines()
        if line.strip().startswith("jq ") and '"WARNING"' in line and "worker.log" in line
    ]
    return shlex.split(line)


def test_the_manuals_query_for_warnings_finds_every_message_that_failed_or_went_dead(
    run: Run, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    log.write_text(run.outputs["worker"])
    command = [str(log) if word == ".run/worker.log" else word for word in manual_warnings_query()]

    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)

    found = [json.loads(line) for line in done.stdout.splitlines()]
    outcomes = {
        line["message_id"]: line
        for line in found
        if line["logger"] == "celery.app.trace" and "MessageFailed(" in line["message"]
    }
    assert set(outcomes) == {run.failed_id, run.dead_id}, found
    assert re.search(
        r"MessageFailed\(['\"]failed: Shipment cannot", outcomes[run.failed_id]["message"]
    )
    assert re.search(r"MessageFailed\(['\"]dead: ", outcomes[run.dead_id]["message"])
    assert {line["level"] for line in outcomes.values()} == {"WARNING"}
    assert (outcomes[run.dead_id]["attempt"], outcomes[run.failed_id]["attempt"]) == (3, 1)
    # A message that succeeded, and every other attempt's outcome, stays at INFO.
    assert not [line for line in found if line.get("message_id") == run.ok_id]
