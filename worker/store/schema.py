"""What is kept in Redis, declared once: every key, every field of a message's record, the
statuses and the sets of them, and the outcomes the stores answer with.

The stores (``worker.store.messages``, ``attempts``, ``once``, ``memory``, ``listings``,
``outbox``, ``leases``, ``pacing``, ``backfill``, ``replication``) and the Lua scripts
(``worker/store/lua``, filled from this module by ``worker.store.scripts``) read every name from
here; the values are the wire values (the enums are ``StrEnum``), so nothing stored changes.

Keys (all under ``shiphub:``):

* ``msg:<integration>:<message_id>`` hash (``record_key``): the record, its fields
  ``RecordField``: body, fingerprint, status, attempts, timestamps, last error, answer,
  delivery state.
* ``once:<integration>:<message_id>:<operation>``: a provider call in flight / done (with result).
* ``lease:<integration>:<message_id>``: the token of the worker handling the message; short-lived
  and renewed while it runs (``worker.store.leases``); ``lock:<integration>:<service>:<store>``,
  a poll's lock on its store, likewise.
* ``watch`` zset: every unfinished record with the time by which it must have moved on; the
  watchdog (``worker.pipeline.watchdog``) looks at whatever passes that time and republishes what is
  lost.
* ``due`` zset: messages waiting for a retry (or for a poll of their store to end), scored by
  when to publish them again; a worker's scheduler tick publishes what is due
  (``worker.pipeline.scheduler``). Retries never wait in the broker.
* ``outbox`` zset: answers waiting to be pushed to the hub, scored by their next push
  (``worker.store.outbox``), with ``push-claims``, the claim numbers' sequence.
* ``dead:messages`` / ``dead:deliveries`` zsets: what ran out of retries, replayable; an entry
  leaves with its record.
* ``state:<status>:<integration>:<store>`` zsets, for ``failed``, ``dead`` and ``retrying``
  (``LISTED_STATES``): the messages in that state, member ``<integration>:<store>:<message_id>``,
  scored by when they entered it; an empty integration or store means any
  (``state:failed::``: every failed message; ``state:failed:dotcom:``: Dotcom's, of any store),
  so a listing filtered either way reads one index. Kept in step with the record by the same
  script or transaction that changes its status (begin, retrying, finish, requeue); an entry
  leaves when its record leaves the state, or expires (``Listings.prune_dead``).
* ``backfill:states``: how far the one-off backfill of those indexes has got (a SCAN cursor over
  the records; ``done`` once finished), so that records written before the indexes existed are
  listed too (``worker.store.backfill``): run once per Redis.
* ``cursor:<integration>:<store>`` hash: parameters (polling cursors) returned by handlers;
  ``polled`` hash: when each store's cursor last moved.
* ``kept:<integration>:<store>:<kind>`` and under it: what handlers keep (what was sent, what was
  confirmed), many names per hash, in buckets of time that expire whole
  (``worker.store.memory``, ``lua/keep.lua``); ``memory:<integration>:<store>:<kind>:<name>``:
  the earlier format, one key per name, still read until the last of them expires;
  ``parts:<integration>:<message_id>``: the parts of an answer stored ahead of its end.
* ``recent`` zset: the latest messages received; ``done:<integration>:<message_id>``: the
  channel a message's end is published on.
* ``number:<number>`` zset: the messages that named this shipment (or order) number when they
  were received (member ``<integration>:<message_id>``, scored by when), for the operations
  page's search (``number_key``, ``searched_number``): written by the accept script with the
  record, at most ``NUMBER_KEPT`` newest, expiring ``NUMBER_TTL_MARGIN_SECONDS`` after the
  record TTL from its last write (a message may stay unfinished that long), then with the
  record: the record names it (``RecordField.NUMBERED``) and whatever sets the record's expiry
  once it has finished (its answer stored without a push, its delivery done or dead) sets the
  index's too, so nothing of it outlives the messages it lists.
* ``pace:bucket:<name>`` hash (fields ``BucketField``), ``pace:booked:<name>`` hash (a run of a
  message -> when its call may go) / ``pace:slots:<name>`` zset: a provider's rate limit
  (``worker.store.pacing``); ``pace:running:<integration>`` / ``pace:waiting:<integration>``
  zsets: an integration's concurrency limit (``<NAME>_MAX_CONCURRENCY``).
* ``<integration>:...``: what a provider keeps through ``Job`` (``worker.store.provider_state``;
  an integration's name is never one of the first segments above):
  ``<integration>:<name>:<run>``, a count or a value (JSON: how far a poll got) kept about one
  run of a message (``count_key``);
  ``<integration>:queue:<queue>`` list, a batch queue, with ``<integration>:leader:<queue>``, its
  leader's lock; ``<integration>:state:<run>``, where a run's entry is (JSON, ``BatchState``);
  ``<integration>:delivered:<name>``, which run delivered something.
* ``replicated``: the mark a replica confirmation waits on (``worker.store.replication``).
* ``lock:watchdog``: the scheduler's sweep lock; ``ops:form:<token>`` / ``ops:notice:<name>``:
  the operator page's used forms and notices.
* ``minute:<epoch minute>`` hash: messages finished in that minute, field
  ``<integration>:<outcome>`` (succeeded, failed, dead) -> count, counted in the transaction
  that stores the outcome; each hash expires ``MINUTES_KEPT`` minutes after its minute
  (``worker.store.per_minute``: the operations page's chart).
* ``moving:<integration>`` zsets (``moving:``: every integration): the shipments whose last
  canonical status is one of ``MOVING_STATUSES`` (in transit, out for delivery), member
  ``<integration>:<store>:<number>``, scored by the time of their last news; with
  ``shipment:<integration>:<store>:<number>`` hashes (``ShipmentField``): that last news. Written
  with the answer that carries a ``shipment:update``; any other status takes the shipment out.
  A hash expires, and an entry is pruned, ``MOVING_KEPT_SECONDS`` after its news
  (``worker.store.moving``: shipments that stopped moving).
* ``metrics:<name>`` hashes: declared with the metrics (``worker.basics.metrics``, below the
  store): ``METRICS_PREFIX``.

Every state change a handler makes after it begins (retrying, finishing, dead, cursor, memory) is
one Lua script or MULTI/EXEC transaction that first checks the handler still holds its lease: a
stale holder's write is refused, never applied.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

from worker.basics import metrics
from worker.hub.status import ShipmentStatus

PREFIX = "shiphub:"

# -- keys ----------------------------------------------------------------------------------------
RECORD_PREFIX = PREFIX + "msg:"
WATCH = PREFIX + "watch"
DUE = PREFIX + "due"
OUTBOX = PREFIX + "outbox"
PUSH_CLAIMS = PREFIX + "push-claims"  # the sequence of push claim numbers
DEAD_MESSAGES = PREFIX + "dead:messages"
DEAD_DELIVERIES = PREFIX + "dead:deliveries"
STATE_PREFIX = PREFIX + "state:"
STATES_BACKFILLED = PREFIX + "backfill:states"
# The latest messages received (member -> received_at), for operators; capped at RECENT_KEPT.
RECENT = PREFIX + "recent"
RECENT_KEPT = 1000
# The messages that named a shipment or order number (``number_key``): the newest kept, and how
# much longer than a record the index lives after its last write.
NUMBER_PREFIX = PREFIX + "number:"
NUMBER_KEPT = 100
NUMBER_TTL_MARGIN_SECONDS = 24 * 3600
# Numbers longer than this are not indexed (nor searched for).
NUMBER_LONGEST = 100
# When each store's cursor last moved ("<integration>:<store>" -> epoch seconds).
POLLED = PREFIX + "polled"
PACE_PREFIX = PREFIX + "pace:"
REPLICATED = PREFIX + "replicated"
SWEEP_LOCK = PREFIX + "lock:watchdog"
USED_FORMS = PREFIX + "ops:form:"
OPS_NOTICES = PREFIX + "ops:notice:"
DONE_PATTERN = PREFIX + "done:*"
METRICS_PREFIX = metrics.KEY_PREFIX
OUTBOX_READY = metrics.OUTBOX_READY


# The operations page's chart: one hash per minute of finished messages, kept a day (its
# longest window) and a minute more.
MINUTE_PREFIX = PREFIX + "minute:"
MINUTES_KEPT = 24 * 60
# Shipments on the move (``worker.store.moving``).
MOVING_PREFIX = PREFIX + "moving:"
SHIPMENT_PREFIX = PREFIX + "shipment:"
MOVING_STATUSES = frozenset({ShipmentStatus.IN_TRANSIT, ShipmentStatus.OUT_FOR_DELIVERY})
MOVING_KEPT_SECONDS = 90 * 24 * 3600  # a shipment with no news for 90 days is forgotten


def minute_key(minute: int) -> str:
    """Messages finished in ``minute`` (epoch seconds // 60), by integration and outcome."""
    return f"{MINUTE_PREFIX}{minute}"


def minute_field(integration: str, outcome: str) -> str:
    return f"{integration}:{outcome}"


def moving_key(integration: str = "") -> str:
    """The shipments on the move of ``integration`` ("": of every integration)."""
    return f"{MOVING_PREFIX}{integration}"


def shipment_key(integration: str, store: str, number: str) -> str:
    """A shipment's last news (``ShipmentField``), while it is on the move."""
    return f"{SHIPMENT_PREFIX}{integration}:{store}:{number}"


class ShipmentField(StrEnum):
    """A shipment's last news (``shipment_key``), from the ``shipment:update`` that told it."""

    INTEGRATION = "integration"
    STORE = "store"
    NUMBER = "number"
    STATUS = "status"  # canonical (``worker.hub.status``)
    PROVIDER_STATUS = "provider_status"
    CARRIER = "carrier"
    TRACKING = "tracking"
    NEWS_AT = "news_at"  # epoch seconds: the provider's time of the status, else when told
    MESSAGE_ID = "message_id"  # the message whose answer told it


def record_key(integration: str, message_id: str) -> str:
    return f"{RECORD_PREFIX}{integration}:{message_id}"


def member(integration: str, message_id: str) -> str:
    return f"{integration}:{message_id}"


def split_member(value: str) -> tuple[str, str]:
    integration, _, message_id = value.partition(":")
    return integration, message_id


def number_key(number: str) -> str:
    """The messages received naming this shipment or order number ("": none, not written)."""
    return f"{NUMBER_PREFIX}{number}"


def searched_number(payload: dict[str, Any]) -> str:
    """The number a message is searched by: its shipment's number, else its order's; "" when it
    names neither (a poll), or one too long to be a number."""
    for name in ("shipment", "order"):
        found = payload.get(name)
        if isinstance(found, dict):
            number = found.get("number")
            if isinstance(number, str | int) and not isinstance(number, bool):
                text = str(number).strip()
                return text if 0 < len(text) <= NUMBER_LONGEST else ""
    return ""


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


def once_key(integration: str, message_id: str, operation: str) -> str:
    return f"{PREFIX}once:{integration}:{message_id}:{operation}"


def lease_key(integration: str, message_id: str) -> str:
    return f"{PREFIX}lease:{integration}:{message_id}"


def service_lock_key(integration: str, service: str, store: str) -> str:
    return f"{PREFIX}lock:{integration}:{service}:{store}"


def cursor_key(integration: str, store: str) -> str:
    return f"{PREFIX}cursor:{integration}:{store}"


def parts_key(integration: str, message_id: str) -> str:
    """The parts of a message's answer stored ahead of its end (``Attempts.add_part``): a list,
    each element a JSON array of hub messages, pushed in order before the rest of the answer.
    It lives and expires with the record."""
    return f"{PREFIX}parts:{integration}:{message_id}"


def memory_key(integration: str, store: str, kind: str, name: str) -> str:
    """The earlier format of handler memory (one key per name): read, never written."""
    return f"{PREFIX}memory:{integration}:{store}:{kind}:{name}"


def kept_key(integration: str, store: str, kind: str) -> str:
    """Handler memory of one kind: this key lists its buckets; ``<it>:<bucket>`` is a bucket's
    meta hash and ``<it>:<bucket>:<level>:<shard>`` its hashes of names (``lua/keep.lua``)."""
    return f"{PREFIX}kept:{integration}:{store}:{kind}"


# Handler memory's layout (``worker.store.memory``): a retention is covered by this many
# buckets of time (an entry is kept for the retention and at most one bucket more); a hash holds
# about this many names (within Redis's default ``hash-max-listpack-entries``, 128), each level of
# a bucket this many times the shards of the one before.
KEPT_BUCKETS = 6
KEPT_PER_SHARD = 64
KEPT_GROWTH = 4


# What a handler keeps for later messages (``memory_key``): (kind, name, JSON-able value); also
# what it read and expects to be unchanged when its answer is stored (value None: absent).
Keep = tuple[str, str, Any]


def done_channel(integration: str, message_id: str) -> str:
    return f"{PREFIX}done:{integration}:{message_id}"


def bucket_key(name: str) -> str:
    return f"{PACE_PREFIX}bucket:{name}"


def bookings_key(name: str) -> str:
    """The calls booked in bucket ``name``: run of a message -> when it may go."""
    return f"{PACE_PREFIX}booked:{name}"


def running_key(integration: str) -> str:
    """The attempts of ``integration`` running now, under its concurrency limit (token ->
    when the slot expires)."""
    return f"{PACE_PREFIX}running:{integration}"


def waiting_key(integration: str) -> str:
    """The messages of ``integration`` that found no slot, by when they first asked (member ->
    epoch seconds): who comes back first."""
    return f"{PACE_PREFIX}waiting:{integration}"


def slots_key(name: str) -> str:
    return f"{PACE_PREFIX}slots:{name}"


class BucketField(StrEnum):
    """The fields of a pacing bucket's hash (``bucket_key``)."""

    LEVEL = "level"  # calls in the bucket, as of ``at``
    AT = "at"  # when the level was last computed (epoch seconds)
    HELD = "held"  # no call before this (the provider asked for a pause)


# -- what providers keep through ``Job`` (``worker.store.provider_state``) -----------------------
# Under ``shiphub:<integration>:<kind>:``; ``<run>`` is ``Job.run_key`` (the message_id, or
# ``<message_id> (replay n)``):
#
# * ``<integration>:<name>:<run>``: a count or a value kept about one run of a message, expiring
#   with the record (Spectrum: ``shiphub:spectrum:forbidden:<run>``; Duoplane's poll's progress:
#   ``shiphub:duoplane:poll-progress:<run>``).
# * ``<integration>:queue:<queue>`` list of entries (JSON, each with its run's ``message_id``)
#   and ``<integration>:leader:<queue>``, the leader's token (a lock with a TTL).
# * ``<integration>:state:<run>``: where a run's entry is (JSON: ``{"state": <BatchState>}``,
#   with the leader's token while sending, the outcome once done), with the batch's TTL.
# * ``<integration>:delivered:<name>``: which run delivered something (``<name>`` is the
#   provider's digest of an account and a delivery, never a credential), with the batch's TTL.
BATCH_KINDS = frozenset({"queue", "leader", "state", "delivered"})


def count_key(integration: str, name: str, run: str) -> str:
    if name in BATCH_KINDS:
        raise ValueError(f"{name!r} names batch state; a count needs another name")
    return f"{PREFIX}{integration}:{name}:{run}"


def batch_queue_key(integration: str, queue: str) -> str:
    return f"{PREFIX}{integration}:queue:{queue}"


def batch_leader_key(integration: str, queue: str) -> str:
    return f"{PREFIX}{integration}:leader:{queue}"


def batch_state_prefix(integration: str) -> str:
    return f"{PREFIX}{integration}:state:"


def batch_state_key(integration: str, run: str) -> str:
    return f"{batch_state_prefix(integration)}{run}"


def delivered_key(integration: str, name: str) -> str:
    return f"{PREFIX}{integration}:delivered:{name}"


class BatchState(StrEnum):
    """Where a run's entry on a batch queue is (``batch_state_key``'s ``state``)."""

    QUEUED = "queued"
    SENDING = "sending"  # taken by a leader (its token under ``leader``)
    DONE = "done"  # answered (its ``outcome``)


# A queued entry's state, as stored (compact JSON, as it always was).
BATCH_QUEUED = json.dumps({"state": BatchState.QUEUED}, separators=(",", ":"))
# The kind of a done entry's outcome (``outcome.kind``) that queues it again when asked.
BATCH_OUTCOME_RETRY = "retry"


class Enqueued(StrEnum):
    """What queueing a run's entry on a batch queue did: ``queued``; ``there`` (already queued,
    being sent or answered); ``stale`` (the writer no longer holds its lease: nothing written)."""

    QUEUED = "queued"
    THERE = "there"
    STALE = "stale"


# -- the record's fields, by who writes them -----------------------------------------------------
class RecordField(StrEnum):
    # intake: the message as received (``worker.pipeline.intake``, the accept script)
    INTEGRATION = "integration"
    MESSAGE_ID = "message_id"
    MESSAGE = "message"
    SERVICE = "service"
    STORE = "store"
    BODY = "body"
    PARAMETERS = "parameters"  # sealed; dropped once the message succeeded
    FINGERPRINT = "fingerprint"
    NUMBERED = "numbered"  # the number index it is listed in (``number_key``), if any
    RECEIVED_AT = "received_at"
    QUEUED_AT = "queued_at"  # stamped on every (re)publish
    UPDATED_AT = "updated_at"
    STATUS = "status"
    ATTEMPTS = "attempts"
    # attempts: begin, retrying, finish, requeue
    STARTED_AT = "started_at"
    RETRY_SINCE = "retry_since"
    NEXT_ATTEMPT_AT = "next_attempt_at"
    WOKEN_AT = "woken_at"  # woken while running (``wake``): its wait, if it waits, ends then
    LAST_ERROR = "last_error"
    EARLIER_ERROR = "earlier_error"
    ANSWER = "answer"
    FINISHED_AT = "finished_at"
    REPLAYS = "replays"
    # the outbox: an answer's delivery to the hub (set pending by finish, then the outbox scripts)
    DELIVERY = "delivery"
    DELIVERY_ID = "delivery_id"
    DELIVERY_PART = "delivery_part"
    DELIVERY_ATTEMPTS = "delivery_attempts"
    DELIVERY_TIMEOUTS = "delivery_timeouts"
    DELIVERY_ERROR = "delivery_error"
    DELIVERY_SINCE = "delivery_since"
    DELIVERED_AT = "delivered_at"
    NEXT_PUSH_AT = "next_push_at"
    PUSH_CLAIM = "push_claim"
    PUSH_CLAIMED_AT = "push_claimed_at"  # set while the claim's push task is sent, not yet taken
    PUSH_HOLDER = "push_holder"


F = RecordField
# What a run's outcome wrote (an attempt's and its delivery's): a replay (``Messages.requeue``)
# deletes all of it, so the next run starts from the message as received.
OUTCOME_FIELDS: tuple[RecordField, ...] = (
    F.LAST_ERROR,
    F.ANSWER,
    F.FINISHED_AT,
    F.NEXT_ATTEMPT_AT,
    F.RETRY_SINCE,
)
DELIVERY_FIELDS: tuple[RecordField, ...] = (
    F.DELIVERY,
    F.DELIVERY_ID,
    F.DELIVERY_PART,
    F.DELIVERY_ATTEMPTS,
    F.DELIVERY_TIMEOUTS,
    F.DELIVERY_ERROR,
    F.DELIVERY_SINCE,
    F.DELIVERED_AT,
    F.NEXT_PUSH_AT,
    F.PUSH_CLAIM,
    F.PUSH_CLAIMED_AT,
    F.PUSH_HOLDER,
)


# -- statuses ------------------------------------------------------------------------------------
class MessageStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


S = MessageStatus
FINISHED = frozenset({S.SUCCEEDED, S.FAILED, S.DEAD})
REPLAYABLE = frozenset({S.FAILED, S.DEAD})
# The states an operator lists messages by (``Listings.in_states``), each with its indexes.
LISTED_STATES: tuple[MessageStatus, ...] = (S.FAILED, S.DEAD, S.RETRYING)
# The same values as a Literal type, for the receiver's pydantic shapes (their JSON schema lists
# the statuses inline, as it always has).
Status = Literal[tuple(s.value for s in MessageStatus)]  # type: ignore[valid-type]


class DeliveryStatus(StrEnum):
    """An answer's delivery to the hub (``RecordField.DELIVERY``)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


# -- what the stores answer ----------------------------------------------------------------------
class Write(StrEnum):
    """What a fenced write did: applied; or refused because the message had already finished,
    the writer no longer holds its lease, or the record is gone; ``conflict``: something the
    handler read with ``Job.watch`` changed before its answer was stored."""

    WRITTEN = "written"
    FINISHED = "finished"
    STALE = "stale"
    MISSING = "missing"
    CONFLICT = "conflict"


class Arrived(StrEnum):
    """What recording a message found: ``created`` (recorded and queued in one step), or the
    message already recorded: ``exists`` (same content) or ``conflict`` (other content)."""

    CREATED = "created"
    EXISTS = "exists"
    CONFLICT = "conflict"


class Start(StrEnum):
    """What ``Attempts.begin`` found: ``started``, or why not: ``missing``, ``finished``,
    ``busy`` (another worker holds the lease) or ``early`` (a stray copy of a retry that is not
    due yet)."""

    STARTED = "started"
    MISSING = "missing"
    FINISHED = "finished"
    BUSY = "busy"
    EARLY = "early"


class PushFailed(StrEnum):
    """What recording a failed push did (``Outbox.failed``)."""

    RETRYING = "retrying"
    DEAD = "dead"
    STALE = "stale"


class OnceState(StrEnum):
    """A provider call's mark (``once:...``): in flight, or done with its result."""

    INFLIGHT = "inflight"
    DONE = "done"


# The one-off backfill's marker once it has finished.
BACKFILL_DONE = "done"
# A retry may begin this much before it is due (a copy of its task that arrives just early).
EARLY_START_SECONDS = 0.5
