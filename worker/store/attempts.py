"""A message's attempts: beginning one under a lease, scheduling the retry, finishing with the
answer (and what the handler keeps), parts of the answer stored ahead, and the watch and due
sets the watchdog and the scheduler read.

Every write a handler makes after it begins is fenced by its lease (``record.fenced``, or the
script's own check): a stale holder's write is refused, never applied."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import redis

from worker.basics import metrics
from worker.store import moving, per_minute
from worker.store.kept import Kept
from worker.store.record import Timing, fenced, list_in_state
from worker.store.schema import (
    DEAD_MESSAGES,
    DUE,
    EARLY_START_SECONDS,
    OUTBOX,
    POLLED,
    RECORD_PREFIX,
    WATCH,
    DeliveryStatus,
    Keep,
    MessageStatus,
    RecordField,
    Start,
    Write,
    cursor_key,
    done_channel,
    lease_key,
    member,
    parts_key,
    record_key,
    split_member,
)
from worker.store.scripts import scripts

F = RecordField


@dataclass(frozen=True)
class Begun:
    """What ``begin`` found (``Start``): ``started``, then the attempt number and what the
    handler needs, or why not."""

    outcome: Start
    attempt: int = 0
    body: str = "{}"
    store: str = "default"
    retry_since: float = 0.0
    parameters: str = ""  # sealed (worker.basics.sealing); empty when the message carried none
    replays: int = 0  # which run this is: 0 the first, n after the n-th replay


class Attempts:
    def __init__(self, client: redis.Redis, timing: Timing | None = None) -> None:
        self.redis = client
        self.timing = timing or Timing()
        self._lua = scripts(client)
        self.kept = Kept(client, self.timing.memory_ttl_seconds)

    def begin(self, integration: str, message_id: str, lease_token: str) -> Begun:
        now = time.time()
        found = self._lua.begin(
            record=record_key(integration, message_id),
            lease=lease_key(integration, message_id),
            watch=WATCH,
            due=DUE,
            now=now,
            token=lease_token,
            lease_ms=int(self.timing.lease_seconds * 1000),
            watch_until=now + self.timing.lease_seconds + 1,
            member=member(integration, message_id),
            early=EARLY_START_SECONDS,
        )
        if found[0] != Start.STARTED:
            return Begun(Start(found[0]))
        _, attempt, body, store, since, parameters, replays = found
        return Begun(
            Start.STARTED,
            int(attempt),
            body or "{}",
            store or "default",
            float(since),
            parameters,
            int(replays),
        )

    def mark_retrying(
        self, integration: str, message_id: str, error: str, at: float, lease_token: str
    ) -> bool:
        """Schedule the next attempt at ``at`` (releasing the lease); False, and nothing written,
        when ``lease_token`` no longer holds the lease."""
        return bool(
            self._lua.retrying(
                record=record_key(integration, message_id),
                lease=lease_key(integration, message_id),
                watch=WATCH,
                due=DUE,
                token=lease_token,
                now=time.time(),
                at=at,
                error=error,
                member=member(integration, message_id),
                watch_until=at + self.timing.queued_deadline_seconds,
            )
        )

    def wait_until(self, integration: str, message_id: str, at: float, lease_token: str) -> bool:
        """End the attempt to come back at ``at`` (a provider's pace): not a failed attempt,
        queued again through the due set, the lease released; False, and nothing written, when
        ``lease_token`` no longer holds the lease."""
        return bool(
            self._lua.waiting(
                record=record_key(integration, message_id),
                lease=lease_key(integration, message_id),
                watch=WATCH,
                due=DUE,
                token=lease_token,
                now=time.time(),
                at=at,
                member=member(integration, message_id),
                watch_until=at + self.timing.queued_deadline_seconds,
            )
        )

    def defer(self, integration: str, message_id: str, at: float) -> None:
        """Publish the message again at ``at`` without starting it (a poll of its store runs)."""
        who = member(integration, message_id)
        with self.redis.pipeline() as pipe:
            pipe.zadd(DUE, {who: at}, nx=True)
            pipe.zadd(WATCH, {who: at + self.timing.queued_deadline_seconds})
            pipe.execute()

    def claim_due(self, now: float, limit: int = 200) -> list[tuple[str, str]]:
        """Take the messages whose retry is due off the due set, stamped ``now`` for publishing.
        If the caller dies before publishing them, the watchdog finds them lost."""
        due = self._lua.claim_due(
            due=DUE,
            watch=WATCH,
            now=now,
            limit=limit,
            watch_until=now + self.timing.queued_deadline_seconds,
            prefix=RECORD_PREFIX,
        )
        return [split_member(m) for m in due]

    # -- finishing ---------------------------------------------------------------------------
    def finish(
        self,
        integration: str,
        message_id: str,
        status: Literal[MessageStatus.SUCCEEDED, MessageStatus.FAILED, MessageStatus.DEAD],
        answer: Mapping[str, Any],
        *,
        error: str | None,
        cursor: Mapping[str, Any],
        push: bool,
        lease_token: str,
        keep: list[Keep] | None = None,
        expect: list[Keep] | None = None,
        observed: metrics.Tally | None = None,
    ) -> Write:
        """Store the answer, the outbox entry, the cursor and what the handler keeps in one
        transaction, and release the lease, only if ``lease_token`` still holds it and the
        message has not finished: a stale holder or a redelivered task writes nothing.

        ``expect`` is handler memory read with ``Job.watch``: if any of it changed since (another
        message reported the same shipment first), nothing is written ("conflict") and the
        handler runs again on what is there now. The outcome is counted in the same
        transaction, with what the attempt ``observed`` (``worker.basics.metrics``), in its
        minute (``worker.store.per_minute``); the shipment updates the answer carries are noted
        there too (``worker.store.moving``)."""
        key, lease = record_key(integration, message_id), lease_key(integration, message_id)
        who = member(integration, message_id)
        now = time.time()
        news = moving.news_in(answer.get("messages") or [], now)
        watched: list[str] = []
        if expect:
            at = self.redis.hget(key, F.STORE) or "default"
            watched = self.kept.watched_keys(integration, at, expect)

        def commit(pipe: redis.client.Pipeline) -> Write:
            current, store, service, met, numbered = pipe.hmget(
                key, F.STATUS, F.STORE, F.SERVICE, F.LAST_ERROR, F.NUMBERED
            )
            if refused := fenced(pipe, current, lease, lease_token):
                return refused
            if expect and self._changed(pipe, integration, store or "default", expect):
                return Write.CONFLICT
            pipe.multi()
            update = {
                F.STATUS: status,
                F.ANSWER: json.dumps(answer),
                F.FINISHED_AT: repr(now),
                F.UPDATED_AT: repr(now),
            }
            if error is not None:
                update[F.LAST_ERROR] = error
            elif met and status == MessageStatus.SUCCEEDED:  # no error is current: the one
                update[F.EARLIER_ERROR] = met  # met is history
            if push:
                update |= {
                    F.DELIVERY: DeliveryStatus.PENDING,
                    F.DELIVERY_ID: uuid.uuid4().hex,  # every push of this answer carries it
                    F.DELIVERY_PART: "1",
                    F.DELIVERY_ATTEMPTS: "0",
                    F.DELIVERY_TIMEOUTS: "0",
                    F.DELIVERY_SINCE: repr(now),
                }
                pipe.zadd(OUTBOX, {who: now})
                pipe.zadd(metrics.OUTBOX_READY, {who: now})
            pipe.hset(key, mapping=update)
            # A failed or dead message keeps its parameters, sealed, for a replay (they expire
            # with the record); one that succeeded is never run again: nothing secret stays.
            done = (F.LAST_ERROR, F.PARAMETERS) if status == MessageStatus.SUCCEEDED else ()
            pipe.hdel(key, F.NEXT_ATTEMPT_AT, *done)
            pipe.delete(lease)
            pipe.zrem(WATCH, who)
            pipe.zrem(DUE, who)
            if status == MessageStatus.DEAD:
                pipe.zadd(DEAD_MESSAGES, {who: now})
            store = store or "default"
            list_in_state(pipe, status, integration, store, message_id, now)
            if cursor:
                pipe.hset(
                    cursor_key(integration, store),
                    mapping={k: json.dumps(v) for k, v in cursor.items()},
                )
                pipe.hset(POLLED, member(integration, store), repr(now))
            self.kept.write(pipe, integration, store, keep or [])
            if not push:
                pipe.expire(key, self.timing.record_ttl_seconds)
                pipe.expire(parts_key(integration, message_id), self.timing.record_ttl_seconds)
                if numbered:  # its number index (``number_key``) goes with the record
                    pipe.expire(numbered, self.timing.record_ttl_seconds)
            metrics.increment(
                pipe, metrics.MESSAGES, integration, service or metrics.UNKNOWN, status
            )
            if observed:
                observed.write(pipe)
            per_minute.count(pipe, integration, status, now)
            moving.note(pipe, integration, store, news, message_id)
            pipe.publish(done_channel(integration, message_id), status)
            return Write.WRITTEN

        return self.redis.transaction(commit, key, lease, *watched, value_from_callable=True)

    def add_part(
        self,
        integration: str,
        message_id: str,
        parts: list[str],
        *,
        lease_token: str,
        keep: list[Keep],
    ) -> Write:
        """Store parts of the answer ahead of its end (each a JSON array of hub messages), with
        what the handler keeps about them, in one transaction fenced like ``finish``: a long
        poll's answer leaves the worker's memory as it is made, and a later attempt (the worker
        died) finds these already kept, so it neither loses nor repeats them. They are pushed
        before the rest of the answer, whatever status it ends with."""
        key, lease = record_key(integration, message_id), lease_key(integration, message_id)
        news = moving.news_in_parts(parts, time.time())

        def commit(pipe: redis.client.Pipeline) -> Write:
            current, store = pipe.hmget(key, F.STATUS, F.STORE)
            if refused := fenced(pipe, current, lease, lease_token):
                return refused
            pipe.multi()
            if parts:
                pipe.rpush(parts_key(integration, message_id), *parts)
            self.kept.write(pipe, integration, store or "default", keep)
            moving.note(pipe, integration, store or "default", news, message_id)
            return Write.WRITTEN

        return self.redis.transaction(commit, key, lease, value_from_callable=True)

    def _changed(
        self, pipe: redis.client.Pipeline, integration: str, store: str, expect: list[Keep]
    ) -> bool:
        """Whether any value a handler read with ``Job.watch`` is not what it read (read under
        the transaction's WATCH, before its MULTI)."""
        for kind in dict.fromkeys(k for k, _, _ in expect):
            read = [(name, value) for k, name, value in expect if k == kind]
            now_there = self.kept.read(integration, store, kind, [n for n, _ in read], pipe)
            if any(v != value for v, (_, value) in zip(now_there, read, strict=True)):
                return True
        return False

    # -- the watch and due sets ------------------------------------------------------------
    def overdue(self, now: float, limit: int = 500) -> list[tuple[str, str]]:
        return [split_member(m) for m in self.redis.zrangebyscore(WATCH, 0, now, 0, limit)]

    def due_at(self, integration: str, message_id: str) -> float | None:
        """When the message is to be published again; None when no retry is scheduled."""
        return self.redis.zscore(DUE, member(integration, message_id))

    def postpone(self, integration: str, message_id: str, at: float) -> None:
        self.redis.zadd(WATCH, {member(integration, message_id): at}, xx=True)

    def forget_watch(self, integration: str, message_id: str) -> None:
        self.redis.zrem(WATCH, member(integration, message_id))
