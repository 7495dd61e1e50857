"""What a handler receives: the validated message, its parameters, and a guard for side effects;
and the port through which it keeps anything beyond its provider (what it keeps per shipment,
pacing, counts of this run, batch state): no provider touches Redis or the store itself."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from worker.basics.errors import HardError, MissingParameter, TransientError, WaitUntil
from worker.basics.settings import settings
from worker.hub.messages import Answer
from worker.store import provider_state
from worker.store.bundle import Store
from worker.store.pacing import Bucket, Slots
from worker.store.provider_state import BatchQueue, Fence
from worker.store.schema import EARLY_START_SECONDS, Keep, OnceState, count_key, lease_key

P = TypeVar("P", bound=BaseModel)
TOO_MANY_REQUESTS = 429
T = TypeVar("T")


@dataclass(frozen=True)
class LookFirst(Generic[T]):
    """How ``Job.once`` settles an earlier attempt whose outcome is unknown (its worker died
    during the call, the call timed out, its answer was lost): wait until that call can no
    longer land at the provider, ``lands_within`` seconds after it was sent, then ``find`` what
    it made. ``find`` answers as the call would have, or None when the provider has nothing,
    and only then is the call made again."""

    lands_within: float
    find: Callable[[], T | None]


def _until_landed(sent_at: float, look: LookFirst[Any]) -> float:
    """How long a retry must wait before it looks for a call sent at ``sent_at``: until the call
    can no longer land, plus the head start a retry may take (``EARLY_START_SECONDS``), so that
    it never looks too soon; 0 once it can no longer land (a millisecond's clock noise aside)."""
    left = sent_at + look.lands_within - time.time()
    return left + EARLY_START_SECONDS if left > 0.001 else 0.0


class EarlierAttemptUnsettled(TransientError):
    """An earlier attempt's call may still land: this attempt ends, and the next one is
    scheduled for when it no longer can (no thread waits for it)."""

    def __init__(self, operation: str, sent_at: float, wait: float) -> None:
        sent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent_at))
        super().__init__(
            f"An earlier attempt's {operation} may still land",
            [
                f"it was sent at {sent} and its outcome is unknown; it is looked up "
                f"{wait:.0f} s from now, once it can no longer land, before anything is sent again"
            ],
            not_before=wait,
        )


class Pace(Protocol):
    """A provider's rate limit for one account, shared by every worker process (``Job.pace``)."""

    def take(self, provider: str) -> float:
        """Wait for room for one call (a TransientError past the deadline); the seconds waited."""
        ...

    def hold(self, seconds: float) -> None:
        """The provider asked for a pause: no call from any worker for ``seconds``."""
        ...

    def describe(self) -> str: ...


class InFlight(Protocol):
    """At most so many calls at once for one account, across worker processes
    (``Job.in_flight``)."""

    def held(self, provider: str) -> AbstractContextManager[None]: ...


