"""``GET /metrics``: what an operator pages on, in Prometheus's text format.

Every number lives in Redis, written by whichever process saw it (``worker.basics.metrics``):
workers, beat and receivers are separate processes, perhaps on separate hosts. A scrape reads it all
back (a few round trips), then renders it through a Collector on a registry of its own, so nothing
is kept between requests and every receiver process answers the same. A Redis error is raised
before anything is rendered (the route answers 503).

Every family is listed from the first scrape: the labelled counters and histograms with a zero
series for each registered integration (and service) and each outcome or reason, so a rate or an
``increase()`` sees the first message that counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from worker.basics import metrics
from worker.integrations import registry
from worker.store.bundle import Store
from worker.store.memory import Cursor
from worker.store.schema import OUTBOX

Labels = tuple[str, ...]


@dataclass(frozen=True)
class PollState:
    """One polled store: how far behind now its cursor's time is (None when no cursor value is
    a time with an offset) and how long ago the cursor last moved."""

    integration: str
    store: str
    lag_seconds: float | None
    moved_seconds_ago: float


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape shows, read from Redis before anything is rendered."""

    stored: metrics.Stored
    sizes: Mapping[str, int]
    oldest_ready_seconds: float
    polls: list[PollState]
    known: Mapping[metrics.Family, list[Labels]]
    stale: Mapping[str, int]  # shipments that stopped moving, by integration


# STALE_SHIPMENT_DAYS' default, for a caller that does not say.
STALE_AFTER_SECONDS = 7 * 86400.0


def render(db: Store, stale_after_seconds: float = STALE_AFTER_SECONDS) -> str:
    """The page: read first (a Redis error is raised here), then rendered on a registry of its
    own. A shipment is stale after ``stale_after_seconds`` without news (STALE_SHIPMENT_DAYS)."""
    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(ShiphubCollector(read(db, stale_after_seconds=stale_after_seconds)))
    return generate_latest(collectors).decode()


def read(
    db: Store, now: float | None = None, stale_after_seconds: float = STALE_AFTER_SECONDS
) -> Snapshot:
    now = time.time() if now is None else now
    ready = metrics.oldest_ready(db.redis, OUTBOX)
    served = registry.integrations()
    return Snapshot(
        stored=metrics.read(db.redis),
        sizes=db.listings.sizes(),
        oldest_ready_seconds=max(0.0, now - ready) if ready is not None else 0.0,
        polls=[_poll_state(c, served, now) for c in db.memory.cursors()],
        known=known_series(served),
        stale=db.moving.counts(served, now - stale_after_seconds, now),
    )


def known_series(served: Mapping[str, registry.Integration]) -> dict[metrics.Family, list[Labels]]:
    """The series listed at zero before they first count: every registered integration's."""
    services = [(name, svc) for name, i in served.items() for svc in i.services]
    return {
        metrics.MESSAGES: [(i, s, o) for i, s in services for o in metrics.MESSAGE_OUTCOMES],
        metrics.RETRIES: [(i, r) for i in served for r in metrics.RETRY_REASONS],
        metrics.DELIVERIES: [(i, o) for i in served for o in metrics.DELIVERY_OUTCOMES],
        metrics.HANDLER_SECONDS: services,
        metrics.PROVIDER_CALL_SECONDS: [(i, o) for i in served for o in metrics.CALL_OUTCOMES],
    }


def cursor_parameters(integration: registry.Integration | None) -> set[str]:
    """The parameters its services keep as polling cursors (declared in its handlers)."""
    if integration is None:
        return set()
    return {r.name for svc in integration.services.values() for r in svc.requires if r.cursor}


