"""Coalescing confirmations: the records of one account that arrive close together go out in
one ``submitTrackingInfo`` call, across every worker process, in Redis.

* Each handler puts its record (with its message_id) on the account's queue, unless it is
  already there or already answered (``enqueue``), then waits for its own outcome.
* One waiting handler is the leader (a ``SET NX`` lock with a short TTL, kept while it works):
  it gathers until no record has come for the window (records that arrive close together go
  together: a burst fills its batches), the batch is full, or the oldest record has waited
  ``max_wait_seconds``; then it takes up to the batch size off the queue (marking each record
  "sending" under its lock), makes the call, and writes each record's outcome under its
  message's key (with a TTL). It leads until its own outcome is written; then another waiting
  handler takes over. A batch holds at most as many records as there are handlers waiting
  (worker threads, across processes): keep ECOMDASH_BATCH_SIZE at or below that.
* Every handler polls its outcome key in short steps, within its deadline; one whose outcome
  does not come in time raises TransientError, and its retry reads the key first.
* A record marked "sending" by a leader that no longer holds its lock (the worker died during
  the call) is put back on the queue by its waiting handler, or by its retry: the call may have
  landed, so that record may reach ecomdash twice. This is the one case where a record is sent
  again; a record whose outcome was written is never sent again, nor is one that only sat on
  the queue when a worker died.
* The same delivery (``mapping.delivery_key``) from two messages is sent once: twice in one
  batch, its first message's record carries both; in a later batch the account's "delivered"
  mark (written when ecomdash took it) answers it without sending.

Outcomes are per record: ``WasSuccessful: false`` fails only that record's message; an error of
the whole call (401, 403: refused; 429, 5xx, a timeout: retry) is every record's outcome.
Keys: ``shiphub:ecomdash:{queue,leader}:<digest>``, ``shiphub:ecomdash:state:<message_id>`` (a
replay's ``<message_id> (replay n)``: it starts from scratch, not from what the run it replays
was answered), ``shiphub:ecomdash:delivered:<account digest>:<delivery digest>``; digests,
never keys in clear.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import redis
from pydantic import BaseModel, Field

from worker.basics import deadline
from worker.basics.errors import HardError, TransientError
from worker.integrations.ecomdash.mapping import SubmitAnswer, results_for
from worker.integrations.ecomdash.settings import PROVIDER

log = logging.getLogger(__name__)

PREFIX = "shiphub:ecomdash:"
STATE_PREFIX = PREFIX + "state:"
POLL_SECONDS = 0.1
LOCK_MARGIN_SECONDS = 5.0

_ENQUEUE = """
local raw = redis.call('GET', KEYS[1])
if raw then
  local st = cjson.decode(raw)
  if st.state ~= 'done' or st.outcome.kind ~= 'retry' then return raw end
