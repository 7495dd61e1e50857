"""Replicas: with ``REDIS_MIN_REPLICAS_ACKED`` set, the receiver answers 200 only after that many
replicas have the message's record, so that a failover to one of them (Redis Sentinel) loses
nothing that was acknowledged. Workers wait for them too before they push an answer (a failover
that lost the answer would have the message handled and pushed again) and after a push (it would
be pushed again).

Redis replicates asynchronously: a primary that dies can take its last writes with it, and the
replica promoted in its place never had them. ``WAIT n timeout`` blocks until ``n`` replicas have
acknowledged everything the *calling connection* wrote, so ``confirm`` writes a small mark on the
connection it waits on, in the same round trip: the replication stream is in order, so a replica
that has the mark has every write the primary made before it, whichever connection of the pool
made them. That is also what makes a duplicate wait: the hub's retry of a message answered 503
(recorded on the primary, not yet on a replica) writes nothing new, yet is answered 200 only once
a replica has the record it finds.
"""

from __future__ import annotations

import logging

import redis

from worker.basics.settings import settings
from worker.store.schema import REPLICATED

log = logging.getLogger(__name__)


class NotOnReplicas(redis.RedisError):
    """Fewer replicas than required acknowledged the writes in time: the caller answers 503, as
    for Redis being unavailable (``worker.pipeline.intake`` turns every ``RedisError`` into
    that)."""


def confirm(
    client: redis.Redis, replicas: int | None = None, timeout_seconds: float | None = None
) -> None:
    """Return once ``replicas`` replicas (``REDIS_MIN_REPLICAS_ACKED``; 0: at once) have every
    write the primary made so far; raise ``NotOnReplicas`` when they do not within
    ``timeout_seconds`` (``REDIS_REPLICAS_TIMEOUT_SECONDS``)."""
    wanted = settings().redis_min_replicas_acked if replicas is None else replicas
    if wanted <= 0:
        return
    seconds = (
        settings().redis_replicas_timeout_seconds if timeout_seconds is None else timeout_seconds
    )
    with client.pipeline(transaction=False) as pipe:
        pipe.incr(REPLICATED)  # one small key, always the same
        pipe.wait(wanted, max(1, round(seconds * 1000)))  # 0 would mean "forever"
        _, acknowledged = pipe.execute()
    if acknowledged < wanted:
        raise NotOnReplicas(f"{acknowledged} of {wanted} replicas acknowledged in {seconds:g} s")


def replicated(client: redis.Redis, what: str) -> bool:
    """``confirm`` for a worker, where nobody waits for a 200: True once enough replicas have
    every write so far (at once without ``REDIS_MIN_REPLICAS_ACKED``); False (logged) when they
    do not in time, or Redis is away."""
    try:
        confirm(client)
    except redis.RedisError as exc:
        log.warning("%s: not on enough Redis replicas yet (%s)", what, exc)
        return False
    return True
