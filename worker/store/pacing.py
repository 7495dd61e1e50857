"""Pacing calls to a provider that limits them, across every worker process: a leaky bucket and
a concurrency limit per account, kept in Redis.

* ``Bucket``: at most ``capacity`` calls at once in the bucket, draining ``per_second`` (Duoplane:
  40, 2/s; ecomdash: 120 a minute; Spectrum: about 100 a minute). ``take`` waits for room (never
  past the handler's deadline: then it is a TransientError, retried later); ``hold`` empties no
  room for a while when the provider says so (``Retry-After``, ``Duoplane-Retry-After-Seconds``).
* ``Slots``: at most ``limit`` calls in flight (ecomdash: 3 per account and operation); a slot
  left by a killed worker expires.

Waiting happens in the calling thread (the worker's thread pool is for I/O-bound work), in short
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
from worker.basics.errors import TransientError
from worker.store.schema import BucketField, bucket_key, slots_key
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

    @property
    def key(self) -> str:
        return bucket_key(self.name)

    def take(self, provider: str) -> float:
        """Wait for room for one call; the seconds waited."""
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
