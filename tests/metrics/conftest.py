"""Fixtures for the metrics pipeline tests: a Redis, a hub and a Dotcom simulator of their own
(the session fixtures imported here are this directory's), and a receiver and worker pointed at
them, so the counters these tests read move only with what they do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dotcom.conftest import (
    DotcomSimulator,
    dotcom_env,
    hub,
    redis_server,
    sim,
    simulator_process,
)
from tests.support.servers import HubServer
from tests.support.stack import RedisServer, Stack, serving

__all__ = ["hub", "redis_server", "sim", "simulator_process"]

# Dotcom's poll window ends this long before now: the lag its cursor then shows.
POLL_LAG_SECONDS = 120


@pytest.fixture(scope="module")
def metrics_stack(
    redis_server: RedisServer, simulator_process: DotcomSimulator, hub: HubServer
) -> Iterator[Stack]:
    env = {
        **dotcom_env(simulator_process, hub),
        "DOTCOM_POLL_LAG_SECONDS": str(POLL_LAG_SECONDS),
    }
    with serving(redis_server, env) as running:
        yield running
