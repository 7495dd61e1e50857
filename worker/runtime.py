"""Process-wide resources, created once per process on first use: the Redis pool and records."""

from __future__ import annotations

from functools import lru_cache

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.outbox import Outbox
from worker.records import Records, Timing
from worker.settings import Settings, settings


def redis_client(
    url: str, *, socket_timeout: float = 5.0, max_connections: int = 50
) -> redis.Redis:
    """Fail fast: the receiver answers 503 rather than hanging when Redis is away, and Celery's
    own retries (counted, bounded) are the only retries.

    The pool is bounded and blocking: a burst of requests (hundreds of greenlets in the
    receiver) waits up to 5 s for one of ``max_connections`` connections instead of opening one
    each at once, which would make Redis connects time out and answer the burst 503."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5.0,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=15,
    )
    return redis.Redis(connection_pool=pool)


def timing(s: Settings) -> Timing:
    return Timing(
        lease_seconds=s.lease_seconds,
        record_ttl_seconds=s.record_ttl_seconds,
        memory_ttl_seconds=s.handler_memory_ttl_seconds,
    )


@lru_cache(maxsize=1)
def records() -> Records:
    s = settings()
    return Records(redis_client(s.redis_url, max_connections=s.redis_max_connections), timing(s))


@lru_cache(maxsize=1)
def outbox() -> Outbox:
    return Outbox(records().redis, records().timing)
