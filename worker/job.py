"""What a handler receives: the validated message, its parameters, and a guard for side effects."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from worker.errors import HardError, MissingParameter
from worker.hub import Answer
from worker.records import Keep, Records

P = TypeVar("P", bound=BaseModel)
T = TypeVar("T")


@dataclass
class Job(Generic[P]):
    integration: str
    message_id: str
    message: str
    payload: P
    parameters: Mapping[str, Any]
    store: str
    attempt: int
    records: Records
    _earlier_sends: Any = field(default=None, init=False, repr=False)
    # Stores messages ahead of the answer's end, with what was kept about them (the handling
    # sets it; without it ``send_ahead`` keeps everything for the end).
    part_store: Callable[[list[Any], list[Keep]], None] | None = None
    kept: list[Keep] = field(default_factory=list, init=False, repr=False)
    watched: list[Keep] = field(default_factory=list, init=False, repr=False)

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
        return f"{self.integration}:{self.message_id}"

    def once(
        self, operation: str, call: Callable[[str], T], *, sends: Mapping[str, Any] | None = None
    ) -> T:
        """Run a provider call with a side effect at most once once it has completed.

        ``call`` gets an idempotency key (``<integration>:<message_id>:<operation>``) to hand to
        the provider where its API takes one. Its JSON-able result is stored as soon as it returns;
        a redelivered task gets the stored result instead of calling again. A call that was in
        flight when the worker died is made again (there is no way to know whether it landed):
        the provider's own key (the order number, the idempotency key) must make that repeat
        harmless (``already_there`` tells a repeat that met its own earlier call from anything
        else).
        ``sends`` is what the call creates at the provider (JSON-able): kept with the in-flight
        mark, it lets ``already_there`` recognise this message's own earlier attempt.
        """
        state = self.records.once_state(self.integration, self.message_id, operation)
        if state and state["state"] == "done":
            return state["result"]
        self._earlier_sends = state.get("sends") if state and state["state"] == "inflight" else None
        self.records.once_inflight(
            self.integration, self.message_id, operation, self.attempt, sends=sends
        )
        try:
            result = call(f"{self.idempotency_key}:{operation}")
        except HardError:
            # The provider refused: nothing happened, nothing to guard. (After a transient error
            # the call may have landed, so the in-flight mark stays for the next attempt.)
            self.records.once_clear(self.integration, self.message_id, operation, self.attempt)
            raise
        self.records.once_done(self.integration, self.message_id, operation, result)
        return result

    def already_there(self, kind: str, key: str, sends: Mapping[str, Any], refusal: str) -> str:
        """The provider answered that ``key`` (an order number) already exists. That is success
        only when what it holds is what this message sends now, and says how it got there:

        * another message sent ``key`` (kept under ``kind`` with ``keep_sent``) with the same
          content: "already sent by message ...";
        * else this message's own earlier attempt, in flight when it failed, sent it.

        Anything else is a HardError (subject ``refusal``) saying what differs from what was
        sent before, or that this endpoint has no record of sending ``key``: an earlier attempt
        that failed may never have landed, so its mark alone cannot vouch for what is there.
        """
        (kept,) = self.recall(kind, key)
        if (
            isinstance(kept, Mapping)
            and "sends" in kept
            and kept.get("message_id") != self.message_id
        ):
            changed = differences(kept["sends"], sends)
            if not changed:
                return f"already sent by message {kept['message_id']}"
            raise HardError(
                refusal,
                [
                    f"{key} already exists: message {kept['message_id']} sent it with "
                    f"{'; '.join(changed)}"
                ],
            )
        if self._earlier_sends is not None and not differences(self._earlier_sends, sends):
            return "sent by an earlier attempt of this message"
        raise HardError(
            refusal, [f"{key} already exists, and this endpoint has no record of sending it"]
        )

    def keep_sent(self, kind: str, key: str, sends: Mapping[str, Any], **about: Any) -> None:
        """Keep what was created under ``key`` for ``already_there`` (and ``about`` it)."""
        self.keep(kind, key, {**about, "message_id": self.message_id, "sends": dict(sends)})

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
        return self.records.recall(self.integration, self.store, kind, list(names))

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
