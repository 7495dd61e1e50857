"""A provider simulator as its own process (``python -m simulators.<name>``) on a free port,
and its ``/_sim/`` control API: what every provider's test fixtures share."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

from tests.support.stack import ROOT, Service, free_port, wait_until


class SimulatorProcess:
    def __init__(self, module: str, env: dict[str, str]) -> None:
        self.port = free_port()
        name = module.rpartition(".")[2].replace("_", "-") + "-simulator"
        self.process = Service(
            name,
            [sys.executable, "-m", module, "--port", str(self.port)],
            {**os.environ, "PYTHONPATH": str(ROOT), **env},
            Path(tempfile.mkdtemp(prefix=f"shiphub-{name}-")),
        )
        wait_until(
            lambda: (
                self.process.running() and requests.get(f"{self.url}/_sim/health", timeout=2).ok
            ),
            timeout=20,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.url}/_sim/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.control("POST", "reset")

    def stop(self) -> None:
        self.process.stop()

    def logs(self) -> str:
        return self.process.output()[-4000:]
