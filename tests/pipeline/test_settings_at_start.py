"""An invalid setting stops web, worker and beat as they start, naming the variable, with the
status that keeps gunicorn from restarting its workers forever (real processes)."""

from __future__ import annotations

import pytest

from tests.support.stack import RedisServer, Stack
from worker.errors import ConfigurationError


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HUB_STORE", "shop:eu"),
        ("RETRY_FOR_SECONDS", "-1"),
        ("REDIS_URL", "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:sentinel"),
    ],
)
def test_web_worker_and_beat_stop_at_start_naming_an_invalid_setting(
    redis_server: RedisServer, variable: str, value: str
) -> None:
    stack = Stack(redis_server, {variable: value})
    try:
        with pytest.raises(AssertionError, match="exited at start-up"):
            stack.start_web()
        with pytest.raises(AssertionError, match="exited at start-up"):
            stack.start_worker()
        stack.start_beat()
        for name in ("web", "worker", "beat"):
            service = stack.services[name]
            status = service.process.wait(30)
            assert status == ConfigurationError.EXIT_STATUS, service.output()
            assert variable in service.output(), service.output()
    finally:
        stack.stop()
