"""The Lua scripts (``worker/store/lua/<name>.lua``), filled from the schema, registered and
loaded together, each called through one typed method of ``Scripts`` that names its KEYS and
ARGV (each file starts with a comment saying what they are, in order).

Filling: a script names what the schema declares between double braces, replaced once at load
time by a Lua literal: ``{{field.<name>}}`` a record field (``RecordField``), ``{{status.<name>}}``
a message status, ``{{delivery.<name>}}`` a delivery status, ``{{bucket.<name>}}`` a pacing
bucket's field, ``{{batch.<name>}}`` a batch entry's state, ``{{enqueued.<name>}}`` what queueing
a batch entry did, ``{{FINISHED}}`` a set of statuses (a Lua table: ``{{FINISHED}}[st]`` is true
for a finished status), ``{{STATE_PREFIX}}`` a key prefix, ``{{BATCH_QUEUED}}`` a stored value.
A name the schema does not declare stops the load (``UnknownPlaceholder``), so a script cannot
drift from the schema unseen.

All the scripts are loaded on first use, so EVALSHA never meets NOSCRIPT on the fakeredis TCP
server (``bin/run``'s fallback), which answers NOSCRIPT by hanging up. After a real Redis restart,
redis-py reloads a script by itself.

Some scripts touch record keys derived from a member name rather than passed in KEYS: fine on
the single Redis this service runs on, not on Redis Cluster.
"""

from __future__ import annotations

import functools
import re
import threading
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import redis

from worker.store import schema

LUA = Path(__file__).with_name("lua")
# Each script and the files it is made of, in order (``listing`` is a function others call).
SOURCES: dict[str, tuple[str, ...]] = {
    "accept": ("accept",),
    "requeued": ("requeued",),
    "begin": ("listing", "begin"),
    "retrying": ("listing", "retrying"),
    "waiting": ("waiting",),
    "claim_due": ("claim_due",),
    "wake": ("wake",),
    "release": ("release",),
    "prune": ("prune",),
    "prune_state": ("prune_state",),
    "claim": ("claim",),
    "recheck": ("recheck",),
    "take": ("take",),
    "part_delivered": ("part_delivered",),
    "delivered": ("delivered",),
    "failed": ("failed",),
    "redeliver": ("redeliver",),
    "renew": ("renew",),
    "bucket": ("bucket",),
    "book": ("book",),
    "run_slot": ("run_slot",),
    "slot": ("slot",),
    "fill": ("fill",),
    "keep": ("keep",),
    "recall": ("recall",),
    "count_up": ("count_up",),
    "count_clear": ("count_clear",),
    "run_value": ("run_value",),
    "batch_enqueue": ("batch_enqueue",),
    "batch_take": ("batch_take",),
    "batch_requeue": ("batch_requeue",),
}
_PLACEHOLDER = re.compile(r"\{\{([A-Za-z_.]+)\}\}")


class UnknownPlaceholder(LookupError):
    """A script names something the schema does not declare."""


