"""Message records in Redis: the single source of truth for what was accepted and what became of it.

Keys (all under ``shiphub:``):

* ``msg:<integration>:<message_id>`` hash: body, fingerprint, status, attempts, timestamps, last
  error, answer, delivery state.
* ``once:<integration>:<message_id>:<operation>``: a provider call in flight / done (with result).
* ``lease:<integration>:<message_id>``: held by the worker handling the message.
* ``watch`` zset: every unfinished record with the time by which it must have moved on. The
  watchdog republishes whatever passes that time, so no accepted message depends on a single
  broker message surviving.
* ``outbox`` zset: answers waiting to be pushed to the hub, scored by their next attempt.
* ``dead:messages`` / ``dead:deliveries`` zsets: what ran out of attempts, replayable.
* ``cursor:<integration>:<store>`` hash: parameters (polling cursors) returned by handlers.

State changes that must not be torn apart (record + publish marker, done mark + answer + outbox
+ cursor) are single Lua scripts or MULTI/EXEC transactions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import redis
from redis.commands.core import Script

PREFIX = "shiphub:"
WATCH = PREFIX + "watch"
OUTBOX = PREFIX + "outbox"
DEAD_MESSAGES = PREFIX + "dead:messages"
DEAD_DELIVERIES = PREFIX + "dead:deliveries"
STATS = PREFIX + "stats"

FINISHED = frozenset({"succeeded", "failed", "dead"})
Status = Literal["queued", "processing", "retrying", "succeeded", "failed", "dead"]


def record_key(integration: str, message_id: str) -> str:
    return f"{PREFIX}msg:{integration}:{message_id}"


def member(integration: str, message_id: str) -> str:
    return f"{integration}:{message_id}"


def split_member(value: str) -> tuple[str, str]:
    integration, _, message_id = value.partition(":")
    return integration, message_id


def once_key(integration: str, message_id: str, operation: str) -> str:
    return f"{PREFIX}once:{integration}:{message_id}:{operation}"


def lease_key(integration: str, message_id: str) -> str:
    return f"{PREFIX}lease:{integration}:{message_id}"


def service_lock_key(integration: str, service: str, store: str) -> str:
    return f"{PREFIX}lock:{integration}:{service}:{store}"


def cursor_key(integration: str, store: str) -> str:
    return f"{PREFIX}cursor:{integration}:{store}"


def memory_key(integration: str, store: str, kind: str) -> str:
    return f"{PREFIX}memory:{integration}:{store}:{kind}"


MEMORY_TTL_SECONDS = 180 * 24 * 3600

# What a handler keeps for later messages: (kind, key, JSON-able value).
Keep = tuple[str, str, Any]


def done_channel(integration: str, message_id: str) -> str:
    return f"{PREFIX}done:{integration}:{message_id}"


# Create the record unless it exists. A record whose publish never completed (the receiver died
# between record and publish) is taken over after ARGV[4] seconds, so a retry is not a false
# duplicate. Returns created | takeover | publishing | exists | conflict.
_ACCEPT = """
local fp = redis.call('HGET', KEYS[1], 'fingerprint')
local now = tonumber(ARGV[2])
if not fp then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'received_at', ARGV[2],
             'updated_at', ARGV[2], 'publish_token', ARGV[3], 'published', '0',
             'status', 'queued', 'attempts', '0', unpack(ARGV, 6))
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[5])
  return 'created'
end
if fp ~= ARGV[1] then return 'conflict' end
if redis.call('HGET', KEYS[1], 'published') == '0' then
  local since = tonumber(redis.call('HGET', KEYS[1], 'updated_at'))
  if now - since >= tonumber(ARGV[4]) then
    redis.call('HSET', KEYS[1], 'publish_token', ARGV[3], 'updated_at', ARGV[2])
    return 'takeover'
  end
  return 'publishing'
end
return 'exists'
"""

# Forget a record whose publish failed, only if nobody else has published or taken it over.
_ABANDON = """
if redis.call('HGET', KEYS[1], 'publish_token') == ARGV[1]
   and redis.call('HGET', KEYS[1], 'published') == '0' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