def cursor_time(value: Any) -> datetime | None:
    """A cursor value that is a time with an offset (ISO 8601, or Dotcom's ``2013-10-29
    03:15:21 -0400``); None for anything else, a time without an offset included: its zone is
    the provider's business, and a lag hours off would mislead more than none."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _poll_state(
    cursor: Cursor, served: Mapping[str, registry.Integration], now: float
) -> PollState:
    names = cursor_parameters(served.get(cursor.integration))
    times = [t for name in sorted(names) if (t := cursor_time(cursor.values.get(name)))]
    lag = now - min(t.timestamp() for t in times) if times else None
    return PollState(cursor.integration, cursor.store, lag, max(0.0, now - cursor.moved_at))


class ShiphubCollector(Collector):
    """Renders one ``Snapshot``."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        for family, series in self.snapshot.stored.counters.items():
            yield self._counter(family, series)
        for family, histograms in self.snapshot.stored.histograms.items():
            yield self._histogram(family, histograms)
        yield from self._gauges()
        yield from self._polls()
        yield self._stale()

    def _labels(self, family: metrics.Family, stored: Iterable[Labels]) -> list[Labels]:
        return sorted({*self.snapshot.known.get(family, []), *stored})

    def _counter(
        self, family: metrics.Family, series: Mapping[Labels, float]
    ) -> CounterMetricFamily:
        found = CounterMetricFamily(family.name, family.documentation, labels=family.labels)
        for labels in self._labels(family, series):
            found.add_metric(list(labels), series.get(labels, 0.0))
        return found

    def _histogram(
        self, family: metrics.Family, series: Mapping[Labels, metrics.Histogram]
    ) -> HistogramMetricFamily:
        found = HistogramMetricFamily(family.name, family.documentation, labels=family.labels)
        for labels in self._labels(family, series):
            observed = series.get(labels, metrics.Histogram())
            found.add_metric(list(labels), observed.cumulative(family.buckets), observed.sum)
        return found

    def _gauges(self) -> Iterator[Metric]:
        sizes = self.snapshot.sizes
        for name, documentation, value in (
            (
                "shiphub_unfinished_messages",
                "Messages recorded and not finished yet (queued, processing, retrying)",
                sizes["unfinished_messages"],
            ),
            (
                "shiphub_retries_scheduled",
                "Messages waiting in Redis for their next attempt",
                sizes["retries_scheduled"],
            ),
            (
                "shiphub_outbox_pending",
                "Answers waiting to be pushed to the hub",
                sizes["outbox_pending"],
            ),
            (
                "shiphub_outbox_oldest_age_seconds",
                "Seconds since the oldest answer not yet pushed became ready (0 when none waits)",
                self.snapshot.oldest_ready_seconds,
            ),
            (
                "shiphub_dead_messages",
                "Dead messages listed now (GET /dead); down as they are replayed or expire",
                sizes["dead_messages"],
            ),
            (
                "shiphub_dead_deliveries",
                "Dead deliveries listed now (GET /dead); down as they are replayed or expire",
                sizes["dead_deliveries"],
            ),
        ):
            yield GaugeMetricFamily(name, documentation, value=value)

    def _polls(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "shiphub_poll_lag_seconds",
            "Now minus the time a polled store's cursor stands at (how far behind its polls are)",
            labels=("integration", "store"),
        )
        moved = GaugeMetricFamily(
            "shiphub_poll_cursor_age_seconds",
            "Seconds since a polled store's cursor last moved (a poll succeeded)",
            labels=("integration", "store"),
        )
        for poll in sorted(self.snapshot.polls, key=lambda p: (p.integration, p.store)):
            if poll.lag_seconds is not None:
                lag.add_metric([poll.integration, poll.store], poll.lag_seconds)
            moved.add_metric([poll.integration, poll.store], poll.moved_seconds_ago)
        yield lag
        yield moved

    def _stale(self) -> Metric:
        stale = GaugeMetricFamily(
            "shiphub_stale_shipments",
            "Shipments in transit or out for delivery with no news for STALE_SHIPMENT_DAYS "
            "(/ops/stale), by integration",
            labels=("integration",),
        )
        for integration, count in sorted(self.snapshot.stale.items()):
            stale.add_metric([integration], count)
        return stale
