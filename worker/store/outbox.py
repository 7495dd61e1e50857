"""The outbox: answers waiting to be pushed to the hub, and who may push each one.

Each answer to push has a delivery id (fixed when the answer is stored, so every push of it
carries the same ``X-Hub-Delivery-Id``), the part to push next (an answer too big for one push
goes out in parts, in order), and the number of pushes in a row that timed out (a slow hub gets
longer timeouts, not more copies).

``outbox`` is a zset of records whose answer is pending, scored by the time of the next push. A
push is started by a *claim*: an atomic step that checks the delivery is still pending, gives
it a fresh claim number and moves its score to a reclaim time (so a claim whose task is lost
comes back by itself). A push task carries its claim; *taking* the push checks and consumes that
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
from typing import Any, Literal

import redis

from worker.basics import metrics
from worker.store.records import (
    DEAD_DELIVERIES,
    OUTBOX,
    RECORD_PREFIX,
    Timing,
    member,
    parts_key,
    record_key,
    split_member,
)
from worker.store.scripts import Scripts

SEQUENCE = "shiphub:push-claims"

# Claim the due deliveries (all due ones up to a limit, or one named member if it is due).
_CLAIM = """
local members
if ARGV[5] and ARGV[5] ~= '' then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[5])
  if not score or tonumber(score) > tonumber(ARGV[1]) then return {} end
  members = {ARGV[5]}
else
  members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
