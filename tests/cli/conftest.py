"""Fixtures for the ``shiphub`` command line tests: the real console script, run as a
subprocess against a real stack (gunicorn, a Celery worker, redis-server) pointed at the Dotcom
simulator, with a hub receiving pushes.

Every run of the script is checked for secrets: no token, key or password of the stack may appear
in what it prints, whatever the command and its outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.dotcom.conftest import (
    API_KEY,
    PASSWORD,
    DotcomSimulator,
    dotcom_env,
    sim,
    simulator_process,
    store,
)
from tests.pipeline.conftest import HUB_TOKEN, hub, redis_server
from tests.support.servers import HubServer
from tests.support.stack import ROOT, RedisServer, Stack, serving

# Session fixtures shared with the pipeline and Dotcom tests: this directory gets its own.
__all__ = ["hub", "redis_server", "sim", "simulator_process", "store"]

SHIPHUB = Path(sys.executable).parent / "shiphub"
FIXTURES = ROOT / "tests" / "fixtures" / "dotcom"
# bin/run's lookup: the seed's sample ships "Standard".
SHIPPING_LOOKUP = [{"Standard": "03"}, {"UPS Ground (USD)": "03"}]
SECRETS = (Stack.ENDPOINT_KEY, Stack.SECRET_KEY, Stack.PUSH_SECRET, HUB_TOKEN, API_KEY, PASSWORD)
# What the tests' own environment may hold that would change what the script does.
SCRUBBED = ("ENDPOINT_KEY", "SHIPHUB_URL", "SHIPHUB_INSECURE_DEV", "HUB_PUSH_URL")


@dataclass(frozen=True)
class Run:
    """One run of the console script."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Shiphub = Callable[..., Run]


def run_shiphub(
    *args: str, env: dict[str, str | None] | None = None, input: str | None = None
) -> Run:
    """``shiphub ARGS`` with the test's environment (a None removes a variable); fails the test
    if any of the stack's secrets shows in its output."""
    assert SHIPHUB.exists(), f"{SHIPHUB} is missing: `pip install -e .` makes it"
    full = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    for name, value in (env or {}).items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    done = subprocess.run(
        [str(SHIPHUB), *args],
        env=full,
        cwd=ROOT,
        input=input,
        capture_output=True,
        text=True,
        timeout=180,
    )
    run = Run(done.returncode, done.stdout, done.stderr)
    for secret in SECRETS:
        assert secret not in run.out + run.err, f"a secret was printed by shiphub {args}: {run}"
    return run


def cli_env(sim: DotcomSimulator, hub: HubServer) -> dict[str, str]:
    return {
        **dotcom_env(sim, hub),
        "DOTCOM_SHIPPING_LOOKUP": json.dumps(SHIPPING_LOOKUP),
        # A hub that refuses pushes makes a dead delivery after two of them.
        "HUB_PUSH_MAX_ATTEMPTS": "2",
    }


@pytest.fixture(scope="session")
def cli_stack(
    redis_server: RedisServer, simulator_process: DotcomSimulator, hub: HubServer
) -> Iterator[Stack]:
    with serving(redis_server, cli_env(simulator_process, hub)) as running:
        yield running


@pytest.fixture
def shiphub(cli_stack: Stack) -> Shiphub:
    """The console script, pointed at the stack with its token."""

    def run(*args: str, env: dict[str, str | None] | None = None, input: str | None = None) -> Run:
        base: dict[str, str | None] = {
            "SHIPHUB_URL": cli_stack.url,
            "ENDPOINT_KEY": Stack.ENDPOINT_KEY,
        }
        return run_shiphub(*args, env={**base, **(env or {})}, input=input)

    return run


@pytest.fixture
def healthy_hub(hub: HubServer) -> Iterator[HubServer]:
    """The hub, taking pushes again after the test (one test makes it refuse them)."""
    yield hub
    with hub.lock:
        hub.down = False
