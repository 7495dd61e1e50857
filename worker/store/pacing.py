"""Pacing calls to a provider that limits them, across every worker process: a leaky bucket and
a concurrency limit per account, kept in Redis.

* ``Bucket``: at most ``capacity`` calls at once in the bucket, draining ``per_second`` (Duoplane:
  40, 2/s; ecomdash: 120 a minute; Spectrum: about 100 a minute). ``take`` waits for room (never
  past the handler's deadline: then it is a TransientError, retried later); ``hold`` empties no
  room for a while when the provider says so (``Retry-After``, ``Duoplane-Retry-After-Seconds``).
* ``Slots``: at most ``limit`` calls in flight (ecomdash: 3 per account and operation); a slot
  left by a killed worker expires.

A bucket taken for one run of a message (``holder``) holds no thread through a long wait: a wait
of at most ``sleep_max_seconds`` is slept; a longer one books the moment the call may go
(``pace:booked:<name>``) and raises ``WaitUntil``: the attempt ends, the message comes back then
and takes its booked room. Without a holder, waiting happens in the calling thread, in short
sleeps, so a handler's deadline still ends it.

A bucket and its slots belong to an account (every message of it, every worker process), not to
one message: their writes are not fenced by a message's lease (a handler that has lost its lease
still takes its turn, and a pause a provider asked for holds for everyone). Handlers get them
from ``Job.pace`` and ``Job.in_flight``, named per integration.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from worker.basics import deadline
from worker.basics.errors import TransientError, WaitUntil
from worker.store.schema import (
    BucketField,
    bookings_key,
    bucket_key,
    running_key,
    slots_key,
    waiting_key,
)
from worker.store.scripts import scripts

STEP_SECONDS = 0.05


class TooLong(TransientError):
    """The provider's limit leaves no room before the handler's deadline: try again later."""


@dataclass
class Bucket:
    client: redis.Redis
    name: str  # e.g. "duoplane:<api key digest>"
    capacity: float
    per_second: float
    holder: str = ""  # the run of a message taking room (Job.pace): a long wait is booked
    sleep_max_seconds: float = 1.0  # with a holder: the longest wait slept through

    @property
    def key(self) -> str:
        return bucket_key(self.name)

    def take(self, provider: str) -> float:
        """Wait for room for one call; the seconds waited. With a holder, a wait longer than
        ``sleep_max_seconds`` is booked instead: ``WaitUntil`` the booked moment."""
        if self.holder:
            return self._book(provider)
        waited = 0.0
        while True:
            wait = float(
                scripts(self.client).bucket(
                    bucket=self.key,
                    now=time.time(),
                    capacity=self.capacity,
                    per_second=self.per_second,
                )
            )
            if wait <= 0:
                return waited
            _sleep(min(wait, 1.0), provider, f"its rate limit ({self.describe()})")
            waited += min(wait, 1.0)

    def _book(self, provider: str) -> float:
        now = time.time()
        wait = float(
            scripts(self.client).book(
                bucket=self.key,
                bookings=bookings_key(self.name),
                now=now,
                capacity=self.capacity,
                per_second=self.per_second,
                holder=self.holder,
                sleep_max=self.sleep_max_seconds,
            )
        )
        if wait > self.sleep_max_seconds:
            raise WaitUntil(now + wait, f"{provider}'s rate limit ({self.describe()})")
        if wait > 0:
            _sleep(wait, provider, f"its rate limit ({self.describe()})")
        return wait

    def hold(self, seconds: float) -> None:
        """The provider asked for a pause: no call from any worker for ``seconds``."""
        until = time.time() + max(0.0, seconds)
        current = float(self.client.hget(self.key, BucketField.HELD) or 0)
        if until > current:
            self.client.hset(self.key, BucketField.HELD, repr(until))
            self.client.expire(self.key, int(seconds) + 120)

    def describe(self) -> str:
        return f"{self.capacity:g} calls, draining {self.per_second:g}/s"


@dataclass
class Slots:
    client: redis.Redis
    name: str
    limit: int
    ttl_seconds: float = 120.0  # a slot a killed worker held frees itself after this

    @property
    def key(self) -> str:
        return slots_key(self.name)

    @contextlib.contextmanager
    def held(self, provider: str) -> Iterator[None]:
        token = uuid.uuid4().hex
        while not scripts(self.client).slot(
            slots=self.key,
            now=time.time(),
            limit=self.limit,
            token=token,
            expires_at=time.time() + self.ttl_seconds,
        ):
            _sleep(STEP_SECONDS * 2, provider, f"{self.limit} calls at once")
        try:
            yield
        finally:
            self.client.zrem(self.key, token)


@dataclass
class Share:
    """An integration's concurrency limit (``<NAME>_MAX_CONCURRENCY``) across every worker
    process: at most ``limit`` attempts running at once. One that finds no slot is told when to
    come back (sooner the earlier it first asked), and holds no thread meanwhile."""

    client: redis.Redis
    integration: str
    limit: int
    ttl_seconds: float  # a slot a killed worker held frees itself after this
    step_seconds: float = 0.25  # one place in line per limit's worth of messages

    def take(self, token: str, member: str) -> float | None:
        """Take a slot for ``token``: None when taken, else the seconds to come back after."""
        now = time.time()
        place = scripts(self.client).run_slot(
            running=running_key(self.integration),
            waiting=waiting_key(self.integration),
            now=now,
            limit=self.limit,
            token=token,
            expires_at=now + self.ttl_seconds,
            member=member,
        )
        if place < 0:
            return None
        return min(5.0, self.step_seconds * (1 + place // self.limit))

    def release(self, token: str) -> None:
        self.client.zrem(running_key(self.integration), token)


def _sleep(seconds: float, provider: str, limit: str) -> None:
    running = deadline.current()
    left = running.check() if running is not None else None
    if left is not None and left < seconds + 0.5:
        raise TooLong(
            f"{provider}'s limit leaves no room now",
            [f"waiting for {limit} would pass this attempt's deadline; retried later"],
            retry_after=seconds,
        )
    time.sleep(seconds)
