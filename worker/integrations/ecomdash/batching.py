"""Coalescing confirmations: the records of one account that arrive close together go out in
one ``submitTrackingInfo`` call, across every worker process, in Redis.

* Each handler puts its record (with its message_id) on the account's queue, unless it is
  already there or already answered (``enqueue``), and ends its attempt (``WaitUntil``): the
  message comes back when the batch is due, holding no thread meanwhile. A batch is due when it
  is full, when no record has come for the window (records that arrive close together go
  together: a burst fills its batches), or when its oldest record has waited
  ``max_wait_seconds``. So a batch holds up to ECOMDASH_BATCH_SIZE records whatever the number
  of worker threads.
* The attempt that finds the batch due and nobody leading it leads (a ``SET NX`` lock with a
  short TTL, kept while it works): room in the account's pace first (``room``; a long wait is
  booked and ends its attempt, nothing taken), then it takes up to the batch size off the queue
  (marking each record "sending" under its lock), makes the call, and writes each record's
  outcome under its message's key (with a TTL), stamped with the attempt that queued it; then
  the next batch if it is due too.
* A waiting message, back, reads its outcome and answers; an outcome to retry (a 5xx, a 429)
  fails that attempt, and the next attempt queues the record again.
* A record marked "sending" by a leader that no longer holds its lock (the worker died during
  the call) is put back on the queue when its message comes back: the call may have
  landed, so that record may reach ecomdash twice. This is the one case where a record is sent
  again; a record whose outcome was written is never sent again, nor is one that only sat on
  the queue when a worker died.
* The same delivery (``mapping.delivery_key``) from two messages is sent once: twice in one
  batch, its first message's record carries both; in a later batch the account's "delivered"
  mark (written when ecomdash took it) answers it without sending.

Outcomes are per record: ``WasSuccessful: false`` fails only that record's message; an error of
the whole call (401, 403: refused; 429, 5xx, a timeout: retry) is every record's outcome.
The queue is the store's (``Job.batch``, ``worker.store.provider_state``: which writes are
fenced by the message's lease; its keys are declared in ``worker.store.schema``):
``shiphub:ecomdash:{queue,leader}:<digest>``,
``shiphub:ecomdash:state:<message_id>`` (a replay's ``<message_id> (replay n)``: it starts from
scratch, not from what the run it replays was answered),
``shiphub:ecomdash:delivered:<account digest>:<delivery digest>``; digests, never keys in clear.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from worker.basics import deadline
from worker.basics.errors import HardError, TransientError, WaitUntil
from worker.integrations.ecomdash.mapping import SubmitAnswer, results_for
from worker.integrations.ecomdash.settings import PROVIDER

log = logging.getLogger(__name__)

LOCK_MARGIN_SECONDS = 5.0
BACK_SOON_SECONDS = 0.3  # a message whose batch is being sent looks again after this
LEAD_BATCHES = 10  # batches one leader sends before it lets another lead


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
    attempt: int = 0  # the attempt whose record it answers: a retry is that attempt's

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
    attempt: int = 0  # the message's attempt that queued it (``Job.attempt``)
    message: str = ""  # the message to wake once its outcome is written ("": none to wake)

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
# The queue, across worker processes (in Redis, through ``Job.batch``)


class Queue(Protocol):
    """The batch queue as one message's handler sees it (``Job.batch``: the store's
    ``BatchQueue``). ``run`` is an entry's ``message_id``; entries are ``Entry.to_json``."""

    def enqueue(self, run: str, entry: str) -> None: ...
    def requeue_if_lost(self, run: str, entry: str) -> bool: ...
    def look(self, run: str) -> tuple[dict[str, Any] | None, bool, int]: ...
    def state(self, run: str) -> dict[str, Any] | None: ...
    def ends(self) -> tuple[str | None, str | None, int]: ...
    def delivered(self, names: Sequence[str]) -> list[str | None]: ...
    def take_lead(self, token: str, ttl_ms: int) -> bool: ...
    def keep_lead(self, token: str, ttl_ms: int) -> bool: ...
    def release_lead(self, token: str) -> None: ...
    def take(self, token: str, size: int) -> list[str]: ...
    def write(self, outcomes: Mapping[str, Any], delivered: Mapping[str, str]) -> None: ...
    def put_back(self, entries: Sequence[tuple[str, str]]) -> None: ...
    def wake(self, messages: Sequence[str], at: float) -> None: ...


