"""Two receivers on one host, each started by the Procfile's own command: each has a control
socket of its own (gunicorn 25+ gives every gunicorn of a user one and the same
``~/.gunicorn/gunicorn.ctl`` by default), so stopping one leaves the other's in place and
answering."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.stack import ROOT, RedisServer, Stack, free_port, wait_until

LISTENING = "Control socket listening at "
GUNICORNC = Path(sys.executable).parent / "gunicornc"


class Receiver:
    """The Procfile's ``web`` line, run by bash as a Procfile runner (and ``bin/run``) does."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = env["PORT"]
        self.log = log
        command = next(
            line.split(":", 1)[1].strip()
            for line in (ROOT / "Procfile").read_text().splitlines()
            if line.startswith("web:")
        )
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.socket = Path(wait_until(self._socket, timeout=60))

    def _socket(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"the receiver exited:\n{self.log.read_text()[-3000:]}")
        said = [json.loads(line)["message"] for line in self.log.read_text().splitlines()]
        found = [m.removeprefix(LISTENING) for m in said if m.startswith(LISTENING)]
        ready = requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).ok
        return found[0] if found and ready else None

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)


@pytest.fixture
def receivers(redis_server: RedisServer, tmp_path: Path) -> Iterator[list[Receiver]]:
    home = tmp_path / "home"
    home.mkdir()
    base = {
        k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "WEB_CONTROL_SOCKET")
    }
    base |= {
        "HOME": str(home),  # where gunicorn's default control socket would be
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_server.url,
        "ENDPOINT_KEY": Stack.ENDPOINT_KEY,
        "SHIPHUB_SECRET_KEY": Stack.SECRET_KEY,
        "WEB_ADDRESS": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        "POLLS": "off",
    }
    started: list[Receiver] = []
    try:
        for name in ("first", "second"):
            env = {**base, "PORT": str(free_port())}
            started.append(Receiver(env, tmp_path / f"{name}.log"))
        yield started
    finally:
        for receiver in started:
            receiver.stop()


def stats(socket: Path) -> dict[str, object]:
    said = subprocess.run(
        [str(GUNICORNC), "-s", str(socket), "-c", "show stats", "-j"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert said.returncode == 0, said
    return json.loads(said.stdout)


def test_each_receiver_has_its_own_control_socket_and_stopping_one_leaves_the_other(
    receivers: list[Receiver],
) -> None:
    first, second = receivers
    assert first.socket != second.socket
    assert stats(second.socket)["pid"] == second.process.pid

    first.stop()

    assert not first.socket.exists()
    assert second.socket.exists()
    assert stats(second.socket)["pid"] == second.process.pid  # its own master answers
    assert requests.get(f"http://127.0.0.1:{second.port}/healthz", timeout=5).ok