@dataclass
class Job(Generic[P]):
    integration: str
    message_id: str
    message: str
    payload: P
    parameters: Mapping[str, Any]
    store: str
    attempt: int
    db: Store
    # Which run of the message this is: 0 the first, n after its n-th replay. A replay starts
    # from scratch: what an earlier run was answered is not reused (``once``, ``run_key``).
    run: int = 0
    _earlier_sends: Any = field(default=None, init=False, repr=False)
    _sends_operation: str = field(default="", init=False, repr=False)
    # Stores messages ahead of the answer's end, with what was kept about them (the handling
    # sets it; without it ``send_ahead`` keeps everything for the end).
    part_store: Callable[[list[Any], list[Keep]], None] | None = None
    kept: list[Keep] = field(default_factory=list, init=False, repr=False)
    watched: list[Keep] = field(default_factory=list, init=False, repr=False)
    # The token this run holds the message's lease with (the handling sets it): what the run
    # writes about itself (``count_up``, its entry in a ``batch``) is fenced by it.
    lease_token: str = field(default="", repr=False)

    def param(self, name: str) -> Any:
        """A required parameter; a missing one is a hard error naming it."""
        value = self.parameters.get(name)
        if value in (None, ""):
            raise MissingParameter(name)
        return value

    def answer(self) -> Answer:
        return Answer(message_id=self.message_id)

    @property
    def idempotency_key(self) -> str:
        """The key a provider that takes one gets with a create: the same for every run of the
        message, replays included, so that such a provider never creates it twice."""
        return f"{self.integration}:{self.message_id}"

    @property
    def run_key(self) -> str:
        """This run's name, for what an integration keeps about one run of a message (a batch
        outcome, a count of refusals): the message_id, then ``<message_id> (replay n)``."""
        return self.message_id if self.run == 0 else f"{self.message_id} (replay {self.run})"

    def once(
        self,
        operation: str,
        call: Callable[[str], T],
        *,
        sends: Mapping[str, Any] | None = None,
        look: LookFirst[T] | None = None,
    ) -> T:
        """Run a provider call with a side effect at most once once it has completed.

        ``call`` gets an idempotency key (``<integration>:<message_id>:<operation>``) to hand to
        the provider where its API takes one. Its JSON-able result is stored as soon as it returns;
        a redelivered task gets the stored result instead of calling again.

        A call that was in flight when its attempt ended (the worker died, it timed out, its
        answer was lost) may or may not have landed. With ``look``, the next attempt waits
        (scheduled, not slept) until it can no longer land, then looks it up at the provider, and
        calls again only if it is not there. Without ``look``, the call is made again at once:
        the provider's own key (an order number it refuses twice, an idempotency key) must make
        that repeat harmless (``already_there`` tells a repeat that met its own earlier call from
        anything else).
        ``sends`` is what the call creates at the provider (JSON-able): kept with the in-flight
        mark, it lets ``already_there`` recognise this message's own earlier attempt.

        A replay (``run``) starts from scratch: an earlier run's result is not its answer. An
        earlier run's mark is what an unknown outcome is: its call may have landed (a completed
        one did). So the replay looks first (``look``), and only calls when the provider holds
        nothing; without ``look`` it calls again, the provider's own key making a repeat
        harmless as above (``idempotency_key`` is the same for every run).
        """
        if sends is not None:
            self._sends_operation = operation
        state = self.db.once.state(self.integration, self.message_id, operation)
        ours = state is not None and state.get("run", 0) == self.run
        if ours and state["state"] == OnceState.DONE:
            return state["result"]
        earlier = state if state and (state["state"] == OnceState.INFLIGHT or not ours) else None
        self._earlier_sends = earlier.get("sends") if earlier else None
        if earlier is not None and look is not None:
            found = self._look_for(operation, earlier, look)
            if found is not None:
                self._mark_done(operation, found, sends)
                return found
        self.db.once.inflight(
            self.integration, self.message_id, operation, self.attempt, sends=sends, run=self.run
        )
        sent_at = time.time()
        try:
            result = call(f"{self.idempotency_key}:{operation}")
        except WaitUntil:
            # Not sent: the call waits for its pace (an earlier attempt's mark, if any, stays).
            if earlier is None:
                self._clear(operation)
            raise
        except HardError:
            # The provider refused: nothing happened, nothing to guard. (After a transient error
            # the call may have landed, so the in-flight mark stays for the next attempt.)
            self._clear(operation)
            raise
        except TransientError as exc:
            if exc.status == TOO_MANY_REQUESTS:  # refused before it was looked at: not made
                self._clear(operation)
            elif look is not None:  # the next attempt looks, once the call can no longer land
                exc.not_before = max(exc.not_before or 0.0, _until_landed(sent_at, look))
            raise
        self._mark_done(operation, result, sends)
        return result

    def done(self, operation: str) -> Any:
        """The result ``once(operation)`` already has in this run (an earlier attempt completed
        it, then ended: a wait for the pace after the call), None if it has none."""
        state = self.db.once.state(self.integration, self.message_id, operation)
        if state is None or state.get("run", 0) != self.run or state["state"] != OnceState.DONE:
            return None
        return state["result"]

    def _mark_done(self, operation: str, result: Any, sends: Mapping[str, Any] | None) -> None:
        self.db.once.done(
            self.integration, self.message_id, operation, result, run=self.run, sends=sends
        )

    def _clear(self, operation: str) -> None:
        self.db.once.clear(self.integration, self.message_id, operation, self.attempt, run=self.run)

    @staticmethod
    def _look_for(operation: str, earlier: Mapping[str, Any], look: LookFirst[T]) -> T | None:
        """What an earlier attempt's call made, once it can no longer land (None: nothing). An
        earlier run's completed call has landed: it is looked for at once."""
        if earlier.get("state") == OnceState.DONE:
            return look.find()
        sent_at = float(earlier.get("since") or 0.0)
        wait = _until_landed(sent_at, look)
        if wait > 0:
            raise EarlierAttemptUnsettled(operation, sent_at, wait)
        return look.find()

    def sent_before(
        self, kind: str, key: str, sends: Mapping[str, Any], refusal: str, operation: str = ""
    ) -> str | None:
        """Whether another message sent ``key`` (kept under ``kind`` with ``keep_sent``): with
        the same content, "already sent by message ..."; with other content, a HardError
        (subject ``refusal``) saying what differs; None when no other message did. Asked before
        creating, it spares the provider a repeat whose answer nobody documents. ``operation``:
        the ``once`` that sent it, whose mark (while the other message's record lives) holds
        the whole content, so that the refusal can quote what was sent (else it names the
        parts that differ, with what this message carries)."""
        (kept,) = self.recall(kind, key)
        sent = Sent.read(kept)
        if sent is None or sent.message_id == self.message_id:
            return None
        changed = self._differences(sent, sends, operation or self._sends_operation)
        if not changed:
            return f"already sent by message {sent.message_id}"
        raise HardError(
            refusal,
            [f"{key} already exists: message {sent.message_id} sent it with {'; '.join(changed)}"],
        )

    def _differences(self, sent: Sent, sends: Mapping[str, Any], operation: str) -> list[str]:
        if sent.sends is not None:  # kept whole (the earlier format)
            return differences(sent.sends, sends)
        if sent.digest[:WHOLE] == digest(sends):
            return []
        mark = (
            self.db.once.state(self.integration, sent.message_id, operation) if operation else None
        )
        earlier = mark.get("sends") if mark else None
        if isinstance(earlier, Mapping) and digest(earlier) == sent.digest[:WHOLE]:
            return differences(earlier, sends)
        return digest_differences(sent.digest, sends)

    def already_there(self, kind: str, key: str, sends: Mapping[str, Any], refusal: str) -> str:
        """The provider holds ``key`` (it answered that an order number already exists, or a
        look found it). That is success only when what it holds is what this message sends
        now, and says how it got there:

        * another message sent ``key`` with the same content (``sent_before``);
        * else this message's own earlier attempt, in flight when it failed, sent it.

        Anything else is a HardError (subject ``refusal``) saying what differs from what was
        sent before, or that this endpoint has no record of sending ``key``: an earlier attempt
        that failed may never have landed, so its mark alone cannot vouch for what is there.
        """
        how = self.sent_before(kind, key, sends, refusal)
        if how is not None:
            return how
        if self._earlier_sends is not None and not differences(self._earlier_sends, sends):
            return "sent by an earlier attempt of this message"
        raise HardError(
            refusal, [f"{key} already exists, and this endpoint has no record of sending it"]
        )

    def keep_sent(self, kind: str, key: str, sends: Mapping[str, Any], about: Any = None) -> None:
        """Keep that this message created ``key`` with ``sends``, for ``sent_before`` and
        ``already_there``: its id and digests of the content (``Sent``), not the content, and
        ``about`` (JSON-able, kept as it is: keep it short), read back with ``sent_about``."""
        value: list[Any] = [self.message_id, digests(sends)]
        self.keep(kind, key, [*value, about] if about is not None else value)

    @staticmethod
    def sent_about(kept: Any) -> Any:
        """What ``keep_sent`` kept ``about`` a creation (None when nothing; the earlier
        format's: its other fields, as a mapping)."""
        sent = Sent.read(kept)
        return sent.about if sent is not None else None

    @property
    def mark(self) -> str:
        """A short digest of this message's id, for what only needs to tell "this message"
        from "another" later (an entry an earlier attempt of this poll kept): 8 characters."""
        return _b64(hashlib.blake2b(self.message_id.encode(), digest_size=6).digest())

    def marked_by_this_message(self, kept: Any) -> bool:
        """Whether ``kept`` is this message's ``mark`` (or, in the earlier format, a mapping
        naming this message's id)."""
        if isinstance(kept, Mapping):
            return kept.get("message_id") == self.message_id
        return kept == self.mark

    def keep(self, kind: str, name: str, value: Any) -> None:
        """Keep a value for later messages (what was sent, what was confirmed). It is written
        with the answer, in the same transaction, and only if the message succeeds: a failed
        poll leaves no trace that would hide its results from the next one."""
        self.kept.append((kind, name, value))

    def send_ahead(self, answer: Answer) -> None:
        """Store the messages the answer holds so far as parts of it, with what the handler
        kept about them, now (one transaction), and forget them: a poll that reads a hundred
        thousand shipments answers in batches instead of holding one huge answer. The parts
        are pushed before the rest of the answer, whatever becomes of this attempt; a later
        attempt finds their kept values, so nothing is sent twice. Not for a handler that
        ``watch``es: what it read is checked only when the answer ends."""
        if self.part_store is None or not answer.messages:
            return
        if self.watched:
            raise RuntimeError("send_ahead is not for a handler that watches what it read")
        self.part_store([m.model_dump(mode="json") for m in answer.messages], list(self.kept))
        answer.messages.clear()
        self.kept.clear()

    def recall(self, kind: str, *names: str) -> list[Any]:
        """Values kept by earlier messages of this integration and store (None where absent)."""
        return self.db.memory.recall(self.integration, self.store, kind, list(names))

    def recall_found(self, kind: str, names: Sequence[str], batch: int = 1000) -> dict[str, Any]:
        """``recall`` for many names, in round trips of ``batch``: the values found, by name
        (absent ones left out)."""
        found: dict[str, Any] = {}
        for first in range(0, len(names), batch):
            some = names[first : first + batch]
            found.update(
                (name, value)
                for name, value in zip(some, self.recall(kind, *some), strict=True)
                if value is not None
            )
        return found

    def watch(self, kind: str, *names: str) -> list[Any]:
        """``recall``, for a decision that must not be made twice: if another message changes
        any of these values before this answer is stored (a webhook and a poll reporting the
        same shipment at once), this answer is thrown away and the handler runs again on the
        new values. Only the first read of a name counts."""
        values = self.recall(kind, *names)
        seen = {(k, n) for k, n, _ in self.watched}
        self.watched += [
            (kind, name, value)
            for name, value in zip(names, values, strict=True)
            if (kind, name) not in seen
        ]
        return values

    # -- the port: what a handler keeps beyond its provider --------------------------------------
    # Pacing is the account's, shared by every message: not fenced. A count, a progress and a
    # batch entry are this run's: fenced by the message's lease (``provider_state.LeaseLost``,
    # a TransientError, when it is gone: the write is refused and the attempt ends).

    def pace(self, name: str, *, capacity: float, per_second: float, booked: bool = True) -> Pace:
        """The leaky bucket ``name`` of this integration (an account's digest, never a
        credential): ``capacity`` calls at once, draining ``per_second``. ``booked``: a wait
        longer than ``PACE_SLEEP_MAX_SECONDS`` is not slept: ``take`` books the moment this
        run's call may go and raises ``WaitUntil`` (the attempt ends, the message comes back
        then, not counted as a failed attempt); without it, ``take`` sleeps."""
        return Bucket(
            self.db.redis,
            f"{self.integration}:{name}",
            capacity,
            per_second,
            holder=self.run_key if booked else "",
            sleep_max_seconds=settings().pace_sleep_max_seconds,
        )

    def in_flight(self, name: str, limit: int) -> InFlight:
        """At most ``limit`` calls at once under ``name`` (of this integration)."""
        return Slots(self.db.redis, f"{self.integration}:{name}", limit)

    def count_up(self, name: str) -> int:
        """One more in this run's count ``name`` (a replay counts afresh); it expires with the
        record. Fenced by the lease."""
        return provider_state.count_up(
            self.db.redis,
            self._fence(),
            count_key(self.integration, name, self.run_key),
            self.db.timing.record_ttl_seconds,
        )

    def clear_count(self, name: str) -> None:
        """Forget this run's count ``name``. Fenced by the lease: a holder that lost it changes
        nothing (its own outcome is refused as well)."""
        provider_state.clear_count(
            self.db.redis,
            self._fence(),
            count_key(self.integration, name, self.run_key),
        )

    def progress(self, name: str) -> Any:
        """What this run kept with ``keep_progress`` (an earlier attempt's, e.g. the page a
        poll that waited for its pace stopped at), None if nothing."""
        return provider_state.read_value(
            self.db.redis, count_key(self.integration, name, self.run_key)
        )

    def keep_progress(self, name: str, value: Any) -> None:
        """Keep ``value`` (JSON) for this run's next attempt (a replay starts afresh); it expires
        with the record. Fenced by the lease. For a handler whose attempt ends before its work
        does (``WaitUntil``) and that resumes where it stopped."""
        provider_state.keep_value(
            self.db.redis,
            self._fence(),
            count_key(self.integration, name, self.run_key),
            value,
            self.db.timing.record_ttl_seconds,
        )

    def batch(self, name: str, *, ttl_seconds: int) -> BatchQueue:
        """The batch queue ``name`` of this integration (a digest, never a credential), as this
        run's handler sees it: its own entry fenced by the lease, a leader's writes not."""
        return BatchQueue(self.db.redis, self.integration, name, ttl_seconds, self._fence())

    def _fence(self) -> Fence:
        return Fence(lease_key(self.integration, self.message_id), self.lease_token)


