"""Provider side effects, at most once once completed: a mark per call (``once_key``), in flight
or done with its result.

These record facts about the provider (a call started, a call returned) and are written even by
a holder that lost its lease: hiding a completed call would only repeat it. Each mark names the
run that wrote it (``run``: 0, then one more per replay; ``Job.once``)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import redis

from worker.store.record import Timing
from worker.store.schema import OnceState, once_key


class Once:
    def __init__(self, client: redis.Redis, timing: Timing | None = None) -> None:
        self.redis = client
        self.timing = timing or Timing()

    def state(self, integration: str, message_id: str, operation: str) -> dict[str, Any] | None:
        raw = self.redis.get(once_key(integration, message_id, operation))
        return json.loads(raw) if raw else None

    def inflight(
        self,
        integration: str,
        message_id: str,
        operation: str,
        attempt: int,
        sends: Mapping[str, Any] | None = None,
        run: int = 0,
    ) -> None:
        mark = {
            "state": OnceState.INFLIGHT,
            "attempt": attempt,
            "run": run,
            "since": time.time(),
            "sends": sends,
        }
        self.redis.set(
            once_key(integration, message_id, operation),
            json.dumps(mark),
            ex=self.timing.record_ttl_seconds,
        )

    def done(
        self,
        integration: str,
        message_id: str,
        operation: str,
        result: Any,
        run: int = 0,
        sends: Mapping[str, Any] | None = None,
    ) -> None:
        mark = {
            "state": OnceState.DONE,
            "result": result,
            "at": time.time(),
            "run": run,
            "sends": sends,
        }
        self.redis.set(
            once_key(integration, message_id, operation),
            json.dumps(mark),
            ex=self.timing.record_ttl_seconds,
        )

    def clear(
        self, integration: str, message_id: str, operation: str, attempt: int, run: int = 0
    ) -> None:
        """Forget an in-flight mark, if it is still this attempt's (of this run)."""
        key = once_key(integration, message_id, operation)

        def clear(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(key)
            state = json.loads(raw) if raw else None
            if (
                state
                and state.get("state") == OnceState.INFLIGHT
                and state.get("attempt") == attempt
                and state.get("run", 0) == run
            ):
                pipe.multi()
                pipe.delete(key)

        self.redis.transaction(clear, key)