end
local out = {}
for _, m in ipairs(members) do
  local key = ARGV[4] .. m
  if redis.call('HGET', key, 'delivery') == 'pending' then
    local claim = tostring(redis.call('INCR', KEYS[2]))
    redis.call('HSET', key, 'push_claim', claim)
    redis.call('ZADD', KEYS[1], ARGV[2], m)
    out[#out + 1] = m
    out[#out + 1] = claim
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
"""

# Take a claimed push: the claim must be the current one and the delivery still pending.
_TAKE = """
if redis.call('HGET', KEYS[1], 'push_claim') ~= ARGV[1] then return false end
if redis.call('HGET', KEYS[1], 'delivery') ~= 'pending' then return false end
redis.call('HSET', KEYS[1], 'push_claim', '', 'push_holder', ARGV[1])
redis.call('HSETNX', KEYS[1], 'delivery_since', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
local found = redis.call('HMGET', KEYS[1], 'answer', 'delivery_attempts', 'delivery_since',
                         'delivery_id', 'delivery_part', 'delivery_timeouts', 'store', 'service')
found[#found + 1] = redis.call('LLEN', KEYS[3])
return found
"""

# One part of a multi-part answer reached the hub: the next part is pushed next, and the
# holder's time to push it starts now.
_PART_DELIVERED = """
if redis.call('HGET', KEYS[1], 'push_holder') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'delivery_part', ARGV[2], 'delivery_timeouts', '0')
redis.call('HDEL', KEYS[1], 'delivery_error')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
"""

# The whole answer reached the hub: counted (field ARGV[5] of the deliveries counter KEYS[3]),
# and off the outbox's ready times (KEYS[4]); its parts stored ahead (KEYS[5]) expire with it.
_DELIVERED = """
if redis.call('HGET', KEYS[1], 'push_holder') ~= ARGV[1] then return 0 end
redis.call('HINCRBY', KEYS[1], 'delivery_attempts', 1)
redis.call('HSET', KEYS[1], 'delivery', 'delivered', 'delivered_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'delivery_error', 'push_holder', 'next_push_at')
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[5], ARGV[4])
redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
return 1
"""

# A failed push: schedule the next one (ARGV[5]), or make the delivery dead (''). ARGV[7] says
# whether it timed out (counted in a row) or failed otherwise (the count starts over). Counted
# in the deliveries counter KEYS[4] as retrying (field ARGV[8]) or dead (ARGV[9]); a dead one
# leaves the outbox's ready times (KEYS[5]) and its parts stored ahead (KEYS[6]) expire with it.
_FAILED = """
if redis.call('HGET', KEYS[1], 'push_holder') ~= ARGV[1] then return 0 end
redis.call('HINCRBY', KEYS[1], 'delivery_attempts', 1)
redis.call('HSET', KEYS[1], 'delivery_error', ARGV[4])
redis.call('HDEL', KEYS[1], 'push_holder')
if ARGV[7] == '1' then
  redis.call('HINCRBY', KEYS[1], 'delivery_timeouts', 1)
else
  redis.call('HSET', KEYS[1], 'delivery_timeouts', '0')
end
if ARGV[5] == '' then
  redis.call('HSET', KEYS[1], 'delivery', 'dead')
  redis.call('HDEL', KEYS[1], 'next_push_at')
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('EXPIRE', KEYS[6], ARGV[6])
  redis.call('ZREM', KEYS[5], ARGV[3])
  redis.call('HINCRBY', KEYS[4], ARGV[9], 1)
  return 2
end
redis.call('HSET', KEYS[1], 'next_push_at', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
redis.call('HINCRBY', KEYS[4], ARGV[8], 1)
return 1
"""

# Replay a dead delivery: pending again, due now, off the dead list; its answer is ready again
# now (KEYS[4]).
_REDELIVER = """
if redis.call('HGET', KEYS[1], 'delivery') ~= 'dead' then return 0 end
redis.call('HSET', KEYS[1], 'delivery', 'pending', 'delivery_attempts', '0',
           'delivery_since', ARGV[1], 'delivery_timeouts', '0')
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[5])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Claimed:
    integration: str
    message_id: str
    claim: str


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
    parts_ahead: int = 0  # parts stored ahead of the answer (``Records.add_part``), pushed first


class Outbox:
    def __init__(self, client: redis.Redis, timing: Timing | None = None) -> None:
        self.redis = client
        self.timing = timing or Timing()
        self._scripts = Scripts(
            client,
            claim=_CLAIM,
            take=_TAKE,
            part_delivered=_PART_DELIVERED,
            delivered=_DELIVERED,
            failed=_FAILED,
            redeliver=_REDELIVER,
        )

    def claim_due(self, now: float | None = None, limit: int = 200) -> list[Claimed]:
        """Claim every due delivery (up to ``limit``); each needs a push task with its claim."""
        return self._claim(now, limit, "")

    def claim(self, integration: str, message_id: str, now: float | None = None) -> str | None:
        """Claim one delivery if it is due; None when it is not (scheduled later, claimed
        already, settled)."""
        found = self._claim(now, 1, member(integration, message_id))
        return found[0].claim if found else None

    def _claim(self, now: float | None, limit: int, one: str) -> list[Claimed]:
        now = time.time() if now is None else now
        flat = self._scripts.run(
            "claim",
            [OUTBOX, SEQUENCE],
            [repr(now), now + self.timing.queued_deadline_seconds, limit, RECORD_PREFIX, one],
        )
        return [
            Claimed(*split_member(m), claim) for m, claim in zip(flat[::2], flat[1::2], strict=True)
        ]

    def make_due(self, integration: str, message_id: str, at: float) -> None:
        """Put a claimed delivery whose push task could not be sent back in line."""
        self.redis.zadd(OUTBOX, {member(integration, message_id): at}, xx=True)

    def take(
        self, integration: str, message_id: str, claim: str, push_seconds: float
    ) -> TakenPush | None:
        """Become the pusher of this claim; None when the claim is stale or the delivery settled.
        If this pusher dies, the delivery is claimed again ``push_seconds`` (+30 s) from now."""
        now = time.time()
        found = self._scripts.run(
            "take",
            [record_key(integration, message_id), OUTBOX, parts_key(integration, message_id)],
            [claim, now + push_seconds + 30, member(integration, message_id), repr(now)],
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
            self._scripts.run(
                "part_delivered",
                [record_key(integration, message_id), OUTBOX],
                [claim, part + 1, time.time() + push_seconds + 30, member(integration, message_id)],
            )
        )

    def delivered(self, integration: str, message_id: str, claim: str) -> bool:
        return bool(
            self._scripts.run(
                "delivered",
                [
                    record_key(integration, message_id),
                    OUTBOX,
                    metrics.DELIVERIES.key,
                    metrics.OUTBOX_READY,
                    parts_key(integration, message_id),
                ],
                [
                    claim,
                    repr(time.time()),
                    member(integration, message_id),
                    self.timing.record_ttl_seconds,
                    metrics.DELIVERIES.field(integration, "delivered"),
                ],
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
    ) -> Literal["retrying", "dead", "stale"]:
        """Count a failed push; schedule the next at ``next_at``, or make it dead (None)."""
        outcome = self._scripts.run(
            "failed",
            [
                record_key(integration, message_id),
                OUTBOX,
                DEAD_DELIVERIES,
                metrics.DELIVERIES.key,
                metrics.OUTBOX_READY,
                parts_key(integration, message_id),
            ],
            [
                claim,
                repr(time.time()),
                member(integration, message_id),
                error,
                "" if next_at is None else repr(next_at),
                self.timing.record_ttl_seconds,
                "1" if timed_out else "0",
                metrics.DELIVERIES.field(integration, "retrying"),
                metrics.DELIVERIES.field(integration, "dead"),
            ],
        )
        return {0: "stale", 1: "retrying", 2: "dead"}[int(outcome)]  # type: ignore[return-value]

    def redeliver(self, integration: str, message_id: str) -> bool:
        """Put a dead delivery back in the outbox, due now: a replay."""
        return bool(
            self._scripts.run(
                "redeliver",
                [
                    record_key(integration, message_id),
                    OUTBOX,
                    DEAD_DELIVERIES,
                    metrics.OUTBOX_READY,
                    parts_key(integration, message_id),
                ],
                [repr(time.time()), member(integration, message_id)],
            )
        )