end
redis.call('SET', KEYS[1], '{"state":"queued"}', 'EX', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return false
"""
# Take up to ARGV[1] records still queued; mark each "sending" under the leader's token.
_POP = """
local out = {}
while #out < tonumber(ARGV[1]) do
  local entry = redis.call('LPOP', KEYS[1])
  if not entry then break end
  local key = ARGV[4] .. cjson.decode(entry).message_id
  local raw = redis.call('GET', key)
  local st = raw and cjson.decode(raw) or nil
  if st == nil or st.state == 'queued' then
    redis.call('SET', key, cjson.encode({state = 'sending', leader = ARGV[2]}), 'EX', ARGV[3])
    table.insert(out, entry)
  end
end
return out
"""
# Put a record back when the leader that took it no longer holds the lock (it died).
_REQUEUE_LOST = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local st = cjson.decode(raw)
if st.state ~= 'sending' then return 0 end
if redis.call('GET', KEYS[3]) == st.leader then return 0 end
redis.call('SET', KEYS[1], '{"state":"queued"}', 'EX', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def digest(*parts: str) -> str:
    """A name for keys, from secrets: never the secret in clear."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


class Outcome(BaseModel):
    """What became of one message's record."""

    kind: Literal["sent", "refused", "retry"]
    subject: str
    reasons: list[str] = Field(default_factory=list)
    retry_after: float | None = None
    sent_by: str | None = None  # another message's record carried this delivery
    messages: list[str] = Field(default_factory=list)  # ecomdash's top-level messages
    batch: int = 1  # records in the call

    def raise_unless_sent(self) -> Outcome:
        if self.kind == "refused":
            raise HardError(self.subject, self.reasons)
        if self.kind == "retry":
            raise TransientError(self.subject, self.reasons, retry_after=self.retry_after)
        return self


@dataclass(frozen=True)
class Entry:
    message_id: str  # the run's name (``Job.run_key``): a replay's outcome is its own
    record: dict[str, Any]
    key: str  # mapping.delivery_key
    queued_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Entry:
        return cls(**json.loads(raw))


# ---------------------------------------------------------------------------------------------
# Pure: a batch's answer -> each message's outcome


def refused_subject(record: dict[str, Any]) -> str:
    return f"ecomdash refused the tracking for ShipmentId {record['ShipmentId']}"


def split(entries: Sequence[Entry], answer: SubmitAnswer) -> dict[str, Outcome]:
    """Each sent entry's outcome from ecomdash's per-record results (``WasSuccessful`` checked
    for each, whatever the HTTP status): a refused record fails its own message only."""
    size = len(entries)
    top = [m for m in answer.messages or [] if m]
    outcomes: dict[str, Outcome] = {}
    for entry, result in zip(
        entries, results_for([e.record for e in entries], answer), strict=True
    ):
        if result is None:
            outcomes[entry.message_id] = Outcome(
                kind="retry",
                subject=f"ecomdash gave no result for ShipmentId {entry.record['ShipmentId']}",
                reasons=[f"{len(answer.data)} results for {len(entries)} records", *top],
                batch=size,
            )
        elif result.WasSuccessful:
            outcomes[entry.message_id] = Outcome(
                kind="sent", subject="Tracking sent to ecomdash", messages=top, batch=size
            )
        else:
            outcomes[entry.message_id] = Outcome(
                kind="refused",
                subject=refused_subject(entry.record),
                reasons=[m for m in result.Messages or [] if m]
                or ["ecomdash answered WasSuccessful: false without a message"],
                batch=size,
            )
    return outcomes


def failed_all(entries: Sequence[Entry], error: Exception) -> dict[str, Outcome]:
    """The whole call failed: the same outcome for every record of the batch."""
    if isinstance(error, HardError):
        kind: Literal["refused", "retry"] = "refused"
        retry_after = None
    else:
        kind, retry_after = "retry", getattr(error, "retry_after", None)
    subject = getattr(error, "subject", f"{PROVIDER} call failed")
    reasons = list(getattr(error, "reasons", None) or [f"{type(error).__name__}: {error}"])
    return {
        e.message_id: Outcome(
            kind=kind, subject=subject, reasons=reasons, retry_after=retry_after, batch=len(entries)
        )
        for e in entries
    }


def unique(entries: Sequence[Entry]) -> tuple[list[Entry], dict[str, str]]:
    """One entry per message and per delivery key; the others carried by the first."""
    seen_messages: set[str] = set()
    first_of: dict[str, str] = {}
    sent: list[Entry] = []
    carried: dict[str, str] = {}
    for entry in entries:
        if entry.message_id in seen_messages:
            continue
        seen_messages.add(entry.message_id)
        if entry.key in first_of:
            carried[entry.message_id] = first_of[entry.key]
        else:
            first_of[entry.key] = entry.message_id
            sent.append(entry)
    return sent, carried


# ---------------------------------------------------------------------------------------------
# The queue in Redis


def _left() -> float:
    running = deadline.current()
    return running.left() if running is not None else float("inf")


@dataclass
class Batcher:
    client: redis.Redis
    queue_name: str  # digest of the URL and both keys: one queue per set of credentials
    account: str  # digest of the ecd key: the account's deliveries
    window_seconds: float  # a batch goes once no record came for this long ...
    max_wait_seconds: float  # ... or its oldest record waited this long, or it is full
    batch_size: int
    result_ttl_seconds: int
    call_seconds: float  # how long one call may take (connect + read timeouts)
    send: Callable[[list[dict[str, Any]]], SubmitAnswer]

    @property
    def queue_key(self) -> str:
        return f"{PREFIX}queue:{self.queue_name}"

    @property
    def lock_key(self) -> str:
        return f"{PREFIX}leader:{self.queue_name}"

    def delivered_key(self, key: str) -> str:
        return f"{PREFIX}delivered:{self.account}:{digest(key)}"

    # -- every handler ------------------------------------------------------------------
    def submit(self, entry: Entry) -> Outcome:
        """Queue ``entry`` (unless it is queued or answered) and wait for its outcome, leading
        the batch when nobody does."""
        self._enqueue(entry)
        while True:
            state, led, queued = self._look(entry.message_id)
            if state is None:  # expired: queue it again
                self._enqueue(entry)
            elif state["state"] == "done":
                return Outcome.model_validate(state["outcome"])
            elif state["state"] == "sending" and not led and self._requeue_if_lost(entry):
                log.warning(
                    "ecomdash: %s was being sent by a leader that is gone; queued again "
                    "(it may reach ecomdash twice)",
                    entry.message_id,
                )
            if not led and queued and _left() > self._lead_budget():
                token = uuid.uuid4().hex
                if self._take_lock(token):
                    self._lead(token, entry.message_id)
                    continue
            self._pause()

    def _look(self, message_id: str) -> tuple[dict[str, Any] | None, bool, int]:
        """In one round trip: this message's state, whether a leader holds the lock, and how
        many records are queued."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(STATE_PREFIX + message_id)
        pipe.exists(self.lock_key)
        pipe.llen(self.queue_key)
        raw, led, queued = pipe.execute()
        return (json.loads(raw) if raw else None), bool(led), int(queued)

    def _enqueue(self, entry: Entry) -> None:
        self.client.eval(
            _ENQUEUE,
            2,
            STATE_PREFIX + entry.message_id,
            self.queue_key,
            entry.to_json(),
            self.result_ttl_seconds,
        )

    def _state(self, message_id: str) -> dict[str, Any] | None:
        raw = self.client.get(STATE_PREFIX + message_id)
        return json.loads(raw) if raw else None

    def _requeue_if_lost(self, entry: Entry) -> bool:
        return bool(
            self.client.eval(
                _REQUEUE_LOST,
                3,
                STATE_PREFIX + entry.message_id,
                self.queue_key,
                self.lock_key,
                entry.to_json(),
                self.result_ttl_seconds,
            )
        )

    def _lead_budget(self) -> float:
        return self.max_wait_seconds + self.call_seconds + 1.0

    def _pause(self) -> None:
        if _left() < POLL_SECONDS + 0.5:
            raise TransientError(
                f"No answer yet from the {PROVIDER} batch this confirmation is in",
                ["its outcome is read first thing on the next attempt"],
                retry_after=1.0,
            )
        time.sleep(POLL_SECONDS)

    # -- the leader -----------------------------------------------------------------------
    def _take_lock(self, token: str) -> bool:
        ttl_ms = int((self._lead_budget() + LOCK_MARGIN_SECONDS) * 1000)
        return bool(self.client.set(self.lock_key, token, nx=True, px=ttl_ms))

    def _extend(self, token: str, seconds: float) -> bool:
        return bool(self.client.eval(_EXTEND, 1, self.lock_key, token, int(seconds * 1000)))

    def _lead(self, token: str, mine: str) -> None:
        """Send batches until this handler's own outcome is written (or the queue is empty,
        or its deadline leaves no room for another call)."""
        try:
            while self._gather(token):
                entries = self._pop(token)
                if entries:
                    self._send(entries, token)
                own = self._state(mine)
                if (own and own["state"] == "done") or _left() < self._lead_budget():
                    return
        finally:
            self.client.eval(_RELEASE, 1, self.lock_key, token)

    def _gather(self, token: str) -> bool:
        """Wait until the queue holds a full batch, or no record has come for the window, or
        the oldest has waited ``max_wait_seconds``; False when the queue is empty."""
        while True:
            pipe = self.client.pipeline(transaction=False)
            pipe.lindex(self.queue_key, 0)
            pipe.lindex(self.queue_key, -1)
            pipe.llen(self.queue_key)
            first, last, queued = pipe.execute()
            if first is None or last is None:
                return False
            now = time.time()
            quiet = now - Entry.from_json(last).queued_at
            waited = now - Entry.from_json(first).queued_at
            if (
                queued >= self.batch_size
                or quiet >= self.window_seconds
                or waited >= self.max_wait_seconds
            ):
                return True
            self._extend(token, self._lead_budget() + LOCK_MARGIN_SECONDS)
            time.sleep(max(0.0, min(self.window_seconds - quiet, POLL_SECONDS)))

    def _pop(self, token: str) -> list[Entry]:
        raw = self.client.eval(
            _POP,
            1,
            self.queue_key,
            self.batch_size,
            token,
            self.result_ttl_seconds,
            STATE_PREFIX,
        )
        return [Entry.from_json(e) for e in raw or []]

    def _send(self, entries: list[Entry], token: str) -> None:
        sending, carried = unique(entries)
        already = self._already_delivered(sending)
        sending = [e for e in sending if e.message_id not in already]
        outcomes = dict(already)
        if not self._extend(token, self.call_seconds + LOCK_MARGIN_SECONDS):
            self._put_back(entries)  # another leader has them now
            return
        if sending:
            try:
                answer = self.send([e.record for e in sending])
            except (HardError, TransientError) as exc:
                outcomes.update(failed_all(sending, exc))
            except BaseException as exc:
                outcomes.update(failed_all(sending, exc))
                self._write({**outcomes, **_carried(outcomes, carried)}, sending)
                raise
            else:
                outcomes.update(split(sending, answer))
        outcomes.update(_carried(outcomes, carried))
        self._write(outcomes, sending)
        log.info(
            "ecomdash: one call for %d records (%d carried, %d already delivered)",
            len(sending),
            len(carried),
            len(already),
        )

    def _already_delivered(self, entries: list[Entry]) -> dict[str, Outcome]:
        if not entries:
            return {}
        marks = self.client.mget([self.delivered_key(e.key) for e in entries])
        return {
            e.message_id: Outcome(
                kind="sent",
                subject="Tracking already delivered to ecomdash",
                sent_by=mark,
                batch=0,
            )
            for e, mark in zip(entries, marks, strict=True)
            if mark and mark != e.message_id
        }

    def _write(self, outcomes: dict[str, Outcome], sent: list[Entry]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for message_id, outcome in outcomes.items():
            state = {"state": "done", "outcome": outcome.model_dump(mode="json")}
            pipe.set(STATE_PREFIX + message_id, json.dumps(state), ex=self.result_ttl_seconds)
        for entry in sent:
            outcome = outcomes.get(entry.message_id)
            if outcome is not None and outcome.kind == "sent" and outcome.sent_by is None:
                pipe.set(
                    self.delivered_key(entry.key), entry.message_id, ex=self.result_ttl_seconds
                )
        pipe.execute()

    def _put_back(self, entries: list[Entry]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for entry in reversed(entries):  # back at the head, in their order
            pipe.set(
                STATE_PREFIX + entry.message_id, '{"state":"queued"}', ex=self.result_ttl_seconds
            )
            pipe.lpush(self.queue_key, entry.to_json())
        pipe.execute()


def _carried(outcomes: dict[str, Outcome], carried: dict[str, str]) -> dict[str, Outcome]:
    """A carried message gets its carrier's outcome, naming the message that delivered it."""
    return {
        message_id: outcomes[carrier].model_copy(
            update={"sent_by": outcomes[carrier].sent_by or carrier}
        )
        for message_id, carrier in carried.items()
        if carrier in outcomes
    }
