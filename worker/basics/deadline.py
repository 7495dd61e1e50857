"""A handler attempt's deadline, enforced where a thread-pool worker can enforce it: at every
provider I/O step.

Celery's thread pool cannot interrupt a running task (``task_time_limit`` is not applied there),
so the deadline lives in a context variable that ``worker.integrations.http`` reads: a call that
starts after the deadline is not made, each call's connect and read timeouts are what is left of
it, and a body is read with the socket's timeout shortened to what is left before every read, so
an answer that drips in ends at the deadline too. Code that computes without calling a provider
is not interrupted; its writes are fenced by the lease it no longer renews
(``worker.store.leases``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from worker.basics.errors import TransientError

_current: ContextVar[Deadline | None] = ContextVar("shiphub_deadline", default=None)


class DeadlineExceeded(TransientError):
    """The attempt ran out of time (or lost its lease); the message is retried."""

    def __init__(self, seconds: float, reason: str = "") -> None:
        detail = reason or f"the attempt's deadline of {seconds:g} s (TASK_TIME_LIMIT_SECONDS)"
        super().__init__("The handler ran out of time", [f"It passed {detail}"])


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.cancelled: str | None = None

    def left(self) -> float:
        return self.ends - time.monotonic()

    def cancel(self, reason: str) -> None:
        """End the attempt early (its lease was lost): its next I/O step raises."""
        self.cancelled = reason

    def check(self) -> float:
        """Seconds left; raises DeadlineExceeded when none are."""
        if self.cancelled:
            raise DeadlineExceeded(self.seconds, self.cancelled)
        left = self.left()
        if left <= 0:
            raise DeadlineExceeded(self.seconds)
        return left

    @contextlib.contextmanager
    def running(self) -> Iterator[Deadline]:
        """Make this the deadline of the code in the block (this thread only)."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


def current() -> Deadline | None:
    return _current.get()


def bounded(timeout: tuple[float, float]) -> tuple[float, float]:
    """A (connect, read) timeout cut to what is left of the current deadline."""
    deadline = current()
    if deadline is None:
        return timeout
    left = deadline.check()
    return (min(timeout[0], left), min(timeout[1], left))
