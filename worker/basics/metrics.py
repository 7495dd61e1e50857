"""The numbers an operator pages on, kept in Redis so that every process adds to the same ones.

Workers, beat and the receiver are separate processes (perhaps on separate hosts), so no number
lives in a process's memory: whoever observes something writes it to Redis, and the receiver's
``GET /metrics`` (``endpoint.metrics``) reads it all back and renders it for Prometheus.

Storage: one hash per metric, ``shiphub:metrics:<name>``; a field is the JSON array of the
series' label values (``["dotcom","send_shipment","succeeded"]``), so any label value is safe.
A counter is one HINCRBY. A histogram observation is three: its bucket (the smallest upper bound
that holds it, ``+Inf`` beyond the last; cumulated when read), ``sum`` (HINCRBYFLOAT) and
``count``; their fields are the label values followed by the part (``[...,"0.5"]``,
``[...,"sum"]``, ``[...,"count"]``).

Writes ride on a round trip the writer makes anyway: the accept script counts ``accepted``,
``Attempts.finish``'s transaction counts the outcome together with what the attempt observed (its
handler's time, its provider calls: gathered in a ``Tally`` while it runs), the outbox scripts
count deliveries. A retry's numbers go in one pipelined write of their own.

``OUTBOX_READY`` is the one piece of state kept only for metrics: when each answer in the outbox
became ready to push (the outbox itself is scored by the next push), for the age of the oldest.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import json
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis
from prometheus_client.utils import floatToGoString

KEY_PREFIX = "shiphub:metrics:"
# Answers waiting to be pushed (member -> when the answer became ready): the outbox's own score
# is its next push, which a failing hub keeps moving forward.
OUTBOX_READY = KEY_PREFIX + "outbox_ready"
# The label value of a series whose writer did not say (a record without its service).
UNKNOWN = "unknown"


class MessageOutcome(StrEnum):
    """What became of a message (``shiphub_messages``' outcome label)."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REPUBLISHED = "republished"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


class RetryReason(StrEnum):
    """Why a retry was scheduled (``shiphub_retries``' reason label)."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    PROVIDER_5XX = "provider_5xx"
    RATE_LIMITED = "rate_limited"
    PROVIDER_TRANSIENT = "provider_transient"
    DEADLINE = "deadline"
    REDIS = "redis"
    CONFLICT = "conflict"
    UNEXPECTED = "unexpected"


class DeliveryOutcome(StrEnum):
    """What became of a push to the hub (``shiphub_deliveries``' outcome label)."""

    DELIVERED = "delivered"
    RETRYING = "retrying"
    DEAD = "dead"


class CallOutcome(StrEnum):
    """How a provider call ended (``shiphub_provider_call_duration_seconds``' outcome label)."""

    OK = "ok"
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"


# Each closed set of label values, in order: every series is listed (at 0) from the first scrape.
MESSAGE_OUTCOMES: tuple[MessageOutcome, ...] = tuple(MessageOutcome)
RETRY_REASONS: tuple[RetryReason, ...] = tuple(RetryReason)
DELIVERY_OUTCOMES: tuple[DeliveryOutcome, ...] = tuple(DeliveryOutcome)
CALL_OUTCOMES: tuple[CallOutcome, ...] = tuple(CallOutcome)


@dataclass(frozen=True)
class Family:
    """One metric: its Prometheus name (a counter's without ``_total``: the exposition adds
    it), what it means, its label names and, for a histogram, its bucket upper bounds."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    @property
    def histogram(self) -> bool:
        return bool(self.buckets)

    @property
    def key(self) -> str:
        return KEY_PREFIX + self.name.removeprefix("shiphub_")

    def field(self, *values: str) -> str:
        """The hash field of one series (a histogram's: its label values, then the part)."""
        return _series_field(values)

    def bucket(self, value: float) -> str:
        """The part an observation of ``value`` is counted in: the smallest bound that holds it."""
        at = bisect.bisect_left(self.buckets, value)
        return floatToGoString(self.buckets[at]) if at < len(self.buckets) else "+Inf"


@functools.lru_cache(maxsize=4096)  # the series are few: integrations x services x outcomes
def _series_field(values: tuple[str, ...]) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


MESSAGES = Family(
    "shiphub_messages",
    "Messages by integration, service and what became of them: accepted (recorded), duplicate "
    "(posted again), republished (found lost by the watchdog), retrying (an attempt failed and "
    "the next is scheduled), succeeded, failed (refused by the provider), dead (retries ran out)",
    ("integration", "service", "outcome"),
)
RETRIES = Family(
    "shiphub_retries",
    "Retries scheduled, by integration and reason: " + ", ".join(RetryReason),
    ("integration", "reason"),
)
DELIVERIES = Family(
    "shiphub_deliveries",
    "Pushes of answers to the hub by integration and outcome: delivered, retrying (the hub "
    "refused or did not answer; the next push is scheduled), dead (push retries ran out)",
    ("integration", "outcome"),
)
HANDLER_SECONDS = Family(
    "shiphub_handler_duration_seconds",
    "How long one attempt's handler ran, by integration and service",
    ("integration", "service"),
    (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
PROVIDER_CALL_SECONDS = Family(
    "shiphub_provider_call_duration_seconds",
    "How long one call to a provider took, by integration and outcome: ok (a 2xx), http_error "
    "(another status), timeout, connection (not reached, or its answer cut off)",
    ("integration", "outcome"),
    (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
FAMILIES: tuple[Family, ...] = (
    MESSAGES,
    RETRIES,
    DELIVERIES,
    HANDLER_SECONDS,
    PROVIDER_CALL_SECONDS,
)


def increment(pipe: redis.client.Pipeline, family: Family, *labels: str, by: int = 1) -> None:
    """Queue one counter increment on ``pipe`` (a transaction's, or a plain pipeline)."""
    pipe.hincrby(family.key, family.field(*labels), by)


class Tally:
    """Increments gathered while something runs (an attempt, with its provider calls), queued
    later in one go on the round trip that stores its outcome. Thread-safe: a handler may call
    providers from more than one thread of its context."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._sums: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def observe(self, family: Family, labels: tuple[str, ...], value: float) -> None:
        with self._lock:
            self._add_one((family.key, family.field(*labels, family.bucket(value))))
            self._add_one((family.key, family.field(*labels, "count")))
            where = (family.key, family.field(*labels, "sum"))
            self._sums[where] = self._sums.get(where, 0.0) + value

    def _add_one(self, where: tuple[str, str]) -> None:
        self._counts[where] = self._counts.get(where, 0) + 1

    def __bool__(self) -> bool:
        return bool(self._counts or self._sums)

    def write(self, pipe: redis.client.Pipeline) -> None:
        """Queue every increment on ``pipe``; the tally itself is left as it is (a transaction
        that is retried queues it again)."""
        with self._lock:
            counts, sums = dict(self._counts), dict(self._sums)
        for (key, name), by in counts.items():
            pipe.hincrby(key, name, by)
        for (key, name), value in sums.items():
            pipe.hincrbyfloat(key, name, value)


@dataclass(frozen=True)
class _Running:
    tally: Tally
    integration: str


_running: ContextVar[_Running | None] = ContextVar("shiphub_metrics_attempt", default=None)


@contextlib.contextmanager
def attempt(integration: str, tally: Tally) -> Iterator[None]:
    """Gather what the code in the block observes (its provider calls) for ``integration``, in
    ``tally``."""
    token = _running.set(_Running(tally, integration))
    try:
        yield
    finally:
        _running.reset(token)


def provider_call(outcome: CallOutcome, seconds: float) -> None:
    """One provider call of the running attempt. Outside an attempt (a call from a script, a
    test) it is not counted: only handled messages' calls are."""
    running = _running.get()
    if running is not None:
        running.tally.observe(PROVIDER_CALL_SECONDS, (running.integration, outcome), seconds)


# -- reading it back ---------------------------------------------------------------------------
@dataclass
class Histogram:
    """One histogram series as stored: per-bucket counts (not cumulated), sum and count."""

    per_bucket: dict[str, float] = field(default_factory=dict)
    sum: float = 0.0
    count: float = 0.0

    def cumulative(self, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
        """Prometheus buckets: (upper bound, observations at most that), ``+Inf`` = count."""
        running, out = 0.0, []
        for bound in bounds:
            le = floatToGoString(bound)
            running += self.per_bucket.get(le, 0.0)
            out.append((le, running))
        out.append(("+Inf", self.count))
        return out


@dataclass(frozen=True)
class Stored:
    """Every counter and histogram series as read from Redis, by label values."""

    counters: Mapping[Family, Mapping[tuple[str, ...], float]]
    histograms: Mapping[Family, Mapping[tuple[str, ...], Histogram]]


def read(client: redis.Redis) -> Stored:
    """Read every metric hash in one round trip."""
    with client.pipeline(transaction=False) as pipe:
        for family in FAMILIES:
            pipe.hgetall(family.key)
        found = pipe.execute()
    counters: dict[Family, dict[tuple[str, ...], float]] = {}
    histograms: dict[Family, dict[tuple[str, ...], Histogram]] = {}
    for family, raw in zip(FAMILIES, found, strict=True):
        if family.histogram:
            histograms[family] = _histograms(family, raw)
        else:
            counters[family] = _counters(family, raw)
    return Stored(counters, histograms)


def _series(family: Family, name: Any, parts: int) -> tuple[str, ...] | None:
    """A field's label values (plus the part), or None for a field that is not one of ours."""
    text = name.decode() if isinstance(name, bytes) else str(name)
    try:
        values = json.loads(text)
    except ValueError:
        return None
    if not isinstance(values, list) or len(values) != len(family.labels) + parts:
        return None
    return tuple(str(v) for v in values)


def _counters(family: Family, raw: Mapping[Any, Any]) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for name, value in raw.items():
        if (labels := _series(family, name, 0)) is not None:
            out[labels] = float(value)
    return out


def _histograms(family: Family, raw: Mapping[Any, Any]) -> dict[tuple[str, ...], Histogram]:
    out: dict[tuple[str, ...], Histogram] = {}
    for name, value in raw.items():
        if (values := _series(family, name, 1)) is None:
            continue
        *labels, part = values
        series = out.setdefault(tuple(labels), Histogram())
        if part == "sum":
            series.sum = float(value)
        elif part == "count":
            series.count = float(value)
        else:
            series.per_bucket[part] = float(value)
    return out


# The oldest answer still waiting to be pushed: the first of OUTBOX_READY that is still in the
# outbox. An answer that left the outbox without its entry leaving too (a replay requeued its
# message) is dropped on the way; at most ARGV[1] (OLDEST_LOOK_AT) entries are looked at.
OLDEST_LOOK_AT = 1000
_OLDEST_READY = """
local budget = tonumber(ARGV[1])
while budget > 0 do
  local rows = redis.call('ZRANGE', KEYS[1], 0, 99, 'WITHSCORES')
  if #rows == 0 then return false end
  for i = 1, #rows, 2 do
    if redis.call('ZSCORE', KEYS[2], rows[i]) then return rows[i + 1] end
    redis.call('ZREM', KEYS[1], rows[i])
    budget = budget - 1
  end
end
return false
"""


def oldest_ready(client: redis.Redis, outbox: str) -> float | None:
    """When the oldest answer still in ``outbox`` became ready to push; None when none is."""
    found = client.eval(_OLDEST_READY, 2, OUTBOX_READY, outbox, OLDEST_LOOK_AT)
    return float(found) if found is not None else None
