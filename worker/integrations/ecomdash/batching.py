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
from worker.basics.errors import HardError, TransientError
from worker.integrations.ecomdash.mapping import SubmitAnswer, results_for
from worker.integrations.ecomdash.settings import PROVIDER

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
LOCK_MARGIN_SECONDS = 5.0


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


def _left() -> float:
    running = deadline.current()
    return running.left() if running is not None else float("inf")


@dataclass
class Batcher:
    queue: Queue  # one per set of credentials (named by a digest of the URL and both keys)
    account: str  # digest of the ecd key: the account's deliveries
    window_seconds: float  # a batch goes once no record came for this long ...
    max_wait_seconds: float  # ... or its oldest record waited this long, or it is full
    batch_size: int
    call_seconds: float  # how long one call may take (connect + read timeouts)
    send: Callable[[list[dict[str, Any]]], SubmitAnswer]

    def delivered_name(self, key: str) -> str:
        """The name of the account's "delivered" mark for delivery ``key``."""
        return f"{self.account}:{digest(key)}"

    # -- every handler ------------------------------------------------------------------
    def submit(self, entry: Entry) -> Outcome:
        """Queue ``entry`` (unless it is queued or answered) and wait for its outcome, leading
        the batch when nobody does."""
        self.queue.enqueue(entry.message_id, entry.to_json())
        while True:
            state, led, queued = self.queue.look(entry.message_id)
            if state is None:  # expired: queue it again
                self.queue.enqueue(entry.message_id, entry.to_json())
            elif state["state"] == "done":
                return Outcome.model_validate(state["outcome"])
            elif (
                state["state"] == "sending"
                and not led
                and self.queue.requeue_if_lost(entry.message_id, entry.to_json())
            ):
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
        return self.queue.take_lead(token, ttl_ms)

    def _extend(self, token: str, seconds: float) -> bool:
        return self.queue.keep_lead(token, int(seconds * 1000))

    def _lead(self, token: str, mine: str) -> None:
        """Send batches until this handler's own outcome is written (or the queue is empty,
        or its deadline leaves no room for another call)."""
        try:
            while self._gather(token):
                entries = [Entry.from_json(e) for e in self.queue.take(token, self.batch_size)]
                if entries:
                    self._send(entries, token)
                own = self.queue.state(mine)
                if (own and own["state"] == "done") or _left() < self._lead_budget():
                    return
        finally:
            self.queue.release_lead(token)

    def _gather(self, token: str) -> bool:
        """Wait until the queue holds a full batch, or no record has come for the window, or
        the oldest has waited ``max_wait_seconds``; False when the queue is empty."""
        while True:
            first, last, queued = self.queue.ends()
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


def _carried(outcomes: dict[str, Outcome], carried: dict[str, str]) -> dict[str, Outcome]:
    """A carried message gets its carrier's outcome, naming the message that delivered it."""
    return {
        message_id: outcomes[carrier].model_copy(
            update={"sent_by": outcomes[carrier].sent_by or carrier}
        )
        for message_id, carrier in carried.items()
        if carrier in outcomes
    }
