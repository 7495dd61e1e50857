"""Messages finished per minute, by integration and outcome: what the operations page's chart
draws (``endpoint.ops_trends``).

One small hash per minute (``minute_key``; fields ``<integration>:<outcome>``), counted by the
transaction that stores each outcome (``Attempts.finish``: one HINCRBY and one EXPIRE more in a
round trip it makes anyway) and expiring ``MINUTES_KEPT`` minutes after its minute, so what is
kept is bounded by the window, whatever the traffic. Reading a window is one pipelined round
trip of one HGETALL per minute."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import redis

from worker.store.schema import MINUTES_KEPT, minute_field, minute_key

# The outcomes a minute counts (the final ones: ``Attempts.finish``).
COUNTED = ("succeeded", "failed", "dead")


def minute_of(epoch: float) -> int:
    return int(epoch // 60)


def count(pipe: redis.client.Pipeline, integration: str, outcome: str, now: float) -> None:
    """Queue the count of one finished message on ``pipe`` (the outcome's own transaction)."""
    minute = minute_of(now)
    key = minute_key(minute)
    pipe.hincrby(key, minute_field(integration, outcome), 1)
    pipe.expireat(key, (minute + 1 + MINUTES_KEPT) * 60)


@dataclass
class Minute:
    """One minute's counts: (integration, outcome) -> messages."""

    minute: int
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def of(self, integration: str, outcomes: tuple[str, ...] = COUNTED) -> int:
        return sum(self.counts.get((integration, o), 0) for o in outcomes)


class PerMinute:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def read(self, first: int, last: int) -> list[Minute]:
        """The minutes ``first`` to ``last`` (inclusive, epoch minutes), in order, in one round
        trip; a minute with nothing finished has no counts."""
        minutes = range(first, last + 1)
        with self.redis.pipeline(transaction=False) as pipe:
            for minute in minutes:
                pipe.hgetall(minute_key(minute))
            found = pipe.execute()
        return [Minute(m, _counts(raw)) for m, raw in zip(minutes, found, strict=True)]


def _counts(raw: Mapping[str, str]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for name, value in raw.items():
        integration, _, outcome = str(name).rpartition(":")
        if integration:
            out[(integration, outcome)] = int(value)
    return out
