"""The outbox: answers waiting to be pushed to the hub, and who may push each one.

Each answer to push has a delivery id (fixed when the answer is stored, so every push of it
carries the same ``X-Hub-Delivery-Id``), the part to push next (an answer too big for one push
goes out in parts, in order), and the number of pushes in a row that timed out (a slow hub gets
longer timeouts, not more copies).

``outbox`` is a zset of records whose answer is pending, scored by the time of the next push. A
push is started by a *claim*: an atomic step that checks the delivery is still pending, gives
it a fresh claim number stamped with the time (the stamp its push task carries to the broker)
and moves its score to a reclaim time, so a claim whose task is lost comes back by itself. A
claim that comes back while its task was never taken is not claimed again blindly: it comes back
as *sent* (``Claims.sent``), and the caller asks the broker whether that task still waits in its
queue; still queued, its reclaim time moves on (``still_queued``); lost, it is claimed afresh
(``reclaim``). So a push task waiting behind a backlog is published once, and one the broker
lost is published again. A push task carries its claim; *taking* the push checks and consumes that
claim in one step, so a duplicate task (a redelivery, a stray kick) pushes nothing. Only the
holder of the taken claim records the outcome and schedules the next push; a holder that was
superseded (it stalled past its reclaim time) has its outcome refused. The script that records an
outcome also counts it (``worker.basics.metrics``: deliveries by outcome, and when each answer
waiting here became ready).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from worker.basics import metrics
from worker.store.record import Timing
from worker.store.schema import (
    DEAD_DELIVERIES,
    OUTBOX,
    OUTBOX_READY,
    PUSH_CLAIMS,
    RECORD_PREFIX,
    PushFailed,
    RecordField,
    member,
    parts_key,
    record_key,
    split_member,
)
from worker.store.scripts import scripts

F = RecordField


@dataclass(frozen=True)
class Claimed:
    integration: str
    message_id: str
    claim: str
    claimed_at: float  # its push task carries it: the broker is asked about the task by it


@dataclass(frozen=True)
class Claims:
    """What ``claim_due`` found: deliveries claimed now, each needing its push task sent, and
    claims whose push task was sent and not taken by their reclaim time: still in the broker's
    queue, or lost (``still_queued``, ``reclaim``)."""

    fresh: list[Claimed]
    sent: list[Claimed]


@dataclass(frozen=True)
class TakenPush:
    answer: dict[str, Any] | None
    attempts: int  # pushes made before this one
    since: float  # when this delivery became due: the retry budget runs from here
    delivery_id: str  # the same for every push of this answer
    part: int  # the part to push next (1 unless earlier parts already reached the hub)
    timeouts: int  # pushes in a row that timed out
    store: str  # the hub store the message came for
    service: str  # the service that answered the message
    parts_ahead: int = 0  # parts stored ahead of the answer (``Attempts.add_part``), pushed first


class Outbox:
    def __init__(self, client: redis.Redis, timing: Timing | None = None) -> None:
        self.redis = client
        self.timing = timing or Timing()
        self._lua = scripts(client)

    def claim_due(self, now: float | None = None, limit: int = 200) -> Claims:
        """Claim every due delivery (up to ``limit``); each fresh claim needs a push task."""
        return self._claim(now, limit, "")

    def claim_one(
        self, integration: str, message_id: str, now: float | None = None
    ) -> Claimed | None:
        """Claim one delivery if it is due; None when it is not (scheduled later, claimed
        already, settled)."""
        found = self._claim(now, 1, member(integration, message_id))
        return found.fresh[0] if found.fresh else None

    def claim(self, integration: str, message_id: str, now: float | None = None) -> str | None:
        """``claim_one``'s claim number."""
        found = self.claim_one(integration, message_id, now)
        return found.claim if found else None

    def _claim(self, now: float | None, limit: int, one: str) -> Claims:
        now = time.time() if now is None else now
        claimed, sent = self._lua.claim(
            outbox=OUTBOX,
            sequence=PUSH_CLAIMS,
            now=now,
            reclaim_at=now + self.timing.queued_deadline_seconds,
            limit=limit,
            prefix=RECORD_PREFIX,
            one=one,
        )
        return Claims(
            [
                Claimed(*split_member(m), claim, now)
                for m, claim in zip(claimed[::2], claimed[1::2], strict=True)
            ],
            [
                Claimed(*split_member(m), claim, float(at))
                for m, claim, at in zip(sent[::3], sent[1::3], sent[2::3], strict=True)
            ],
        )

    def still_queued(self, claimed: Claimed, now: float | None = None) -> None:
        """The broker still holds ``claimed``'s push task: look again a deadline later."""
        self._recheck(claimed, now, lost=False)

    def reclaim(self, claimed: Claimed, now: float | None = None) -> Claimed | None:
        """The broker lost ``claimed``'s push task: a fresh claim, for a new push task; None when
        the claim moved on meanwhile (its task was taken, or another worker reclaimed it)."""
        return self._recheck(claimed, now, lost=True)

    def _recheck(self, claimed: Claimed, now: float | None, *, lost: bool) -> Claimed | None:
        now = time.time() if now is None else now
        who = member(claimed.integration, claimed.message_id)
        claim = self._lua.recheck(
            record=record_key(claimed.integration, claimed.message_id),
            outbox=OUTBOX,
            sequence=PUSH_CLAIMS,
            claim=claimed.claim,
            now=now,
            reclaim_at=now + self.timing.queued_deadline_seconds,
            member=who,
            lost=lost,
        )
        if not isinstance(claim, str):
            return None
        return Claimed(claimed.integration, claimed.message_id, claim, now)

    def make_due(self, integration: str, message_id: str, at: float) -> None:
        """Put a claimed delivery whose push task could not be sent back in line: claimed
        afresh when due (no task of its claim is in the broker to wait for)."""
        with self.redis.pipeline() as pipe:
            pipe.hdel(record_key(integration, message_id), F.PUSH_CLAIMED_AT)
            pipe.zadd(OUTBOX, {member(integration, message_id): at}, xx=True)
            pipe.execute()

    def take(
        self, integration: str, message_id: str, claim: str, push_seconds: float
    ) -> TakenPush | None:
        """Become the pusher of this claim; None when the claim is stale or the delivery settled.
        If this pusher dies, the delivery is claimed again ``push_seconds`` (+30 s) from now."""
        now = time.time()
        found = self._lua.take(
            record=record_key(integration, message_id),
            outbox=OUTBOX,
            parts=parts_key(integration, message_id),
            claim=claim,
            reclaim_at=now + push_seconds + 30,
            member=member(integration, message_id),
            now=now,
        )
        if not found:
            return None
        answer, attempts, since, delivery_id, part, timeouts, store, service, ahead = found
        return TakenPush(
            answer=json.loads(answer) if answer else None,
            attempts=int(attempts or 0),
            since=float(since or now),
            delivery_id=delivery_id or member(integration, message_id),
            part=int(part or 1),
            timeouts=int(timeouts or 0),
            store=store or "",
            service=service or "",
            parts_ahead=int(ahead or 0),
        )

    def part_ahead(self, integration: str, message_id: str, number: int) -> str:
        """Part ``number`` (from 1) of those stored ahead: the JSON array of its messages."""
        raw = self.redis.lindex(parts_key(integration, message_id), number - 1)
        if raw is None:
            raise LookupError(f"part {number} of {integration}/{message_id} is gone")
        return raw

    def part_delivered(
        self, integration: str, message_id: str, claim: str, part: int, push_seconds: float
    ) -> bool:
        """Part ``part`` reached the hub; the next push is of the part after it."""
        return bool(
            self._lua.part_delivered(
                record=record_key(integration, message_id),
                outbox=OUTBOX,
                claim=claim,
                next_part=part + 1,
                reclaim_at=time.time() + push_seconds + 30,
                member=member(integration, message_id),
            )
        )

    def delivered(self, integration: str, message_id: str, claim: str) -> bool:
        return bool(
            self._lua.delivered(
                record=record_key(integration, message_id),
                outbox=OUTBOX,
                counter=metrics.DELIVERIES.key,
                ready=OUTBOX_READY,
                parts=parts_key(integration, message_id),
                claim=claim,
                now=time.time(),
                member=member(integration, message_id),
                ttl=self.timing.record_ttl_seconds,
                counted=metrics.DELIVERIES.field(integration, "delivered"),
            )
        )

    def failed(
        self,
        integration: str,
        message_id: str,
        claim: str,
        error: str,
        next_at: float | None,
        *,
        timed_out: bool = False,
    ) -> PushFailed:
        """Count a failed push; schedule the next at ``next_at``, or make it dead (None)."""
        outcome = self._lua.failed(
            record=record_key(integration, message_id),
            outbox=OUTBOX,
            dead=DEAD_DELIVERIES,
            counter=metrics.DELIVERIES.key,
            ready=OUTBOX_READY,
            parts=parts_key(integration, message_id),
            claim=claim,
            now=time.time(),
            member=member(integration, message_id),
            error=error,
            next_at=next_at,
            ttl=self.timing.record_ttl_seconds,
            timed_out=timed_out,
            counted_retrying=metrics.DELIVERIES.field(integration, "retrying"),
            counted_dead=metrics.DELIVERIES.field(integration, "dead"),
        )
        return {0: PushFailed.STALE, 1: PushFailed.RETRYING, 2: PushFailed.DEAD}[int(outcome)]

    def redeliver(self, integration: str, message_id: str) -> bool:
        """Put a dead delivery back in the outbox, due now: a replay."""
        return bool(
            self._lua.redeliver(
                record=record_key(integration, message_id),
                outbox=OUTBOX,
                dead=DEAD_DELIVERIES,
                ready=OUTBOX_READY,
                parts=parts_key(integration, message_id),
                now=time.time(),
                member=member(integration, message_id),
            )
        )