# Mark published and give the watchdog a deadline, unless a worker already moved the record on.
_PUBLISHED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'published', '1')
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'queued' then redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2]) end
redis.call('HINCRBY', KEYS[3], 'messages_accepted', 1)
return 1
"""

# A worker starts on a message: not finished, lease free. Returns {outcome, attempts}.
_BEGIN = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing', '0'} end
if st == 'succeeded' or st == 'failed' or st == 'dead' then return {'finished', '0'} end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return {'busy', '0'} end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'processing', 'started_at', ARGV[1], 'updated_at', ARGV[1],
           'published', '1')
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
return {'started', tostring(n)}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Record:
    integration: str
    message_id: str
    fields: dict[str, str]

    @property
    def status(self) -> Status:
        return self.fields.get("status", "queued")  # type: ignore[return-value]

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.fields["body"])

    @property
    def answer(self) -> dict[str, Any] | None:
        raw = self.fields.get("answer")
        return json.loads(raw) if raw else None

    @property
    def store(self) -> str:
        return self.fields.get("store", "default")

    def view(self) -> dict[str, Any]:
        """The operator's and the hub's view: no body, no secrets."""
        f = self.fields
        view: dict[str, Any] = {
            "integration": self.integration,
            "message_id": self.message_id,
            "message": f.get("message"),
            "service": f.get("service"),
            "status": self.status,
            "attempts": int(f.get("attempts", 0)),
            "replays": int(f.get("replays", 0)),
            "received_at": _iso(f.get("received_at")),
            "started_at": _iso(f.get("started_at")),
            "finished_at": _iso(f.get("finished_at")),
            "next_attempt_at": _iso(f.get("next_attempt_at"))
            if self.status == "retrying"
            else None,
            "last_error": f.get("last_error") or None,
            "answer": self.answer,
        }
        if "delivery" in f:
            view["delivery"] = {
                "status": f["delivery"],
                "attempts": int(f.get("delivery_attempts", 0)),
                "last_error": f.get("delivery_error") or None,
                "delivered_at": _iso(f.get("delivered_at")),
            }
        return view


def _iso(epoch: str | None) -> str | None:
    if not epoch:
        return None
    return datetime.fromtimestamp(float(epoch), UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Timing:
    """Deadlines the watchdog uses; derived from the Celery timing settings."""

    publish_stale_seconds: float = 10.0
    queued_deadline_seconds: float = 900.0  # visibility timeout + slack
    running_deadline_seconds: float = 1200.0  # time limit + visibility timeout
    lease_seconds: float = 310.0  # time limit + slack
    record_ttl_seconds: int = 7 * 24 * 3600


class Records:
    """All record state changes. One instance per process, over one Redis connection pool."""

    def __init__(self, client: redis.Redis, timing: Timing | None = None) -> None:
        self.redis = client
        self.timing = timing or Timing()
        self._accept = client.register_script(_ACCEPT)
        self._abandon = client.register_script(_ABANDON)
        self._published = client.register_script(_PUBLISHED)
        self._begin = client.register_script(_BEGIN)
        self._release = client.register_script(_RELEASE)
        self._loaded = False

    def _script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script, loading them all on first use: EVALSHA then never meets NOSCRIPT,
        which the fakeredis TCP server (bin/run's fallback) answers by hanging up. After a real
        Redis restart, redis-py reloads a script by itself."""
        if not self._loaded:
            with self.redis.pipeline(transaction=False) as pipe:
                for each in (
                    self._accept,
                    self._abandon,
                    self._published,
                    self._begin,
                    self._release,
                ):
                    pipe.script_load(each.script)
                pipe.execute()
            self._loaded = True
        return script(keys=keys, args=args)

    # -- receiving ---------------------------------------------------------------------------
    def accept(
        self,
        integration: str,
        message_id: str,
        fingerprint: str,
        token: str,
        fields: Mapping[str, str],
    ) -> str:
        flat: list[str] = [x for pair in fields.items() for x in pair]
        return self._script(
            self._accept,
            keys=[record_key(integration, message_id), WATCH],
            args=[
                fingerprint,
                repr(time.time()),
                token,
                self.timing.publish_stale_seconds,
                member(integration, message_id),
                *flat,
            ],
        )

    def mark_published(self, integration: str, message_id: str) -> None:
        deadline = time.time() + self.timing.queued_deadline_seconds
        self._script(
            self._published,
            keys=[record_key(integration, message_id), WATCH, STATS],
            args=[deadline, member(integration, message_id)],
        )

    def abandon(self, integration: str, message_id: str, token: str) -> bool:
        return bool(
            self._script(
                self._abandon,
                keys=[record_key(integration, message_id), WATCH],
                args=[token, member(integration, message_id)],
            )
        )

    def get(self, integration: str, message_id: str) -> Record | None:
        fields = self.redis.hgetall(record_key(integration, message_id))
        return Record(integration, message_id, fields) if fields else None

    # -- handling ----------------------------------------------------------------------------
    def begin(self, integration: str, message_id: str, lease_token: str) -> tuple[str, int]:
        now = time.time()
        outcome, attempts = self._script(
            self._begin,
            keys=[
                record_key(integration, message_id),
                lease_key(integration, message_id),
                WATCH,
            ],
            args=[
                repr(now),
                lease_token,
                int(self.timing.lease_seconds * 1000),
                now + self.timing.running_deadline_seconds,
                member(integration, message_id),
            ],
        )
        return outcome, int(attempts)

    def release_lease(self, integration: str, message_id: str, lease_token: str) -> None:
        self.release(lease_key(integration, message_id), lease_token)

    def release(self, key: str, token: str) -> None:
        """Delete a lock key only if we still hold it."""
        self._script(self._release, [key], [token])

    def lease_left(self, integration: str, message_id: str) -> float:
        return self.lock_left(lease_key(integration, message_id))

    def lock_left(self, key: str) -> float:
        return max(0.0, self.redis.pttl(key) / 1000)

    def try_lock(self, key: str, token: str) -> bool:
        """Take a lock that expires like a lease (a dead holder's lock runs out)."""
        return bool(self.redis.set(key, token, nx=True, px=int(self.timing.lease_seconds * 1000)))

    def mark_retrying(
        self, integration: str, message_id: str, error: str, delay: float, lease_token: str
    ) -> None:
        now = time.time()
        with self.redis.pipeline() as pipe:
            pipe.hset(
                record_key(integration, message_id),
                mapping={
                    "status": "retrying",
                    "last_error": error,
                    "next_attempt_at": repr(now + delay),
                    "updated_at": repr(now),
                },
            )
            pipe.zadd(
                WATCH,
                {
                    member(integration, message_id): now
                    + delay
                    + self.timing.queued_deadline_seconds
                },
            )
            pipe.execute()
        self.release_lease(integration, message_id, lease_token)

    def requeue(self, integration: str, message_id: str) -> Record | None:
        """Reset a finished (dead or failed) record so it is handled again: a replay."""
        key = record_key(integration, message_id)
        now = time.time()

        def reset(pipe: redis.client.Pipeline) -> Record | None:
            fields = pipe.hgetall(key)
            if not fields or fields.get("status") not in FINISHED:
                return None
            pipe.multi()
            pipe.hset(
                key,
                mapping={
                    "status": "queued",
                    "published": "1",
                    "attempts": "0",
                    "updated_at": repr(now),
                },
            )
            pipe.hincrby(key, "replays", 1)
            pipe.hdel(
                key,
                "answer",
                "finished_at",
                "next_attempt_at",
                "delivery",
                "delivery_attempts",
                "delivery_error",
                "delivered_at",
            )
            pipe.persist(key)
            pipe.zrem(DEAD_MESSAGES, member(integration, message_id))
            pipe.zrem(OUTBOX, member(integration, message_id))
            pipe.zadd(
                WATCH, {member(integration, message_id): now + self.timing.queued_deadline_seconds}
            )
            return Record(integration, message_id, {**fields, "status": "queued"})

        return self.redis.transaction(reset, key, value_from_callable=True)

    # -- provider side effects, at most once once completed ------------------------------------
    def once_state(
        self, integration: str, message_id: str, operation: str
    ) -> dict[str, Any] | None:
        raw = self.redis.get(once_key(integration, message_id, operation))
        return json.loads(raw) if raw else None

    def once_inflight(
        self, integration: str, message_id: str, operation: str, attempt: int
    ) -> None:
        self.redis.set(
            once_key(integration, message_id, operation),
            json.dumps({"state": "inflight", "attempt": attempt, "since": time.time()}),
            ex=self._ttl(),
        )

    def once_done(self, integration: str, message_id: str, operation: str, result: Any) -> None:
        self.redis.set(
            once_key(integration, message_id, operation),
            json.dumps({"state": "done", "result": result, "at": time.time()}),
            ex=self._ttl(),
        )

    def once_clear(self, integration: str, message_id: str, operation: str) -> None:
        self.redis.delete(once_key(integration, message_id, operation))

    # -- finishing ---------------------------------------------------------------------------
    def finish(
        self,
        integration: str,
        message_id: str,
        status: Literal["succeeded", "failed", "dead"],
        answer: Mapping[str, Any],
        *,
        error: str | None,
        cursor: Mapping[str, Any],
        push: bool,
        keep: list[Keep] | None = None,
        lease_token: str | None,
    ) -> bool:
        """Store the answer, the outbox entry and the cursor in one transaction.

        Returns False (and writes nothing) when the record had already finished, so a redelivered
        task can never queue a second push.
        """
        key = record_key(integration, message_id)
        who = member(integration, message_id)
        now = time.time()

        def commit(pipe: redis.client.Pipeline) -> bool:
            current, store = pipe.hmget(key, "status", "store")
            if current is None or current in FINISHED:
                return False
            pipe.multi()
            update = {
                "status": status,
                "answer": json.dumps(answer),
                "finished_at": repr(now),
                "updated_at": repr(now),
            }
            if error is not None:
                update["last_error"] = error
            if push:
                update |= {"delivery": "pending", "delivery_attempts": "0"}
                pipe.zadd(OUTBOX, {who: now})
            pipe.hset(key, mapping=update)
            pipe.hdel(key, "next_attempt_at")
            pipe.zrem(WATCH, who)
            if status == "dead":
                pipe.zadd(DEAD_MESSAGES, {who: now})
            store = store or "default"
            if cursor:
                pipe.hset(
                    cursor_key(integration, store),
                    mapping={k: json.dumps(v) for k, v in cursor.items()},
                )
            for kind, name, value in keep or []:
                pipe.hset(memory_key(integration, store, kind), name, json.dumps(value))
            for kind in {kind for kind, _, _ in keep or []}:
                pipe.expire(memory_key(integration, store, kind), MEMORY_TTL_SECONDS)
            if not push:
                pipe.expire(key, self._ttl())
            pipe.hincrby(STATS, f"messages_{status}", 1)
            pipe.publish(done_channel(integration, message_id), status)
            return True

        done = self.redis.transaction(commit, key, value_from_callable=True)
        if lease_token:
            self.release_lease(integration, message_id, lease_token)
        return bool(done)

    # -- what handlers keep for later messages ---------------------------------------------
    def recall(self, integration: str, store: str, kind: str, names: list[str]) -> list[Any]:
        if not names:
            return []
        raw = self.redis.hmget(memory_key(integration, store, kind), names)
        return [json.loads(v) if v is not None else None for v in raw]

    # -- cursors -----------------------------------------------------------------------------
    def cursor(self, integration: str, store: str) -> dict[str, Any]:
        raw = self.redis.hgetall(cursor_key(integration, store))
        return {name: json.loads(value) for name, value in raw.items()}

    # -- delivery to the hub ---------------------------------------------------------------
    def delivery_due_at(self, integration: str, message_id: str) -> float | None:
        """When the answer's next push is due; None when it is not in the outbox."""
        return self.redis.zscore(OUTBOX, member(integration, message_id))

    def due_deliveries(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        return [split_member(m) for m in self.redis.zrangebyscore(OUTBOX, 0, now, 0, limit)]

    def delivery_failed(
        self, integration: str, message_id: str, error: str, next_at: float | None
    ) -> int:
        """Count a failed push; schedule the next one, or mark it dead when ``next_at`` is None."""
        key = record_key(integration, message_id)
        who = member(integration, message_id)
        with self.redis.pipeline() as pipe:
            pipe.hincrby(key, "delivery_attempts", 1)
            pipe.hset(key, "delivery_error", error)
            if next_at is None:
                pipe.hset(key, "delivery", "dead")
                pipe.zrem(OUTBOX, who)
                pipe.zadd(DEAD_DELIVERIES, {who: time.time()})
                pipe.expire(key, self._ttl())
                pipe.hincrby(STATS, "deliveries_dead", 1)
            else:
                pipe.zadd(OUTBOX, {who: next_at})
            attempts, *_ = pipe.execute()
        return int(attempts)

    def delivered(self, integration: str, message_id: str) -> None:
        key = record_key(integration, message_id)
        with self.redis.pipeline() as pipe:
            pipe.hincrby(key, "delivery_attempts", 1)
            pipe.hset(key, mapping={"delivery": "delivered", "delivered_at": repr(time.time())})
            pipe.hdel(key, "delivery_error")
            pipe.zrem(OUTBOX, member(integration, message_id))
            pipe.expire(key, self._ttl())
            pipe.hincrby(STATS, "deliveries_succeeded", 1)
            pipe.execute()

    def redeliver(self, integration: str, message_id: str) -> bool:
        """Put a dead delivery back in the outbox: a replay."""
        key = record_key(integration, message_id)
        who = member(integration, message_id)
        if self.redis.hget(key, "delivery") != "dead":
            return False
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping={"delivery": "pending", "delivery_attempts": "0"})
            pipe.persist(key)
            pipe.zrem(DEAD_DELIVERIES, who)
            pipe.zadd(OUTBOX, {who: time.time()})
            pipe.execute()
        return True

    # -- watchdog and listings -------------------------------------------------------------
    def overdue(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        return [split_member(m) for m in self.redis.zrangebyscore(WATCH, 0, now, 0, limit)]

    def postpone(self, integration: str, message_id: str, seconds: float) -> None:
        self.redis.zadd(WATCH, {member(integration, message_id): time.time() + seconds}, xx=True)

    def forget_watch(self, integration: str, message_id: str) -> None:
        self.redis.zrem(WATCH, member(integration, message_id))

    def dead(self, which: str, limit: int = 100) -> list[tuple[str, str, float]]:
        key = DEAD_MESSAGES if which == "messages" else DEAD_DELIVERIES
        rows = self.redis.zrevrange(key, 0, limit - 1, withscores=True)
        return [(*split_member(m), score) for m, score in rows]

    def count(self, name: str, by: int = 1) -> None:
        self.redis.hincrby(STATS, name, by)

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.redis.hgetall(STATS).items()}

    def sizes(self) -> dict[str, int]:
        with self.redis.pipeline(transaction=False) as pipe:
            for key in (WATCH, OUTBOX, DEAD_MESSAGES, DEAD_DELIVERIES):
                pipe.zcard(key)
            watch, outbox, dead_messages, dead_deliveries = pipe.execute()
        return {
            "unfinished_messages": watch,
            "outbox_pending": outbox,
            "dead_messages": dead_messages,
            "dead_deliveries": dead_deliveries,
        }

    def _ttl(self) -> int:
        return self.timing.record_ttl_seconds
