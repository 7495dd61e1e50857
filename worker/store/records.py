"""Message records in Redis: the single source of truth for what was accepted and what became of it.

Keys (all under ``shiphub:``):

* ``msg:<integration>:<message_id>`` hash: body, fingerprint, status, attempts, timestamps, last
  error, answer, delivery state.
* ``once:<integration>:<message_id>:<operation>``: a provider call in flight / done (with result).
* ``lease:<integration>:<message_id>``: the token of the worker handling the message; short-lived
  and renewed while it runs (``worker.store.leases``).
* ``watch`` zset: every unfinished record with the time by which it must have moved on; the
  watchdog (``worker.pipeline.watchdog``) looks at whatever passes that time and republishes what is
  lost.
* ``due`` zset: messages waiting for a retry (or for a poll of their store to end), scored by
  when to publish them again; a worker's scheduler tick publishes what is due
  (``worker.pipeline.scheduler``). Retries never wait in the broker.
* ``outbox`` zset: answers waiting to be pushed to the hub, scored by their next push
  (``worker.store.outbox``).
* ``dead:messages`` / ``dead:deliveries`` zsets: what ran out of retries, replayable; an entry
  leaves with its record.
* ``state:<status>:<integration>:<store>`` zsets, for ``failed``, ``dead`` and ``retrying``
  (``LISTED_STATES``): the messages in that state, member ``<integration>:<store>:<message_id>``,
  scored by when they entered it; an empty integration or store means any
  (``state:failed::``: every failed message; ``state:failed:dotcom:``: Dotcom's, of any store),
  so a listing filtered either way reads one index. Kept in step with the record by the same
  script or transaction that changes its status (begin, retrying, finish, requeue); an entry
  leaves when its record leaves the state, or expires (``prune_dead``).
* ``backfill:states``: how far the one-off backfill of those indexes has got (a SCAN cursor over
  the records; ``done`` once finished), so that records written before the indexes existed are
  listed too (``worker.store.backfill``): run once per Redis.
* ``cursor:<integration>:<store>`` hash: parameters (polling cursors) returned by handlers.
* ``memory:<integration>:<store>:<kind>:<name>``: one thing a handler kept (what was sent, what
  was confirmed), each expiring on its own.

Every state change a handler makes after it begins (retrying, finishing, dead, cursor, memory) is
one Lua script or MULTI/EXEC transaction that first checks the handler still holds its lease: a
stale holder's write is refused, never applied.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import redis

from worker.basics import metrics
from worker.store.scripts import Scripts

PREFIX = "shiphub:"
RECORD_PREFIX = PREFIX + "msg:"
WATCH = PREFIX + "watch"
DUE = PREFIX + "due"
OUTBOX = PREFIX + "outbox"
DEAD_MESSAGES = PREFIX + "dead:messages"
DEAD_DELIVERIES = PREFIX + "dead:deliveries"
# The states an operator lists messages by (``Records.in_states``), each with its indexes.
LISTED_STATES = ("failed", "dead", "retrying")
STATE_PREFIX = PREFIX + "state:"
STATES_BACKFILLED = PREFIX + "backfill:states"
# Unlabelled totals kept for callers that read them as they were (``Records.count`` writes them);
# the metrics themselves are labelled, in ``worker.basics.metrics``.
# The latest messages received (member -> received_at), for operators; capped at RECENT_KEPT.
RECENT = PREFIX + "recent"
RECENT_KEPT = 1000
# When each store's cursor last moved ("<integration>:<store>" -> epoch seconds).
POLLED = PREFIX + "polled"
# The totals ``Records.stats()`` gives (at 0 before they first count): ``messages_<outcome>``
# and ``deliveries_<outcome>``, summed over the labelled counters of ``worker.basics.metrics``.
COUNTERS = (
    *(f"messages_{outcome}" for outcome in metrics.MESSAGE_OUTCOMES),
    *(f"deliveries_{outcome}" for outcome in metrics.DELIVERY_OUTCOMES),
)

FINISHED = frozenset({"succeeded", "failed", "dead"})
REPLAYABLE = frozenset({"failed", "dead"})
Status = Literal["queued", "processing", "retrying", "succeeded", "failed", "dead"]
# What a fenced write did: applied; or refused because the message had already finished, the
# writer no longer holds its lease, or the record is gone.
# "conflict": something the handler read with ``Job.watch`` changed before its answer was stored.
Write = Literal["written", "finished", "stale", "missing", "conflict"]


def record_key(integration: str, message_id: str) -> str:
    return f"{RECORD_PREFIX}{integration}:{message_id}"


def member(integration: str, message_id: str) -> str:
    return f"{integration}:{message_id}"


def split_member(value: str) -> tuple[str, str]:
    integration, _, message_id = value.partition(":")
    return integration, message_id


def state_key(status: str, integration: str = "", store: str = "") -> str:
    """The index of the messages in ``status``, of one integration and one store ("": any)."""
    return f"{STATE_PREFIX}{status}:{integration}:{store}"


def state_keys(status: str, integration: str, store: str) -> tuple[str, ...]:
    """Every index a message of ``integration`` and ``store`` in ``status`` is in."""
    pairs = (("", ""), (integration, ""), ("", store), (integration, store))
    return tuple(state_key(status, i, s) for i, s in pairs)


def state_member(integration: str, store: str, message_id: str) -> str:
    """An index entry: neither an integration nor a store holds a ':' (a message id may)."""
    return f"{integration}:{store}:{message_id}"


def split_state_member(value: str) -> tuple[str, str, str]:
    integration, store, message_id = value.split(":", 2)
    return integration, store, message_id


def _list_in_state(
    pipe: redis.client.Pipeline,
    status: str,
    integration: str,
    store: str,
    message_id: str,
    at: float | None,
) -> None:
    """Queue the index writes of a message entering ``status`` (``at``) or leaving it (None)."""
    if status not in LISTED_STATES:
        return
    entry = state_member(integration, store, message_id)
    for key in state_keys(status, integration, store):
        if at is None:
            pipe.zrem(key, entry)
        else:
            pipe.zadd(key, {entry: at})


# A retry may begin this much before it is due (a copy of its task that arrives just early).
EARLY_START_SECONDS = 0.5


def once_key(integration: str, message_id: str, operation: str) -> str:
    return f"{PREFIX}once:{integration}:{message_id}:{operation}"


def lease_key(integration: str, message_id: str) -> str:
    return f"{PREFIX}lease:{integration}:{message_id}"


def service_lock_key(integration: str, service: str, store: str) -> str:
    return f"{PREFIX}lock:{integration}:{service}:{store}"


def cursor_key(integration: str, store: str) -> str:
    return f"{PREFIX}cursor:{integration}:{store}"


def parts_key(integration: str, message_id: str) -> str:
    """The parts of a message's answer stored ahead of its end (``Records.add_part``): a list,
    each element a JSON array of hub messages, pushed in order before the rest of the answer.
    It lives and expires with the record."""
    return f"{PREFIX}parts:{integration}:{message_id}"


def memory_key(integration: str, store: str, kind: str, name: str) -> str:
    return f"{PREFIX}memory:{integration}:{store}:{kind}:{name}"


# What a handler keeps for later messages: (kind, key, JSON-able value); also what it read and
# expects to be unchanged when its answer is stored (value None: absent).
Keep = tuple[str, str, Any]


def done_channel(integration: str, message_id: str) -> str:
    return f"{PREFIX}done:{integration}:{message_id}"


# Messages arriving together, each recorded and queued in one step, all in one run (one round
# trip, and one script call: a run per message cost Redis a third more). For each message: create
# its record unless it exists, and in the same step queue its task: LPUSH its broker message
# (built by ``worker.tasks.enqueue`` exactly as kombu's Redis transport would) onto its queue's
# list, so a message is never recorded without being queued nor queued without being recorded. The
# broker's Redis must be this one (both are REDIS_URL). Count it accepted, watch it (by when it
# must have started), list it among the recent ones. An existing record is counted a duplicate
# (if a counter field is given) and returned with the outcome, so a duplicate also costs one
# round trip. The push comes first: a script that fails midway keeps the writes made before the
# error (Redis does not roll back), so the one write that can fail on a key we do not own (the
# broker's list) must precede the record; a caller told of the failure sends the message again
# and finds it recorded. Counters and the recent list's cap are written once per run.
#
# A message already recorded is the same message when its fingerprint is the record's (or, for a
# record written before fingerprints were versioned, the one it was written with: ``also``). The
# copy that came last says what parameters the message carries (a hub resend with rotated
# credentials or a newer cursor): they replace those kept, for any run still to come (a retry, a
# replay); none carried, none kept; a message that succeeded is never run again and keeps none.
# Another message under the same id is a conflict, and changes nothing.
#
# KEYS: watch set, messages counter, recent set, then per message its record and its queue list.
# ARGV per message: fingerprint, now, deadline, member, accepted field, duplicate field ('' for
# none), broker message ('' for none), the fingerprint also matched ('' for none), the sealed
# parameters ('' for none), the number of field names and values that follow, those.
# Returns per message {created} | {exists, field, value, ...} | {conflict, field, value, ...}.
_ACCEPT = """
local replies, counts, created, a = {}, {}, 0, 1
for i = 1, (#KEYS - 3) / 2 do
  local record, queue, n = KEYS[2 + 2 * i], KEYS[3 + 2 * i], tonumber(ARGV[a + 9])
  local fp = redis.call('HGET', record, 'fingerprint')
  if not fp then
    if ARGV[a + 6] ~= '' then redis.call('LPUSH', queue, ARGV[a + 6]) end
    local now = ARGV[a + 1]
    redis.call('HSET', record, 'fingerprint', ARGV[a], 'received_at', now, 'updated_at', now,
               'queued_at', now, 'status', 'queued', 'attempts', '0',
               unpack(ARGV, a + 10, a + 9 + n))
    redis.call('ZADD', KEYS[1], ARGV[a + 2], ARGV[a + 3])
    redis.call('ZADD', KEYS[3], now, ARGV[a + 3])
    counts[ARGV[a + 4]] = (counts[ARGV[a + 4]] or 0) + 1
    created = created + 1
    replies[i] = {'created'}
  elseif fp ~= ARGV[a] and (ARGV[a + 7] == '' or fp ~= ARGV[a + 7]) then
    local found = redis.call('HGETALL', record)
    table.insert(found, 1, 'conflict')
    replies[i] = found
  else
    if redis.call('HGET', record, 'status') == 'succeeded' then
      -- never run again: nothing to keep them for
    elseif ARGV[a + 8] ~= '' then
      redis.call('HSET', record, 'parameters', ARGV[a + 8])
    else
      redis.call('HDEL', record, 'parameters')
    end
    if ARGV[a + 5] ~= '' then counts[ARGV[a + 5]] = (counts[ARGV[a + 5]] or 0) + 1 end
    local found = redis.call('HGETALL', record)
    table.insert(found, 1, 'exists')
    replies[i] = found
  end
  a = a + 10 + n
end
for field, count in pairs(counts) do redis.call('HINCRBY', KEYS[2], field, count) end
if created > 0 then
  local over = redis.call('ZCARD', KEYS[3]) - %d
  if over > 0 then redis.call('ZPOPMIN', KEYS[3], over) end
end
return replies
""".replace("%d", str(RECENT_KEPT))

# A record made without its broker message (``Records.accept``, for tools and tests that drive a
# record by hand) about to be published by the caller: watched from ``queued_at``.
_PUBLISHED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'status') == 'queued' then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
end
return 1
"""

# Stamp a message that is about to be (re)published: the same stamp rides in the broker message,
# which is how the watchdog tells a queued message from a lost one.
_REQUEUED = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st or st == 'succeeded' or st == 'failed' or st == 'dead' then return 0 end
redis.call('HSET', KEYS[1], 'queued_at', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# Lua for the state indexes (``state_keys``), put before the scripts that call it: a message, named
# by its record's key and its member ``<integration>:<message_id>``, enters a state's indexes
# ('add', scored ``at``) or leaves them.
_LISTING = """
local function listing(op, status, record, who, at)
  local integration, id = string.match(who, '^([^:]*):(.*)$')
  local store = redis.call('HGET', record, 'store') or 'default'
  local entry = integration .. ':' .. store .. ':' .. id
  local base = '%s' .. status .. ':'
  for _, key in ipairs({base .. ':', base .. integration .. ':', base .. ':' .. store,
                        base .. integration .. ':' .. store}) do
    if op == 'add' then redis.call('ZADD', key, at, entry) else redis.call('ZREM', key, entry) end
  end
end
""".replace("%s", STATE_PREFIX)

# A worker starts on a message: not finished, not a stray copy of a retry that is not due yet,
# lease free. Returns {outcome, attempts, body, store, retry_since, sealed parameters, replays}.
_BEGIN = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if st == 'succeeded' or st == 'failed' or st == 'dead' then return {'finished'} end
local now = tonumber(ARGV[1])
if st == 'retrying' then
  local at = tonumber(redis.call('HGET', KEYS[1], 'next_attempt_at') or '0')
  if at > now + tonumber(ARGV[6]) then return {'early'} end
end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return {'busy'} end
if st == 'retrying' then listing('rem', 'retrying', KEYS[1], ARGV[5]) end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'processing', 'started_at', ARGV[1], 'updated_at', ARGV[1])
redis.call('HSETNX', KEYS[1], 'retry_since', ARGV[1])
redis.call('HDEL', KEYS[1], 'next_attempt_at')
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('ZREM', KEYS[4], ARGV[5])
local f = redis.call('HMGET', KEYS[1], 'body', 'store', 'retry_since', 'parameters', 'replays')
return {'started', tostring(n), f[1], f[2], f[3], f[4] or '', f[5] or '0'}
"""

# The holder schedules its retry, if it still holds the lease; the lease goes with it.
_RETRYING = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'retrying', 'last_error', ARGV[4],
           'next_attempt_at', ARGV[3], 'updated_at', ARGV[2])
listing('add', 'retrying', KEYS[1], ARGV[5], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
redis.call('DEL', KEYS[2])
return 1
"""

# Messages whose retry is due: taken off the due set and stamped for publishing in one step
# (one that finished or expired meanwhile is only taken off).
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local key = ARGV[4] .. m
  local st = redis.call('HGET', key, 'status')
  if st and st ~= 'succeeded' and st ~= 'failed' and st ~= 'dead' then
    redis.call('HSET', key, 'queued_at', ARGV[1])
    redis.call('ZADD', KEYS[2], ARGV[3], m)
    out[#out + 1] = m
  end
end
return out
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# A dead-list entry leaves once its record has expired (checked only for entries old enough).
_PRUNE = """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local gone = 0
for _, m in ipairs(old) do
  if redis.call('EXISTS', ARGV[2] .. m) == 0 then
    redis.call('ZREM', KEYS[1], m)
    gone = gone + 1
  end
end
return gone
"""


# A state's index entries that may be stale (scored before ARGV[2]) and whose record is gone or
# in another state, taken off all of that state's indexes. KEYS[1]: the state's index of every
# message; ARGV: the state, the score, the record key prefix, how many to look at.
_PRUNE_STATE = """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])
local gone = 0
for _, m in ipairs(old) do
  local integration, store, id = string.match(m, '^([^:]*):([^:]*):(.*)$')
  if redis.call('HGET', ARGV[3] .. integration .. ':' .. id, 'status') ~= ARGV[1] then
    local base = '%s' .. ARGV[1] .. ':'
    for _, key in ipairs({base .. ':', base .. integration .. ':', base .. ':' .. store,
                          base .. integration .. ':' .. store}) do
      redis.call('ZREM', key, m)
    end
    gone = gone + 1
  end
end
return gone
""".replace("%s", STATE_PREFIX)


@dataclass(frozen=True)
class Cursor:
    """Where a store's polls continue from, and when that last moved."""

    integration: str
    store: str
    moved_at: float
    values: dict[str, Any]


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

    @property
    def queued_at(self) -> float:
        return float(self.fields.get("queued_at") or 0)

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
            "earlier_error": f.get("earlier_error") or None,
            "answer": self.answer,
        }
        if "delivery" in f:
            view["delivery"] = {
                "status": f["delivery"],
                "attempts": int(f.get("delivery_attempts", 0)),
                "last_error": f.get("delivery_error") or None,
                "next_attempt_at": _iso(f.get("next_push_at"))
                if f["delivery"] == "pending"
                else None,
                "delivered_at": _iso(f.get("delivered_at")),
            }
        return view


@dataclass(frozen=True)
class Position:
    """Where a page of a state listing ends (its last entry's score and name): the next page
    starts right after it, whatever entered the states meanwhile."""

    at: float
    entry: str


@dataclass(frozen=True)
class InState:
    """A message listed in a state (``Records.in_states``), with when it entered it."""

    record: Record
    store: str
    status: str
    since: float


def _fenced(
    pipe: redis.client.Pipeline, status: str | None, lease: str, lease_token: str
) -> Write | None:
    """Why a handler's write must not be applied (the record is gone, the message finished, the
    lease is another holder's), read in a watched transaction; None: it may."""
    if status is None:
        return "missing"
    if status in FINISHED:
        return "finished"
    if pipe.get(lease) != lease_token:
        return "stale"
    return None


def _iso(epoch: str | None) -> str | None:
    if not epoch:
        return None
    return datetime.fromtimestamp(float(epoch), UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Timing:
    """How long things may take before someone looks at them; derived from the settings."""

    queued_deadline_seconds: float = 60.0  # a published message not started by then is checked
    lease_seconds: float = 30.0
    record_ttl_seconds: int = 7 * 24 * 3600
    memory_ttl_seconds: int = 180 * 24 * 3600


@dataclass(frozen=True)
class Received:
    """What ``Records.receive`` did: ``created`` (recorded and queued in one step), or found the
    message already recorded: ``exists`` (same content) or ``conflict`` (other content), with
    that ``record``."""

    outcome: Literal["created", "exists", "conflict"]
    record: Record | None


class QueuedTask(Protocol):
    """A message's broker message as the accept script pushes it with its record: the list it
    goes onto and its text. The broker's side builds it (``worker.tasks.enqueue.Envelope``); the
    store knows only this much of it."""

    @property
    def queue_key(self) -> str: ...

    @property
    def message(self) -> str: ...


@dataclass(frozen=True)
class Arrival:
    """A message to record, with its broker message (None: record it without queuing)."""

    integration: str
    message_id: str
    fingerprint: str
    fields: Mapping[str, str]
    envelope: QueuedTask | None
    now: float  # the stamp ``envelope`` carries (``shiphub_queued_at``)
    also: str = ""  # a fingerprint the record may have been written with before (or none)


def _received(arrival: Arrival, found: list[str]) -> Received:
    outcome, *flat = found
    if not flat:
        return Received(outcome, None)
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return Received(outcome, Record(arrival.integration, arrival.message_id, fields))


@dataclass(frozen=True)
class Begun:
    """What ``begin`` found: ``started`` (then the attempt number and what the handler needs),
    or why not: ``missing``, ``finished``, ``busy`` (another worker holds the lease) or ``early``
    (a stray copy of a retry that is not due yet)."""

    outcome: str
    attempt: int = 0
    body: str = "{}"
    store: str = "default"
    retry_since: float = 0.0
    parameters: str = ""  # sealed (worker.basics.sealing); empty when the message carried none
    replays: int = 0  # which run this is: 0 the first, n after the n-th replay


class Records:
    """All message record state changes. One instance per process, over one Redis pool."""

    def __init__(self, client: redis.Redis, timing: Timing | None = None) -> None:
        self.redis = client
        self.timing = timing or Timing()
        self._scripts = Scripts(
            client,
            accept=_ACCEPT,
            published=_PUBLISHED,
            requeued=_REQUEUED,
            begin=_LISTING + _BEGIN,
            retrying=_LISTING + _RETRYING,
            claim_due=_CLAIM_DUE,
            release=_RELEASE,
            prune=_PRUNE,
            prune_state=_PRUNE_STATE,
        )

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self._scripts.run(name, keys, args)

    # -- receiving ---------------------------------------------------------------------------
    def receive(
        self,
        integration: str,
        message_id: str,
        fingerprint: str,
        fields: Mapping[str, str],
        envelope: QueuedTask,
        now: float,
    ) -> Received:
        """Record a message and queue its broker message in one step (one round trip), or find
        the record already there: ``created`` (recorded and queued), ``exists`` (the same
        message, counted a duplicate) or ``conflict`` (the same id with another content), with
        the record found. ``now`` is the stamp ``envelope`` carries (``shiphub_queued_at``)."""
        arrival = Arrival(integration, message_id, fingerprint, fields, envelope, now)
        return self.receive_all([arrival])[0]

    def receive_all(self, arrivals: Sequence[Arrival]) -> list[Received]:
        """``receive`` for several messages in one round trip (one run of the accept script);
        each is recorded and queued in one step of its own, as if received alone."""
        found = self._run("accept", *self._accept_call(arrivals, duplicates=True))
        return [_received(a, f) for a, f in zip(arrivals, found, strict=True)]

    def accept(
        self,
        integration: str,
        message_id: str,
        fingerprint: str,
        fields: Mapping[str, str],
        now: float | None = None,
    ) -> str:
        """Record a message without queuing anything (``created`` | ``exists`` | ``conflict``):
        for tools and tests that drive a record by hand and publish it themselves
        (``mark_published``); nothing else counts it."""
        when = time.time() if now is None else now
        arrival = Arrival(integration, message_id, fingerprint, fields, None, when)
        return self._run("accept", *self._accept_call([arrival], duplicates=False))[0][0]

    def _accept_call(
        self, arrivals: Sequence[Arrival], *, duplicates: bool
    ) -> tuple[list[str], list[Any]]:
        """The accept script's keys and arguments for ``arrivals``; ``duplicates``: count a
        duplicate when a message is already recorded."""
        keys = [WATCH, metrics.MESSAGES.key, RECENT]
        args: list[Any] = []
        for a in arrivals:
            service = a.fields.get("service") or metrics.UNKNOWN
            key = record_key(a.integration, a.message_id)
            keys += (key, a.envelope.queue_key if a.envelope else key)
            args += (
                a.fingerprint,
                repr(a.now),
                a.now + self.timing.queued_deadline_seconds,
                member(a.integration, a.message_id),
                metrics.MESSAGES.field(a.integration, service, "accepted"),
                metrics.MESSAGES.field(a.integration, service, "duplicate") if duplicates else "",
                a.envelope.message if a.envelope else "",
                a.also,
                a.fields.get("parameters", ""),
                2 * len(a.fields),
            )
            for pair in a.fields.items():
                args += pair
        return keys, args

    def mark_published(self, integration: str, message_id: str, queued_at: float) -> None:
        """A record made with ``accept`` was published by its caller: watch it from then."""
        self._run(
            "published",
            [record_key(integration, message_id), WATCH],
            [queued_at + self.timing.queued_deadline_seconds, member(integration, message_id)],
        )

    def mark_requeued(self, integration: str, message_id: str, queued_at: float) -> bool:
        """Stamp an unfinished message that is about to be published again."""
        return bool(
            self._run(
                "requeued",
                [record_key(integration, message_id), WATCH],
                [
                    repr(queued_at),
                    queued_at + self.timing.queued_deadline_seconds,
                    member(integration, message_id),
                ],
            )
        )

    def get(self, integration: str, message_id: str) -> Record | None:
        fields = self.redis.hgetall(record_key(integration, message_id))
        return Record(integration, message_id, fields) if fields else None

    # -- handling ----------------------------------------------------------------------------
    def begin(self, integration: str, message_id: str, lease_token: str) -> Begun:
        now = time.time()
        found = self._run(
            "begin",
            [record_key(integration, message_id), lease_key(integration, message_id), WATCH, DUE],
            [
                repr(now),
                lease_token,
                int(self.timing.lease_seconds * 1000),
                now + self.timing.lease_seconds + 1,
                member(integration, message_id),
                EARLY_START_SECONDS,
            ],
        )
        if found[0] != "started":
            return Begun(found[0])
        _, attempt, body, store, since, parameters, replays = found
        return Begun(
            "started",
            int(attempt),
            body or "{}",
            store or "default",
            float(since),
            parameters,
            int(replays),
        )

    def mark_retrying(
        self, integration: str, message_id: str, error: str, at: float, lease_token: str
    ) -> bool:
        """Schedule the next attempt at ``at`` (releasing the lease); False, and nothing written,
        when ``lease_token`` no longer holds the lease."""
        who = member(integration, message_id)
        return bool(
            self._run(
                "retrying",
                [
                    record_key(integration, message_id),
                    lease_key(integration, message_id),
                    WATCH,
                    DUE,
                ],
                [
                    lease_token,
                    repr(time.time()),
                    repr(at),
                    error,
                    who,
                    at + self.timing.queued_deadline_seconds,
                ],
            )
        )

    def defer(self, integration: str, message_id: str, at: float) -> None:
        """Publish the message again at ``at`` without starting it (a poll of its store runs)."""
        who = member(integration, message_id)
        with self.redis.pipeline() as pipe:
            pipe.zadd(DUE, {who: at}, nx=True)
            pipe.zadd(WATCH, {who: at + self.timing.queued_deadline_seconds})
            pipe.execute()

    def claim_due(self, now: float, limit: int = 200) -> list[tuple[str, str]]:
        """Take the messages whose retry is due off the due set, stamped ``now`` for publishing.
        If the caller dies before publishing them, the watchdog finds them lost."""
        due = self._run(
            "claim_due",
            [DUE, WATCH],
            [repr(now), limit, now + self.timing.queued_deadline_seconds, RECORD_PREFIX],
        )
        return [split_member(m) for m in due]

    def release(self, key: str, token: str) -> None:
        """Delete a lock key only if we still hold it."""
        self._run("release", [key], [token])

    def lock_left(self, key: str) -> float:
        return max(0.0, self.redis.pttl(key) / 1000)

    def try_lock(self, key: str, token: str) -> bool:
        """Take a lock that expires like a lease (a dead holder's lock runs out)."""
        return bool(self.redis.set(key, token, nx=True, px=int(self.timing.lease_seconds * 1000)))

    def lease_held(self, integration: str, message_id: str) -> bool:
        return bool(self.redis.exists(lease_key(integration, message_id)))

    def requeue(self, integration: str, message_id: str) -> Record | None:
        """Reset a failed or dead record so it is handled again (a replay), stamped for the
        publish that follows. A succeeded message is not replayed: its answer stands."""
        key = record_key(integration, message_id)
        who = member(integration, message_id)
        now = time.time()

        def reset(pipe: redis.client.Pipeline) -> Record | None:
            fields = pipe.hgetall(key)
            if not fields or fields.get("status") not in REPLAYABLE:
                return None
            pipe.multi()
            if fields.get("delivery") == "delivered":
                pipe.delete(parts_key(integration, message_id))  # the hub has them
            else:
                # Parts stored ahead were kept (written with what the handler kept): the
                # hub must still get them, with the new answer.
                pipe.persist(parts_key(integration, message_id))
            reset = {
                "status": "queued",
                "attempts": "0",
                "updated_at": repr(now),
                "queued_at": repr(now),
            }
            if fields.get("last_error"):  # the run replayed is history now
                reset["earlier_error"] = fields["last_error"]
            pipe.hset(key, mapping=reset)
            pipe.hincrby(key, "replays", 1)
            pipe.hdel(
                key,
                "last_error",
                "answer",
                "finished_at",
                "next_attempt_at",
                "retry_since",
                "delivery",
                "delivery_id",
                "delivery_part",
                "delivery_attempts",
                "delivery_timeouts",
                "delivery_error",
                "delivery_since",
                "delivered_at",
                "next_push_at",
                "push_claim",
                "push_holder",
            )
            pipe.persist(key)
            for listed in (DEAD_MESSAGES, DEAD_DELIVERIES, OUTBOX, DUE):
                pipe.zrem(listed, who)
            store = fields.get("store") or "default"
            _list_in_state(pipe, fields["status"], integration, store, message_id, None)
            pipe.zadd(WATCH, {who: now + self.timing.queued_deadline_seconds})
            return Record(
                integration, message_id, {**fields, "status": "queued", "queued_at": repr(now)}
            )

        return self.redis.transaction(reset, key, value_from_callable=True)

    # -- provider side effects, at most once once completed ------------------------------------
    # These record facts about the provider (a call started, a call returned) and are written
    # even by a holder that lost its lease: hiding a completed call would only repeat it. Each
    # mark names the run that wrote it (``run``: 0, then one more per replay; ``Job.once``).
    def once_state(
        self, integration: str, message_id: str, operation: str
    ) -> dict[str, Any] | None:
        raw = self.redis.get(once_key(integration, message_id, operation))
        return json.loads(raw) if raw else None

    def once_inflight(
        self,
        integration: str,
        message_id: str,
        operation: str,
        attempt: int,
        sends: Mapping[str, Any] | None = None,
        run: int = 0,
    ) -> None:
        mark = {
            "state": "inflight",
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

    def once_done(
        self,
        integration: str,
        message_id: str,
        operation: str,
        result: Any,
        run: int = 0,
        sends: Mapping[str, Any] | None = None,
    ) -> None:
        mark = {"state": "done", "result": result, "at": time.time(), "run": run, "sends": sends}
        self.redis.set(
            once_key(integration, message_id, operation),
            json.dumps(mark),
            ex=self.timing.record_ttl_seconds,
        )

    def once_clear(
        self, integration: str, message_id: str, operation: str, attempt: int, run: int = 0
    ) -> None:
        """Forget an in-flight mark, if it is still this attempt's (of this run)."""
        key = once_key(integration, message_id, operation)

        def clear(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(key)
            state = json.loads(raw) if raw else None
            if (
                state
                and state.get("state") == "inflight"
                and state.get("attempt") == attempt
                and state.get("run", 0) == run
            ):
                pipe.multi()
                pipe.delete(key)

        self.redis.transaction(clear, key)

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
        lease_token: str,
        keep: list[Keep] | None = None,
        expect: list[Keep] | None = None,
        observed: metrics.Tally | None = None,
    ) -> Write:
        """Store the answer, the outbox entry, the cursor and what the handler keeps in one
        transaction, and release the lease, only if ``lease_token`` still holds it and the
        message has not finished: a stale holder or a redelivered task writes nothing.

        ``expect`` is handler memory read with ``Job.watch``: if any of it changed since (another
        message reported the same shipment first), nothing is written ("conflict") and the
        handler runs again on what is there now. The outcome is counted in the same
        transaction, with what the attempt ``observed`` (``worker.basics.metrics``)."""
        key, lease = record_key(integration, message_id), lease_key(integration, message_id)
        who = member(integration, message_id)
        now = time.time()
        watched: dict[str, Any] = {}
        if expect:
            at = self.redis.hget(key, "store") or "default"
            watched = {memory_key(integration, at, k, n): v for k, n, v in expect}

        def commit(pipe: redis.client.Pipeline) -> Write:
            current, store, service, met = pipe.hmget(
                key, "status", "store", "service", "last_error"
            )
            if refused := _fenced(pipe, current, lease, lease_token):
                return refused
            if watched:
                now_there = pipe.mget(list(watched))
                if any(
                    (json.loads(raw) if raw is not None else None) != value
                    for raw, value in zip(now_there, watched.values(), strict=True)
                ):
                    return "conflict"
            pipe.multi()
            update = {
                "status": status,
                "answer": json.dumps(answer),
                "finished_at": repr(now),
                "updated_at": repr(now),
            }
            if error is not None:
                update["last_error"] = error
            elif met and status == "succeeded":  # no error is current: the one met is history
                update["earlier_error"] = met
            if push:
                update |= {
                    "delivery": "pending",
                    "delivery_id": uuid.uuid4().hex,  # every push of this answer carries it
                    "delivery_part": "1",
                    "delivery_attempts": "0",
                    "delivery_timeouts": "0",
                    "delivery_since": repr(now),
                }
                pipe.zadd(OUTBOX, {who: now})
                pipe.zadd(metrics.OUTBOX_READY, {who: now})
            pipe.hset(key, mapping=update)
            # A failed or dead message keeps its parameters, sealed, for a replay (they expire
            # with the record); one that succeeded is never run again: nothing secret stays.
            done = ("last_error", "parameters") if status == "succeeded" else ()
            pipe.hdel(key, "next_attempt_at", *done)
            pipe.delete(lease)
            pipe.zrem(WATCH, who)
            pipe.zrem(DUE, who)
            if status == "dead":
                pipe.zadd(DEAD_MESSAGES, {who: now})
            store = store or "default"
            _list_in_state(pipe, status, integration, store, message_id, now)
            if cursor:
                pipe.hset(
                    cursor_key(integration, store),
                    mapping={k: json.dumps(v) for k, v in cursor.items()},
                )
                pipe.hset(POLLED, member(integration, store), repr(now))
            for kind, name, value in keep or []:
                pipe.set(
                    memory_key(integration, store, kind, name),
                    json.dumps(value),
                    ex=self.timing.memory_ttl_seconds,
                )
            if not push:
                pipe.expire(key, self.timing.record_ttl_seconds)
                pipe.expire(parts_key(integration, message_id), self.timing.record_ttl_seconds)
            metrics.increment(
                pipe, metrics.MESSAGES, integration, service or metrics.UNKNOWN, status
            )
            if observed:
                observed.write(pipe)
            pipe.publish(done_channel(integration, message_id), status)
            return "written"

        return self.redis.transaction(commit, key, lease, *watched, value_from_callable=True)

    def add_part(
        self,
        integration: str,
        message_id: str,
        parts: list[str],
        *,
        lease_token: str,
        keep: list[Keep],
    ) -> Write:
        """Store parts of the answer ahead of its end (each a JSON array of hub messages), with
        what the handler keeps about them, in one transaction fenced like ``finish``: a long
        poll's answer leaves the worker's memory as it is made, and a later attempt (the worker
        died) finds these already kept, so it neither loses nor repeats them. They are pushed
        before the rest of the answer, whatever status it ends with."""
        key, lease = record_key(integration, message_id), lease_key(integration, message_id)

        def commit(pipe: redis.client.Pipeline) -> Write:
            current, store = pipe.hmget(key, "status", "store")
            if refused := _fenced(pipe, current, lease, lease_token):
                return refused
            pipe.multi()
            if parts:
                pipe.rpush(parts_key(integration, message_id), *parts)
            for kind, name, value in keep:
                pipe.set(
                    memory_key(integration, store or "default", kind, name),
                    json.dumps(value),
                    ex=self.timing.memory_ttl_seconds,
                )
            return "written"

        return self.redis.transaction(commit, key, lease, value_from_callable=True)

    def parts(self, integration: str, message_id: str) -> list[Any]:
        """The messages of the parts stored ahead of the answer, in order (all of them: for a
        hub that waits for the whole answer)."""
        raw = self.redis.lrange(parts_key(integration, message_id), 0, -1)
        return [message for part in raw for message in json.loads(part)]

    # -- what handlers keep for later messages ---------------------------------------------
    def recall(self, integration: str, store: str, kind: str, names: list[str]) -> list[Any]:
        if not names:
            return []
        raw = self.redis.mget([memory_key(integration, store, kind, n) for n in names])
        return [json.loads(v) if v is not None else None for v in raw]

    # -- cursors -----------------------------------------------------------------------------
    def cursor(self, integration: str, store: str) -> dict[str, Any]:
        raw = self.redis.hgetall(cursor_key(integration, store))
        return {name: json.loads(value) for name, value in raw.items()}

    def cursors(self) -> list[Cursor]:
        """Every store's cursor, with when it last moved (newest first)."""
        moved = {split_member(m): float(at) for m, at in self.redis.hgetall(POLLED).items()}
        found = [Cursor(i, store, at, self.cursor(i, store)) for (i, store), at in moved.items()]
        return sorted(found, key=lambda c: c.moved_at, reverse=True)

    # -- watchdog and listings -------------------------------------------------------------
    def overdue(self, now: float, limit: int = 500) -> list[tuple[str, str]]:
        return [split_member(m) for m in self.redis.zrangebyscore(WATCH, 0, now, 0, limit)]

    def due_at(self, integration: str, message_id: str) -> float | None:
        """When the message is to be published again; None when no retry is scheduled."""
        return self.redis.zscore(DUE, member(integration, message_id))

    def postpone(self, integration: str, message_id: str, at: float) -> None:
        self.redis.zadd(WATCH, {member(integration, message_id): at}, xx=True)

    def forget_watch(self, integration: str, message_id: str) -> None:
        self.redis.zrem(WATCH, member(integration, message_id))

    def prune_dead(self, now: float | None = None, limit: int = 1000) -> int:
        """Take dead-list entries whose records have expired off the lists. Only entries older
        than the record TTL can have lost their record, so only those are looked at."""
        older_than = (time.time() if now is None else now) - self.timing.record_ttl_seconds
        self._prune_states(older_than, limit)  # the state indexes' entries likewise
        return sum(
            self._run("prune", [listed], [older_than, RECORD_PREFIX, limit])
            for listed in (DEAD_MESSAGES, DEAD_DELIVERIES)
        )

    def _prune_states(self, older_than: float, limit: int) -> int:
        """Take off the state indexes the entries whose records expired (or, should one have
        been missed, left the state): only entries older than the record TTL are looked at."""
        return sum(
            self._run("prune_state", [state_key(s)], [s, older_than, RECORD_PREFIX, limit])
            for s in LISTED_STATES
        )

    def in_states(
        self,
        statuses: Sequence[str],
        *,
        integration: str | None = None,
        store: str | None = None,
        limit: int = 50,
        after: Position | None = None,
    ) -> tuple[list[InState], Position | None]:
        """The messages in any of ``statuses`` (of ``LISTED_STATES``), of one integration and
        one store when given, newest in their state first: one page of at most ``limit``, after
        ``after``, and where the next page starts (None: this is the last). Reads one index per
        state and one record per entry, never more, however much history Redis holds. An entry
        whose record left the state since it was read is left out, so a page may hold fewer."""
        wanted = list(dict.fromkeys(statuses))
        keys = [state_key(s, integration or "", store or "") for s in wanted]
        ties = [0] * len(keys)
        if after is not None:  # entries scored the same as the last one, on either side of it
            with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zcount(key, after.at, after.at)
                ties = pipe.execute()
        with self.redis.pipeline(transaction=False) as pipe:
            for key, tied in zip(keys, ties, strict=True):
                top = after.at if after is not None else "+inf"
                pipe.zrevrangebyscore(key, top, "-inf", 0, limit + 1 + tied, withscores=True)
            ranges = pipe.execute()
        found = sorted(
            (
                (score, entry, status)
                for status, rows in zip(wanted, ranges, strict=True)
                for entry, score in rows
                if after is None or (score, entry) < (after.at, after.entry)
            ),
            reverse=True,
        )
        page = found[:limit]
        with self.redis.pipeline(transaction=False) as pipe:
            for _, entry, _ in page:
                integration_name, _, message_id = split_state_member(entry)
                pipe.hgetall(record_key(integration_name, message_id))
            fields = pipe.execute()
        listed = []
        for (score, entry, status), f in zip(page, fields, strict=True):
            integration_name, store_name, message_id = split_state_member(entry)
            if f.get("status") == status:
                listed.append(
                    InState(Record(integration_name, message_id, f), store_name, status, score)
                )
        more = len(found) > limit
        return listed, Position(page[-1][0], page[-1][1]) if more else None

    def recent(self, limit: int = 50) -> list[Record]:
        """The latest messages received, newest first (those whose records expired left out)."""
        members = self.redis.zrevrange(RECENT, 0, limit - 1)
        with self.redis.pipeline(transaction=False) as pipe:
            for m in members:
                pipe.hgetall(record_key(*split_member(m)))
            found = pipe.execute()
        return [Record(*split_member(m), f) for m, f in zip(members, found, strict=True) if f]

    def dead(self, which: str, limit: int = 100) -> list[tuple[str, str, float]]:
        key = DEAD_MESSAGES if which == "messages" else DEAD_DELIVERIES
        rows = self.redis.zrevrange(key, 0, limit - 1, withscores=True)
        return [(*split_member(m), score) for m, score in rows]

    def count(
        self,
        name: str,
        by: int = 1,
        *,
        integration: str = metrics.UNKNOWN,
        service: str = metrics.UNKNOWN,
    ) -> None:
        """Count what a caller saw outside any transaction of ours: ``messages_duplicate``,
        ``messages_republished``, in the labelled messages counter."""
        with self.redis.pipeline(transaction=False) as pipe:
            outcome = name.removeprefix("messages_")
            if outcome != name:
                metrics.increment(pipe, metrics.MESSAGES, integration, service, outcome, by=by)
            pipe.execute()

    def stats(self) -> dict[str, int]:
        """Totals over every integration and service: ``messages_<outcome>`` and
        ``deliveries_<outcome>``, each at 0 before it first counts."""
        stored = metrics.read(self.redis).counters
        totals = dict.fromkeys(COUNTERS, 0)
        for family, prefix in (
            (metrics.MESSAGES, "messages_"),
            (metrics.DELIVERIES, "deliveries_"),
        ):
            for labels, value in stored[family].items():
                name = prefix + labels[-1]
                totals[name] = totals.get(name, 0) + int(value)
        return totals

    def sizes(self) -> dict[str, int]:
        with self.redis.pipeline(transaction=False) as pipe:
            for key in (WATCH, DUE, OUTBOX, DEAD_MESSAGES, DEAD_DELIVERIES):
                pipe.zcard(key)
            watch, due, outbox, dead_messages, dead_deliveries = pipe.execute()
        return {
            "unfinished_messages": watch,
            "retries_scheduled": due,
            "outbox_pending": outbox,
            "dead_messages": dead_messages,
            "dead_deliveries": dead_deliveries,
        }