def _string(value: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError(f"not a plain Lua string: {value!r}")
    return f"'{value}'"


def _set(values: Iterable[str]) -> str:
    return "({" + ", ".join(f"[{_string(v)}] = true" for v in sorted(values)) + "})"


def placeholders() -> dict[str, str]:
    """Every name a script may use, with the Lua literal it stands for."""
    filled = {f"field.{f.value}": _string(f) for f in schema.RecordField}
    filled |= {f"status.{s.value}": _string(s) for s in schema.MessageStatus}
    filled |= {f"delivery.{d.value}": _string(d) for d in schema.DeliveryStatus}
    filled |= {f"bucket.{b.value}": _string(b) for b in schema.BucketField}
    filled |= {f"batch.{b.value}": _string(b) for b in schema.BatchState}
    filled |= {f"enqueued.{e.value}": _string(e) for e in schema.Enqueued}
    filled |= {
        "FINISHED": _set(schema.FINISHED),
        "REPLAYABLE": _set(schema.REPLAYABLE),
        "LISTED_STATES": _set(schema.LISTED_STATES),
        "STATE_PREFIX": _string(schema.STATE_PREFIX),
        "RECORD_PREFIX": _string(schema.RECORD_PREFIX),
        "RECENT_KEPT": str(schema.RECENT_KEPT),
        "NUMBER_PREFIX": _string(schema.NUMBER_PREFIX),
        "NUMBER_KEPT": str(schema.NUMBER_KEPT),
        "BACKFILL_DONE": _string(schema.BACKFILL_DONE),
        "BATCH_QUEUED": _string(schema.BATCH_QUEUED),
        "BATCH_OUTCOME_RETRY": _string(schema.BATCH_OUTCOME_RETRY),
    }
    return filled


def fill(text: str, name: str = "script") -> str:
    """``text`` with every placeholder replaced by its Lua literal."""
    known = placeholders()

    def one(found: re.Match[str]) -> str:
        try:
            return known[found.group(1)]
        except KeyError:
            raise UnknownPlaceholder(
                f"{name}: {{{{{found.group(1)}}}}} is not in the schema"
            ) from None

    return _PLACEHOLDER.sub(one, text)


@functools.cache
def source(name: str) -> str:
    """The filled text of the script ``name`` (its files, in order)."""
    return "\n".join(
        fill((LUA / f"{part}.lua").read_text(), f"{part}.lua") for part in SOURCES[name]
    )


class Scripts:
    """Every script, registered on one client and loaded together on first use; one typed
    method each."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._scripts = {name: client.register_script(source(name)) for name in SOURCES}
        self._loaded = False

    def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        self._load()
        return self._scripts[name](keys=list(keys), args=list(args))

    def _load(self) -> None:
        if not self._loaded:
            with self.client.pipeline(transaction=False) as pipe:
                for script in self._scripts.values():
                    pipe.script_load(script.script)
                pipe.execute()
            self._loaded = True

    # -- messages ------------------------------------------------------------------------------
    def accept(self, keys: Sequence[str], args: Sequence[Any]) -> list[list[str]]:
        """``accept.lua``: its KEYS and ARGV repeat per message (``Messages.receive_all``
        builds them, one message at a time)."""
        return self.run("accept", keys, args)

    def requeued(
        self, *, record: str, watch: str, stamp: float, watch_until: float, member: str
    ) -> int:
        return self.run("requeued", [record, watch], [repr(stamp), watch_until, member])

    # -- attempts ------------------------------------------------------------------------------
    def begin(
        self,
        *,
        record: str,
        lease: str,
        watch: str,
        due: str,
        now: float,
        token: str,
        lease_ms: int,
        watch_until: float,
        member: str,
        early: float,
    ) -> list[str]:
        return self.run(
            "begin",
            [record, lease, watch, due],
            [repr(now), token, lease_ms, watch_until, member, early],
        )

    def waiting(
        self, *, record: str, lease: str, watch: str, due: str, token: str, now: float,
        at: float, member: str, watch_until: float,
    ) -> int:  # fmt: skip
        return int(
            self.run(
                "waiting",
                [record, lease, watch, due],
                [token, repr(now), repr(at), member, repr(watch_until)],
            )
        )

    def retrying(
        self,
        *,
        record: str,
        lease: str,
        watch: str,
        due: str,
        token: str,
        now: float,
        at: float,
        error: str,
        member: str,
        watch_until: float,
    ) -> int:
        return self.run(
            "retrying",
            [record, lease, watch, due],
            [token, repr(now), repr(at), error, member, watch_until],
        )

    def claim_due(
        self, *, due: str, watch: str, now: float, limit: int, watch_until: float, prefix: str
    ) -> list[str]:
        return self.run("claim_due", [due, watch], [repr(now), limit, watch_until, prefix])

    def wake(self, *, due: str, at: float, prefix: str, members: Sequence[str]) -> int:
        return int(self.run("wake", [due], [repr(at), prefix, *members]))

    # -- locks and leases ----------------------------------------------------------------------
    def release(self, *, lock: str, token: str) -> int:
        return self.run("release", [lock], [token])

    def renew(
        self, *, lease: str, watch: str, token: str, lease_ms: int, watch_until: str, member: str
    ) -> int:
        return self.run("renew", [lease, watch], [token, lease_ms, watch_until, member])

    # -- listings ------------------------------------------------------------------------------
    def prune(self, *, listed: str, older_than: float, prefix: str, limit: int) -> int:
        return self.run("prune", [listed], [older_than, prefix, limit])

    def prune_state(
        self, *, index: str, status: str, older_than: float, prefix: str, limit: int
    ) -> int:
        return self.run("prune_state", [index], [status, older_than, prefix, limit])

    def fill(self, *, marker: str, records: Sequence[str], at: str, after: str, prefix: str,
             listed: Sequence[str]) -> int:  # fmt: skip
        return self.run("fill", [marker, *records], [at, after, prefix, *listed])

    # -- the outbox ----------------------------------------------------------------------------
    def claim(
        self,
        *,
        outbox: str,
        sequence: str,
        now: float,
        reclaim_at: float,
        limit: int,
        prefix: str,
        one: str,
    ) -> list[list[str]]:
        return self.run("claim", [outbox, sequence], [repr(now), reclaim_at, limit, prefix, one])

    def recheck(
        self,
        *,
        record: str,
        outbox: str,
        sequence: str,
        claim: str,
        now: float,
        reclaim_at: float,
        member: str,
        lost: bool,
    ) -> str | int | None:
        return self.run(
            "recheck",
            [record, outbox, sequence],
            [claim, repr(now), reclaim_at, member, "1" if lost else "0"],
        )

    def take(
        self,
        *,
        record: str,
        outbox: str,
        parts: str,
        claim: str,
        reclaim_at: float,
        member: str,
        now: float,
    ) -> list[Any] | None:
        return self.run("take", [record, outbox, parts], [claim, reclaim_at, member, repr(now)])

    def part_delivered(
        self, *, record: str, outbox: str, claim: str, next_part: int, reclaim_at: float,
        member: str,
    ) -> int:  # fmt: skip
        return self.run("part_delivered", [record, outbox], [claim, next_part, reclaim_at, member])

    def delivered(
        self,
        *,
        record: str,
        outbox: str,
        counter: str,
        ready: str,
        parts: str,
        claim: str,
        now: float,
        member: str,
        ttl: int,
        counted: str,
    ) -> int:
        return self.run(
            "delivered",
            [record, outbox, counter, ready, parts],
            [claim, repr(now), member, ttl, counted],
        )

    def failed(
        self,
        *,
        record: str,
        outbox: str,
        dead: str,
        counter: str,
        ready: str,
        parts: str,
        claim: str,
        now: float,
        member: str,
        error: str,
        next_at: float | None,
        ttl: int,
        timed_out: bool,
        counted_retrying: str,
        counted_dead: str,
    ) -> int:
        return self.run(
            "failed",
            [record, outbox, dead, counter, ready, parts],
            [
                claim,
                repr(now),
                member,
                error,
                "" if next_at is None else repr(next_at),
                ttl,
                "1" if timed_out else "0",
                counted_retrying,
                counted_dead,
            ],
        )

    def redeliver(
        self, *, record: str, outbox: str, dead: str, ready: str, parts: str, now: float,
        member: str,
    ) -> int:  # fmt: skip
        return self.run("redeliver", [record, outbox, dead, ready, parts], [repr(now), member])

    # -- handler memory ------------------------------------------------------------------------
    def keep(
        self,
        *,
        now_ms: int,
        bucket: int,
        per_shard: int,
        growth: int,
        entries: Sequence[tuple[str, str, int, str]],
        client: Any = None,
    ) -> int:
        """``keep.lua``: each entry (kind's base, name, name's hash, value). ``client``: a
        pipeline to queue it on (a transaction's), else this client."""
        self._load()
        args = [now_ms, bucket, per_shard, growth, *(x for entry in entries for x in entry)]
        return self._scripts["keep"](keys=[], args=args, client=client)

    def recall(
        self,
        *,
        now_ms: int,
        base: str,
        earlier: str,
        per_shard: int,
        growth: int,
        names: Sequence[tuple[str, int]],
        client: Any = None,
    ) -> list[str | None]:
        args = [now_ms, base, earlier, per_shard, growth, *(x for pair in names for x in pair)]
        self._load()
        return self._scripts["recall"](keys=[], args=args, client=client)

    # -- pacing --------------------------------------------------------------------------------
    def bucket(self, *, bucket: str, now: float, capacity: float, per_second: float) -> str:
        return self.run("bucket", [bucket], [now, capacity, per_second])

    def book(
        self, *, bucket: str, bookings: str, now: float, capacity: float, per_second: float,
        holder: str, sleep_max: float,
    ) -> str:  # fmt: skip
        return self.run(
            "book", [bucket, bookings], [repr(now), capacity, per_second, holder, sleep_max]
        )

    def run_slot(
        self, *, running: str, waiting: str, now: float, limit: int, token: str,
        expires_at: float, member: str,
    ) -> int:  # fmt: skip
        return int(
            self.run(
                "run_slot", [running, waiting], [repr(now), limit, token, repr(expires_at), member]
            )
        )

    def slot(self, *, slots: str, now: float, limit: int, token: str, expires_at: float) -> int:
        return self.run("slot", [slots], [now, limit, token, expires_at])

    # -- what providers keep through Job (``worker.store.provider_state``) ---------------------
    def count_up(self, *, count: str, lease: str, token: str, ttl: int) -> int | None:
        return self.run("count_up", [count, lease], [token, ttl])

    def count_clear(self, *, count: str, lease: str, token: str) -> int:
        return self.run("count_clear", [count, lease], [token])

    def run_value(self, *, value: str, lease: str, token: str, data: str, ttl: int) -> int:
        return int(self.run("run_value", [value, lease], [token, data, ttl]))

    def batch_enqueue(
        self, *, state: str, queue: str, lease: str, entry: str, ttl: int, token: str
    ) -> schema.Enqueued:
        return schema.Enqueued(
            self.run("batch_enqueue", [state, queue, lease], [entry, ttl, token])
        )

    def batch_take(
        self, *, queue: str, size: int, token: str, ttl: int, state_prefix: str
    ) -> list[str]:
        return list(self.run("batch_take", [queue], [size, token, ttl, state_prefix]) or [])

    def batch_requeue(
        self, *, state: str, queue: str, leader: str, lease: str, entry: str, ttl: int,
        token: str,
    ) -> int:  # fmt: skip
        return int(self.run("batch_requeue", [state, queue, leader, lease], [entry, ttl, token]))


_scripts: weakref.WeakKeyDictionary[redis.Redis, Scripts] = weakref.WeakKeyDictionary()
_scripts_lock = threading.Lock()


def scripts(client: redis.Redis) -> Scripts:
    """The scripts on ``client`` (one set per client, loaded once)."""
    with _scripts_lock:
        found = _scripts.get(client)
        if found is None:
            found = _scripts[client] = Scripts(client)
        return found