def _left() -> float:
    running = deadline.current()
    return running.left() if running is not None else float("inf")


def _no_room_needed() -> None:
    return None


@dataclass
class Batcher:
    queue: Queue  # one per set of credentials (named by a digest of the URL and both keys)
    account: str  # digest of the ecd key: the account's deliveries
    window_seconds: float  # a batch goes once no record came for this long ...
    max_wait_seconds: float  # ... or its oldest record waited this long, or it is full
    batch_size: int
    call_seconds: float  # how long one call may take (connect + read timeouts)
    send: Callable[[list[dict[str, Any]]], SubmitAnswer]
    # Room for one call in the account's pace, taken before a batch leaves the queue: it may
    # raise ``WaitUntil`` (the leader's message comes back when the call may go).
    room: Callable[[], None] = _no_room_needed

    def delivered_name(self, key: str) -> str:
        """The name of the account's "delivered" mark for delivery ``key``."""
        return f"{self.account}:{digest(key)}"

    # -- every handler ------------------------------------------------------------------
    def submit(self, entry: Entry) -> Outcome:
        """One look, never a wait: this run's outcome if it has one (one written for an earlier
        attempt to retry excepted: that record is queued again); else its record is queued
        (unless it is), the batch sent if it is due and nobody leads it, and ``WaitUntil``
        when the batch will be due (or its leader done)."""
        run = entry.message_id
        state = self.queue.state(run)
        if state is None or _to_retry_before(state, entry.attempt):
            self.queue.enqueue(run, entry.to_json())
            state = self.queue.state(run)
        if state is not None and state["state"] == "done":
            return Outcome.model_validate(state["outcome"])
        state, led, _queued = self.queue.look(run)
        if (
            state is not None
            and state["state"] == "sending"
            and not led
            and self.queue.requeue_if_lost(run, entry.to_json())
        ):
            log.warning(
                "ecomdash: %s was being sent by a leader that is gone; queued again "
                "(it may reach ecomdash twice)",
                run,
            )
        due = self._due_at()
        if not led and due <= time.time() and _left() > self._lead_budget():
            token = uuid.uuid4().hex
            if self._take_lock(token):
                self._lead(token)
                own = self.queue.state(run)
                if own is not None and own["state"] == "done":
                    return Outcome.model_validate(own["outcome"])
                due = self._due_at()
        raise WaitUntil(self._back_at(due, led, self._first(run)), f"its {PROVIDER} batch")

    def _back_at(self, due: float, led: bool, first: bool) -> float:
        """When a waiting message looks again unless it is woken sooner: the batch's leader
        wakes each message of the batch once their outcomes are written, and the message first
        on the queue when its batch is due (``_lead``). So the first message looks again when
        its batch is due (at the latest after the longest wait), every message soon when its
        batch is due and nobody leads it, and the others only once a leader's lock would have
        run out after that (by then a leader woke them, or died: their records are queued
        again when they look)."""
        now = time.time()
        soon = now + BACK_SOON_SECONDS
        when_due = min(max(due, soon), now + self.max_wait_seconds + BACK_SOON_SECONDS)
        if not led and due <= now:
            return soon
        if not led and first:
            return when_due
        return when_due + self._lead_budget() + LOCK_MARGIN_SECONDS

    def _first(self, run: str) -> bool:
        """Whether ``run``'s record is first on the queue."""
        first, _last, _queued = self.queue.ends()
        return first is not None and Entry.from_json(first).message_id == run

    def _due_at(self) -> float:
        """When the queued batch is due: now when it is full; else once no record has come for
        the window, or its oldest has waited ``max_wait_seconds`` (inf: nothing queued)."""
        first, last, queued = self.queue.ends()
        if first is None or last is None:
            return float("inf")
        if queued >= self.batch_size:
            return time.time()
        return min(
            Entry.from_json(last).queued_at + self.window_seconds,
            Entry.from_json(first).queued_at + self.max_wait_seconds,
        )

    def _lead_budget(self) -> float:
        return self.call_seconds + 1.0

    # -- the leader -----------------------------------------------------------------------
    def _take_lock(self, token: str) -> bool:
        ttl_ms = int((self._lead_budget() + LOCK_MARGIN_SECONDS) * 1000)
        return self.queue.take_lead(token, ttl_ms)

    def _extend(self, token: str, seconds: float) -> bool:
        return self.queue.keep_lead(token, int(seconds * 1000))

    def _lead(self, token: str) -> None:
        """Send the batches that are due (at most ``LEAD_BATCHES``, within the deadline), each
        after room for its call in the account's pace (``WaitUntil`` ends the lead: nothing is
        taken off the queue without room to send it). Then the message first on what is left of
        the queue is woken for when its batch is due: it leads the next batch, its records'
        messages waiting to be woken by their leader."""
        not_before = 0.0
        try:
            for _ in range(LEAD_BATCHES):
                if self._due_at() > time.time() or _left() < self._lead_budget():
                    return
                try:
                    self.room()
                except WaitUntil as booked:
                    not_before = booked.at
                    raise
                entries = [Entry.from_json(e) for e in self.queue.take(token, self.batch_size)]
                if not entries:
                    return
                self._send(entries, token)
        finally:
            self.queue.release_lead(token)
            self._wake_next(not_before)

    def _wake_next(self, not_before: float) -> None:
        first, _last, _queued = self.queue.ends()
        if first is None:
            return
        head = Entry.from_json(first)
        if head.message:
            self.queue.wake([head.message], max(self._due_at(), not_before, time.time()))

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
                self._write(_stamped({**outcomes, **_carried(outcomes, carried)}, entries), sending)
                raise
            else:
                outcomes.update(split(sending, answer))
        outcomes.update(_carried(outcomes, carried))
        self._write(_stamped(outcomes, entries), sending)
        self.queue.wake([e.message for e in entries if e.message], time.time())
        log.info(
            "ecomdash: one call for %d records (%d carried, %d already delivered)",
            len(sending),
            len(carried),
            len(already),
        )

    def _already_delivered(self, entries: list[Entry]) -> dict[str, Outcome]:
        if not entries:
            return {}
        marks = self.queue.delivered([self.delivered_name(e.key) for e in entries])
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
        delivered = {}
        for entry in sent:
            outcome = outcomes.get(entry.message_id)
            if outcome is not None and outcome.kind == "sent" and outcome.sent_by is None:
                delivered[self.delivered_name(entry.key)] = entry.message_id
        self.queue.write(
            {run: outcome.model_dump(mode="json") for run, outcome in outcomes.items()}, delivered
        )

    def _put_back(self, entries: list[Entry]) -> None:
        self.queue.put_back([(e.message_id, e.to_json()) for e in entries])


def _stamped(outcomes: dict[str, Outcome], entries: Sequence[Entry]) -> dict[str, Outcome]:
    """Each outcome with the attempt that queued its record."""
    attempts = {e.message_id: e.attempt for e in entries}
    return {
        run: outcome.model_copy(update={"attempt": attempts.get(run, 0)})
        for run, outcome in outcomes.items()
    }


def _to_retry_before(state: Mapping[str, Any], attempt: int) -> bool:
    """An outcome to retry written for an earlier attempt: this attempt queues the record again."""
    if state.get("state") != "done":
        return False
    outcome = state.get("outcome") or {}
    return outcome.get("kind") == "retry" and int(outcome.get("attempt", 0)) < attempt


def _carried(outcomes: dict[str, Outcome], carried: dict[str, str]) -> dict[str, Outcome]:
    """A carried message gets its carrier's outcome, naming the message that delivered it."""
    return {
        message_id: outcomes[carrier].model_copy(
            update={"sent_by": outcomes[carrier].sent_by or carrier}
        )
        for message_id, carrier in carried.items()
        if carrier in outcomes
    }
