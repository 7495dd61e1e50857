"""The systemd units of ``deploy/systemd`` run the service: each unit's ``ExecStartPre`` and
``ExecStart``, expanded as systemd expands them (``${NAME}`` from ``deploy/shiphub.env`` and the
queue group's file, ``%i`` and ``%H``), run as real processes against a real redis-server.

What differs from a host is only where things are: the programs come from this venv instead of
``/opt/shiphub/.venv``, the working directory is the checkout, Redis and the ports are the test's
(the shipped defaults would collide with other services on the machine), the secrets are filled
in, and ``SHIPHUB_URL`` points ``shiphub check`` at this receiver.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.deploy_files import (
    ENV_FILE,
    UNITS,
    VENV_BIN,
    env_file,
    exec_start,
    expanded,
    group_files,
    one,
    unit,
)
from tests.support.stack import ROOT, RedisServer, Service, free_port, wait_until

pytestmark = pytest.mark.slow

GROUP = "main"
HOST = socket.gethostname()
ENDPOINT_KEY = "deploy-test-endpoint-key"
SECRET_KEY = "4xK0gvQb0Z1m2Ab3yQ9cJ7dXo8hS5kLr6tW1uE2iV3c="  # a Fernet key for the tests
FLOWER_LOGIN = ("ops", "deploy-test-flower-password")
THIS_VENV_BIN = f"{Path(sys.executable).parent}/"
RUN = {
    "shiphub-web.service": "web",
    "shiphub-worker@.service": "worker",
    "shiphub-beat.service": "beat",
    "shiphub-flower.service": "flower",
}


def unit_environment(name: str, overrides: dict[str, str]) -> dict[str, str]:
    """What systemd gives the unit's processes: its EnvironmentFile= files in order (the later
    wins), nothing of the test's own environment but PATH; then the test's ``overrides``."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT)}
    for path in unit(UNITS / name)["Service"]["EnvironmentFile"]:
        source = Path(path.replace("/etc/shiphub/", f"{ENV_FILE.parent}/").replace("%i", GROUP))
        env |= env_file(source)
    return env | overrides


def command(words: list[str], env: dict[str, str]) -> list[str]:
    local = [
        THIS_VENV_BIN + w.removeprefix(VENV_BIN) if w.startswith(VENV_BIN) else w for w in words
    ]
    return expanded(local, env, GROUP, HOST)


def pre_start(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    words = one(unit(UNITS / name), "Service", "ExecStartPre").split()
    return subprocess.run(
        command(words, env), env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def deployed() -> Iterator[dict[str, str]]:
    """A real redis-server of its own, and the test's overrides."""
    redis_server = RedisServer().start()
    web_port = free_port()
    overrides = {
        "REDIS_URL": redis_server.url,
        "PORT": str(web_port),
        "FLOWER_PORT": str(free_port()),
        "SHIPHUB_URL": f"http://127.0.0.1:{web_port}",
    }
    yield overrides
    redis_server.stop()


def test_as_shipped_every_unit_refuses_to_start_until_its_secrets_are_filled_in(
    deployed: dict[str, str],
) -> None:
    for name in RUN:
        ran = pre_start(name, unit_environment(name, deployed))
        assert ran.returncode == 1, ran.stdout + ran.stderr
        assert "problem  ENDPOINT_KEY" in ran.stdout
        assert "problem  SHIPHUB_SECRET_KEY" in ran.stdout


def test_the_units_run_the_service(deployed: dict[str, str]) -> None:
    filled = deployed | {
        "ENDPOINT_KEY": ENDPOINT_KEY,
        "SHIPHUB_SECRET_KEY": SECRET_KEY,
        "FLOWER_BASIC_AUTH": ":".join(FLOWER_LOGIN),
    }
    log_dir = Path(tempfile.mkdtemp(prefix="shiphub-deploy-"))
    started: dict[str, Service] = {}
    try:
        for name, process in RUN.items():
            env = unit_environment(name, filled)
            checked = pre_start(name, env)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            argv = command(exec_start(UNITS / name), env)
            started[process] = Service(process, argv, env, log_dir)
        url = filled["SHIPHUB_URL"]
        wait_until(
            lambda: started["web"].running() and _answers(f"{url}/healthz") == 200, timeout=60
        )

        # The worker of the main group takes a message of any integration (Dotcom's, not
        # configured here: refused by its handler, which is what a worker does with it).
        message = json.loads((ROOT / "tests/fixtures/dotcom/shipment_ready.json").read_text())
        message["message_id"] = uuid.uuid4().hex
        posted = requests.post(
            f"{url}/dotcom/send_shipment",
            json=message,
            headers={"X-Hub-Token": ENDPOINT_KEY, "X-Hub-Wait": "30"},
            timeout=40,
        )
        # The hub's protocol: a message that failed is answered 500 with what went wrong.
        assert posted.status_code == 500, posted.text
        (notice,) = posted.json()["notifications"]
        assert notice["subject"] == "Dotcom Distribution is not configured", notice
        assert message["message_id"] in started["worker"].output()

        # Flower, behind its basic auth, sees the worker under its group's node name, consuming
        # its group's queues.
        flower = f"http://127.0.0.1:{filled['FLOWER_PORT']}"
        wait_until(lambda: started["flower"].running() and _answers(flower) != 0, timeout=60)
        assert _answers(flower) == 401
        workers = wait_until(lambda: _workers(flower).get(f"{GROUP}@{HOST}"), timeout=60)
        consumed = {queue["name"] for queue in workers["active_queues"]}
        queues = env_file(group_files()[GROUP])["WORKER_QUEUES"]
        assert consumed == set(queues.split(","))
        assert started["beat"].running()
    finally:
        outputs = {p: s.output()[-2000:] for p, s in started.items()}
        for service in started.values():
            service.stop()
    # Each stops on systemd's SIGTERM by itself, within its unit's TimeoutStopSec.
    for process, service in started.items():
        assert service.process.returncode == 0, f"{process}:\n{outputs[process]}"


def _answers(url: str) -> int:
    """The status of a GET (0: nothing answers yet)."""
    try:
        return requests.get(url, timeout=5).status_code
    except requests.ConnectionError:
        return 0


def _workers(flower: str) -> dict[str, dict[str, list[dict[str, str]]]]:
    answer = requests.get(f"{flower}/api/workers?refresh=1", auth=FLOWER_LOGIN, timeout=20)
    return answer.json() if answer.status_code == 200 else {}
