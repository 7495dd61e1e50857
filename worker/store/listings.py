"""What operators list and count: the messages in a state (one index each, ``state_key``), the
recent ones, the dead lists, the totals and the sizes of the sets; and the pruning that keeps
those lists to records that still exist."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import redis

from worker.basics import metrics
from worker.store.record import Record, Timing
from worker.store.schema import (
    DEAD_DELIVERIES,
    DEAD_MESSAGES,
    DUE,
    LISTED_STATES,
    OUTBOX,
    RECENT,
    RECORD_PREFIX,
    WATCH,
    RecordField,
    number_key,
    record_key,
    split_member,
    split_state_member,
    state_key,
)
from worker.store.scripts import scripts

# The totals ``Listings.stats()`` gives (at 0 before they first count): ``messages_<outcome>``
# and ``deliveries_<outcome>``, summed over the labelled counters of ``worker.basics.metrics``.
COUNTERS = (
    *(f"messages_{outcome}" for outcome in metrics.MESSAGE_OUTCOMES),
    *(f"deliveries_{outcome}" for outcome in metrics.DELIVERY_OUTCOMES),
)


@dataclass(frozen=True)
class Position:
    """Where a page of a state listing ends (its last entry's score and name): the next page
    starts right after it, whatever entered the states meanwhile."""

    at: float
    entry: str


@dataclass(frozen=True)
class InState:
    """A message listed in a state (``Listings.in_states``), with when it entered it."""

    record: Record
    store: str
    status: str
    since: float


@dataclass(frozen=True)
class InSet:
    """A message found in one of the sets listed by a window (``Listings.in_set``): its record
    (the fields ``SHOWN_FIELDS``, without its body) and its score in the set."""

    record: Record
    store: str
    at: float


# The fields a listed message is shown with (never its body, its answer or its parameters).
SHOWN_FIELDS: tuple[RecordField, ...] = (
    RecordField.STATUS,
    RecordField.STORE,
    RecordField.MESSAGE,
    RecordField.ATTEMPTS,
    RecordField.RECEIVED_AT,
    RecordField.STARTED_AT,
    RecordField.UPDATED_AT,
    RecordField.FINISHED_AT,
    RecordField.NEXT_ATTEMPT_AT,
    RecordField.LAST_ERROR,
    RecordField.DELIVERY,
    RecordField.DELIVERY_ATTEMPTS,
    RecordField.DELIVERY_ERROR,
    RecordField.NEXT_PUSH_AT,
)


class Listings:
    def __init__(self, client: redis.Redis, timing: Timing | None = None) -> None:
        self.redis = client
        self.timing = timing or Timing()
        self._lua = scripts(client)

    def prune_dead(self, now: float | None = None, limit: int = 1000) -> int:
        """Take dead-list entries whose records have expired off the lists. Only entries older
        than the record TTL can have lost their record, so only those are looked at."""
        older_than = (time.time() if now is None else now) - self.timing.record_ttl_seconds
        self._prune_states(older_than, limit)  # the state indexes' entries likewise
        return sum(
            self._lua.prune(listed=listed, older_than=older_than, prefix=RECORD_PREFIX, limit=limit)
            for listed in (DEAD_MESSAGES, DEAD_DELIVERIES)
        )

    def _prune_states(self, older_than: float, limit: int) -> int:
        """Take off the state indexes the entries whose records expired (or, should one have
        been missed, left the state): only entries older than the record TTL are looked at."""
        return sum(
            self._lua.prune_state(
                index=state_key(s),
                status=s,
                older_than=older_than,
                prefix=RECORD_PREFIX,
                limit=limit,
            )
            for s in LISTED_STATES
        )

    def in_states(
        self,
        statuses: Sequence[str],
        *,
        integration: str | None = None,
        store: str | None = None,
        limit: int = 50,
        after: Position | None = None,
    ) -> tuple[list[InState], Position | None]:
        """The messages in any of ``statuses`` (of ``LISTED_STATES``), of one integration and one
        store when given, newest in their state first: one page of at most ``limit``, after
        ``after``, and where the next page starts (None: this is the last). Reads one index per
        state and one record per entry, never more, however much history Redis holds. An entry
        whose record left the state since it was read is left out, so a page may hold fewer."""
        wanted = list(dict.fromkeys(statuses))
        keys = [state_key(s, integration or "", store or "") for s in wanted]
        ties = [0] * len(keys)
        if after is not None:  # entries scored the same as the last one, on either side of it
            with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zcount(key, after.at, after.at)
                ties = pipe.execute()
        with self.redis.pipeline(transaction=False) as pipe:
            for key, tied in zip(keys, ties, strict=True):
                top = after.at if after is not None else "+inf"
                pipe.zrevrangebyscore(key, top, "-inf", 0, limit + 1 + tied, withscores=True)
            ranges = pipe.execute()
        found = sorted(
            (
                (score, entry, status)
                for status, rows in zip(wanted, ranges, strict=True)
                for entry, score in rows
                if after is None or (score, entry) < (after.at, after.entry)
            ),
            reverse=True,
        )
        page = found[:limit]
        with self.redis.pipeline(transaction=False) as pipe:
            for _, entry, _ in page:
                integration_name, _, message_id = split_state_member(entry)
                pipe.hgetall(record_key(integration_name, message_id))
            fields = pipe.execute()
        listed = []
        for (score, entry, status), f in zip(page, fields, strict=True):
            integration_name, store_name, message_id = split_state_member(entry)
            if f.get(RecordField.STATUS) == status:
                listed.append(
                    InState(Record(integration_name, message_id, f), store_name, status, score)
                )
        more = len(found) > limit
        return listed, Position(page[-1][0], page[-1][1]) if more else None

    def in_set(
        self,
        key: str,
        wanted: Callable[[dict[str, str]], bool],
        *,
        integration: str | None = None,
        store: str | None = None,
        limit: int = 50,
        window: int = 500,
        after: Position | None = None,
    ) -> tuple[list[InSet], Position | None]:
        """The messages of a set of members ``<integration>:<message_id>`` (``WATCH``,
        ``OUTBOX``, ``DEAD_DELIVERIES``) whose record is ``wanted`` (by its ``SHOWN_FIELDS``), of
        one integration and one store when given, highest score first: at most ``limit``, found
        among the next ``window`` entries after ``after``, and where the next page starts (None:
        the set holds no more). A page reads at most ``window`` records in three round trips
        however large the set: one that finds fewer than ``limit`` looked at ``window`` entries,
        and the next page goes on from there."""
        tied = 0
        if after is not None:  # entries scored the same as the last one, on either side of it
            tied = self.redis.zcount(key, after.at, after.at)
        top = after.at if after is not None else "+inf"
        found = self.redis.zrevrangebyscore(key, top, "-inf", 0, window + tied, withscores=True)
        rows = [
            Position(score, entry)
            for entry, score in found
            if after is None or (score, entry) < (after.at, after.entry)
        ][:window]
        looked = [
            (n, row)
            for n, row in enumerate(rows)
            if not integration or split_member(row.entry)[0] == integration
        ]
        with self.redis.pipeline(transaction=False) as pipe:
            for _, row in looked:
                pipe.hmget(record_key(*split_member(row.entry)), *SHOWN_FIELDS)
            values = pipe.execute()
        listed: list[InSet] = []
        for (n, row), read in zip(looked, values, strict=True):
            fields = {f.value: v for f, v in zip(SHOWN_FIELDS, read, strict=True) if v is not None}
            shop = fields.get(RecordField.STORE, "default")
            if fields and (not store or shop == store) and wanted(fields):
                listed.append(InSet(Record(*split_member(row.entry), fields), shop, row.at))
                if len(listed) == limit:
                    more = n < len(rows) - 1 or len(rows) == window
                    return listed, row if more else None
        return listed, rows[-1] if len(rows) == window else None

    def numbered(self, number: str, limit: int) -> list[tuple[str, str]]:
        """The messages received naming this shipment or order number, newest first
        (``number_key``): (integration, message id)."""
        return [split_member(m) for m in self.redis.zrevrange(number_key(number), 0, limit - 1)]

    def recent(self, limit: int = 50) -> list[Record]:
        """The latest messages received, newest first (those whose records expired left out)."""
        members = self.redis.zrevrange(RECENT, 0, limit - 1)
        with self.redis.pipeline(transaction=False) as pipe:
            for m in members:
                pipe.hgetall(record_key(*split_member(m)))
            found = pipe.execute()
        return [Record(*split_member(m), f) for m, f in zip(members, found, strict=True) if f]

    def dead(
        self, which: Literal["messages", "deliveries"], limit: int = 100
    ) -> list[tuple[str, str, float]]:
        key = DEAD_MESSAGES if which == "messages" else DEAD_DELIVERIES
        rows = self.redis.zrevrange(key, 0, limit - 1, withscores=True)
        return [(*split_member(m), score) for m, score in rows]

    def count(
        self,
        name: str,
        by: int = 1,
        *,
        integration: str = metrics.UNKNOWN,
        service: str = metrics.UNKNOWN,
    ) -> None:
        """Count what a caller saw outside any transaction of ours: ``messages_duplicate``,
        ``messages_republished``, in the labelled messages counter."""
        with self.redis.pipeline(transaction=False) as pipe:
            outcome = name.removeprefix("messages_")
            if outcome != name:
                metrics.increment(pipe, metrics.MESSAGES, integration, service, outcome, by=by)
            pipe.execute()

    def stats(self) -> dict[str, int]:
        """Totals over every integration and service: ``messages_<outcome>`` and
        ``deliveries_<outcome>``, each at 0 before it first counts."""
        stored = metrics.read(self.redis).counters
        totals = dict.fromkeys(COUNTERS, 0)
        for family, prefix in (
            (metrics.MESSAGES, "messages_"),
            (metrics.DELIVERIES, "deliveries_"),
        ):
            for labels, value in stored[family].items():
                name = prefix + labels[-1]
                totals[name] = totals.get(name, 0) + int(value)
        return totals

    def sizes(self) -> dict[str, int]:
        with self.redis.pipeline(transaction=False) as pipe:
            for key in (WATCH, DUE, OUTBOX, DEAD_MESSAGES, DEAD_DELIVERIES):
                pipe.zcard(key)
            watch, due, outbox, dead_messages, dead_deliveries = pipe.execute()
        return {
            "unfinished_messages": watch,
            "retries_scheduled": due,
            "outbox_pending": outbox,
            "dead_messages": dead_messages,
            "dead_deliveries": dead_deliveries,
        }
