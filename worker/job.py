"""What a handler receives: the validated message, its parameters, and a guard for side effects."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    _repeat: bool = field(default=False, init=False, repr=False)
    kept: list[Keep] = field(default_factory=list, init=False, repr=False)

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

    def once(self, operation: str, call: Callable[[str], T]) -> T:
        """Run a provider call with a side effect at most once once it has completed.

        ``call`` gets an idempotency key (``<integration>:<message_id>:<operation>``) to hand to
        the provider where its API takes one. Its JSON-able result is stored as soon as it returns;
        a redelivered task gets the stored result instead of calling again. A call that was in
        flight when the worker died is made again (there is no way to know whether it landed):
        the provider's own key (the order number, the idempotency key) must make that repeat
        harmless, and ``repeat_of_inflight`` tells the handler it may meet its own earlier call.
        """
        state = self.records.once_state(self.integration, self.message_id, operation)
        if state and state["state"] == "done":
            return state["result"]
        self._repeat = bool(state and state["state"] == "inflight")
        self.records.once_inflight(self.integration, self.message_id, operation, self.attempt)
        try:
            result = call(f"{self.idempotency_key}:{operation}")
        except HardError:
            # The provider refused: nothing happened, nothing to guard. (After a transient error
            # the call may have landed, so the in-flight mark stays for the next attempt.)
            self.records.once_clear(self.integration, self.message_id, operation, self.attempt)
            raise
        self.records.once_done(self.integration, self.message_id, operation, result)
        return result

    def keep(self, kind: str, name: str, value: Any) -> None:
        """Keep a value for later messages (what was sent, what was confirmed). It is written
        with the answer, in the same transaction, and only if the message succeeds: a failed
        poll leaves no trace that would hide its results from the next one."""
        self.kept.append((kind, name, value))

    def recall(self, kind: str, *names: str) -> list[Any]:
        """Values kept by earlier messages of this integration and store (None where absent)."""
        return self.records.recall(self.integration, self.store, kind, list(names))

    @property
    def repeat_of_inflight(self) -> bool:
        """True inside ``once`` when an earlier attempt died during this same call."""
        return self._repeat
