"""What handlers keep for later messages (what was sent, what was confirmed), laid out to cost a
few dozen bytes a name: many names per hash, in Redis's compact encoding (a listpack), with an
expiry per bucket of time rather than per key (Redis 7.0 has no expiry per hash field).

* A retention (``HANDLER_MEMORY_TTL_SECONDS``) is covered by ``KEPT_BUCKETS`` buckets of time. An
  entry is written to the bucket of its time; the bucket expires a retention after its end, so
  an entry is kept for at least the retention and at most one bucket more (180 days: 180 to
  210). A rewrite lands in the current bucket; a lookup reads the buckets still alive, newest
  first, and takes the first value found.
* A bucket spreads its names over hashes by a hash of the name, in levels: level ``l`` has
  ``KEPT_GROWTH``^l hashes and is written once the levels below hold ``KEPT_PER_SHARD`` names per
  hash. So every hash holds about ``KEPT_PER_SHARD`` names, whatever the volume, nothing is ever
  moved, and a lookup reads one hash per level (a few per bucket).
* Values are compact JSON. Keys of the earlier format (``memory_key``, one per name, its value
  the whole document) are still read, after the buckets, until they expire.

Both steps are Lua (``lua/keep.lua``, ``lua/recall.lua``): a lookup sees a write whole or not
at all. A write counts in its bucket's meta hash, which is what a watched read (``Job.watch``)
WATCHes."""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from worker.store.schema import (
    KEPT_BUCKETS,
    KEPT_GROWTH,
    KEPT_PER_SHARD,
    Keep,
    kept_key,
    memory_key,
)
from worker.store.scripts import scripts


def name_hash(name: str) -> int:
    """Which hash of a level holds ``name`` (modulo its number of hashes)."""
    return zlib.crc32(name.encode())


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Kept:
    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self.redis = client
        self.retention_ms = retention_seconds * 1000
        self.width_ms = max(1, math.ceil(self.retention_ms / KEPT_BUCKETS))

    def bucket(self, now_ms: int) -> int:
        """The bucket written at ``now_ms``, named by when it expires (a retention after its
        end): a name that stays right if the retention is changed."""
        return (now_ms // self.width_ms + 1) * self.width_ms + self.retention_ms

    def write(
        self, pipe: redis.client.Pipeline, integration: str, store: str, keep: Iterable[Keep]
    ) -> None:
        """Queue the writes of ``keep`` on ``pipe`` (a transaction's, after its MULTI)."""
        entries = [
            (kept_key(integration, store, kind), name, name_hash(name), compact(value))
            for kind, name, value in keep
        ]
        if not entries:
            return
        now_ms = int(time.time() * 1000)
        scripts(self.redis).keep(
            now_ms=now_ms,
            bucket=self.bucket(now_ms),
            per_shard=KEPT_PER_SHARD,
            growth=KEPT_GROWTH,
            entries=entries,
            client=pipe,
        )

    def read(
        self,
        integration: str,
        store: str,
        kind: str,
        names: Sequence[str],
        client: Any = None,
    ) -> list[Any]:
        """The values kept under ``names`` (None where absent), in one script run."""
        if not names:
            return []
        raw = scripts(self.redis).recall(
            now_ms=int(time.time() * 1000),
            base=kept_key(integration, store, kind),
            earlier=memory_key(integration, store, kind, ""),
            per_shard=KEPT_PER_SHARD,
            growth=KEPT_GROWTH,
            names=[(name, name_hash(name)) for name in names],
            client=client,
        )
        return [json.loads(v) if v is not None else None for v in raw]

    def watched_keys(self, integration: str, store: str, expect: Iterable[Keep]) -> list[str]:
        """What to WATCH so that any write to these names before a transaction's EXEC aborts
        it: the meta hash of the bucket written now and of the next one (every write counts
        there), and the names' keys of the earlier format."""
        now_ms = int(time.time() * 1000)
        current = self.bucket(now_ms)
        keys: dict[str, None] = {}
        for kind, name, _ in expect:
            base = kept_key(integration, store, kind)
            keys |= dict.fromkeys([f"{base}:{current}", f"{base}:{current + self.width_ms}"])
            keys[memory_key(integration, store, kind, name)] = None
        return list(keys)