def differences(before: Any, now: Any, limit: int = 8) -> list[str]:
    """What changed between two contents, field by field ("shipping.address1 '2 Main St.' (this
    message: '7 Elm Rd.')"), at most ``limit`` of them."""
    old, new = _flat(before), _flat(now)
    changed = [
        f"{path} {old.get(path)!r} (this message: {new.get(path)!r})"
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path)
    ]
    if len(changed) > limit:
        changed = [*changed[:limit], f"and {len(changed) - limit} more"]
    return changed


def _flat(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return {path: value}
    flat: dict[str, Any] = {}
    for name, inner in items:
        flat |= _flat(inner, f"{path}.{name}" if path else str(name))
    return flat


# -- what is kept of a creation: digests, not the content ------------------------------------------
WHOLE = 11  # the whole content's digest: 64 bits, in base64 (decides "same or not")
PART = 2  # each top-level part's: 12 bits (names which parts differ; a clash only hides a name)


@dataclass(frozen=True)
class Sent:
    """What ``keep_sent`` kept: ``[message_id, digests, about?]``; or, in the earlier format, a
    mapping with the whole content (``sends``), read until it expires."""

    message_id: str
    digest: str = ""
    sends: Mapping[str, Any] | None = None
    about: Any = None

    @classmethod
    def read(cls, kept: Any) -> Sent | None:
        if isinstance(kept, list) and len(kept) >= 2 and isinstance(kept[0], str):
            return cls(kept[0], str(kept[1]), about=kept[2] if len(kept) > 2 else None)
        if isinstance(kept, Mapping) and "sends" in kept and "message_id" in kept:
            about = {k: v for k, v in kept.items() if k not in ("sends", "message_id")}
            return cls(str(kept["message_id"]), sends=kept["sends"], about=about)
        return None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def digest(sends: Any) -> str:
    """The whole content's digest (``WHOLE`` characters)."""
    return _b64(hashlib.blake2b(_canonical(sends), digest_size=8).digest())


def _part_digest(name: str, value: Any) -> str:
    raw = hashlib.blake2b(_canonical([name, value]), digest_size=3).digest()
    return _b64(raw)[:PART]


def digests(sends: Mapping[str, Any]) -> str:
    """The whole content's digest, then one per top-level part (``PART`` characters each)."""
    parts = sends.items() if isinstance(sends, Mapping) else ()
    return digest(sends) + "".join(_part_digest(str(k), v) for k, v in sorted(parts))


def digest_differences(kept: str, now: Mapping[str, Any], limit: int = 8) -> list[str]:
    """What differs between content kept as ``digests`` and ``now``, as far as digests can
    tell: each top-level part of ``now`` whose digest was not kept, with what this message
    carries there (the value sent before is not kept)."""
    before = {kept[i : i + PART] for i in range(WHOLE, len(kept), PART)}
    parts = now.items() if isinstance(now, Mapping) else ()
    changed = [
        f"other {name} (this message: {_brief(value)})"
        for name, value in sorted(parts)
        if _part_digest(str(name), value) not in before
    ]
    if not changed:
        return ["other content (the parts that differ cannot be told from what is kept)"]
    if len(changed) > limit:
        changed = [*changed[:limit], f"and {len(changed) - limit} more"]
    return changed


def _brief(value: Any, limit: int = 300) -> str:
    flat = _flat(value)
    text = (
        ", ".join(f"{path} {leaf!r}" if path else repr(leaf) for path, leaf in flat.items())
        if isinstance(value, Mapping | list | tuple)
        else repr(value)
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."
