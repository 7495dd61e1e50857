"""What handlers keep for later messages (``worker.store.kept``), the parts of an answer stored
ahead of its end (``parts_key``), and each store's polling cursor (``cursor_key``, ``POLLED``).
Handlers write them through ``Attempts.finish`` and ``Attempts.add_part``, fenced by their
lease; this reads them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from worker.store.kept import Kept
from worker.store.record import Timing
from worker.store.schema import POLLED, cursor_key, parts_key, split_member


@dataclass(frozen=True)
class Cursor:
    """Where a store's polls continue from, and when that last moved."""

    integration: str
    store: str
    moved_at: float
    values: dict[str, Any]


class Memory:
    def __init__(self, client: redis.Redis, timing: Timing | None = None) -> None:
        self.redis = client
        self.timing = timing or Timing()
        self.kept = Kept(client, self.timing.memory_ttl_seconds)

    def parts(self, integration: str, message_id: str) -> list[Any]:
        """The messages of the parts stored ahead of the answer, in order (all of them: for a
        hub that waits for the whole answer)."""
        raw = self.redis.lrange(parts_key(integration, message_id), 0, -1)
        return [message for part in raw for message in json.loads(part)]

    def recall(self, integration: str, store: str, kind: str, names: list[str]) -> list[Any]:
        return self.kept.read(integration, store, kind, names)

    def cursor(self, integration: str, store: str) -> dict[str, Any]:
        raw = self.redis.hgetall(cursor_key(integration, store))
        return {name: json.loads(value) for name, value in raw.items()}

    def cursors(self) -> list[Cursor]:
        """Every store's cursor, with when it last moved (newest first)."""
        moved = {split_member(m): float(at) for m, at in self.redis.hgetall(POLLED).items()}
        found = [Cursor(i, store, at, self.cursor(i, store)) for (i, store), at in moved.items()]
        return sorted(found, key=lambda c: c.moved_at, reverse=True)
