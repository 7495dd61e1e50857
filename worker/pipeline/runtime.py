"""Process-wide resources, created once per process on first use: the Redis pool and the store."""

from __future__ import annotations

from functools import lru_cache

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from worker.basics.settings import Sentinels, Settings, sentinels_in, settings
from worker.store.bundle import Store
from worker.store.outbox import Outbox
from worker.store.record import Timing


def redis_client(
    url: str,
    *,
    socket_timeout: float = 5.0,
    max_connections: int = 50,
    master: str = "mymaster",
) -> redis.Redis:
    """Fail fast: the receiver answers 503 rather than hanging when Redis is away, and Celery's
    own retries (counted, bounded) are the only retries.

    The pool is bounded and blocking: a burst of requests (hundreds of greenlets in the
    receiver) waits up to 5 s for one of ``max_connections`` connections instead of opening one
    each at once, which would make Redis connects time out and answer the burst 503.

    A ``sentinel://`` URL gives a client of the master named ``master``: every new connection
    asks the sentinels where the master is, so after a failover (the old master's connections
    fail, or it answers READONLY as a replica) the next command goes to the new one."""
    options = {
        "max_connections": max_connections,
        "timeout": 5.0,
        "decode_responses": True,
        "socket_connect_timeout": 1.0,
        "socket_timeout": socket_timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 15,
    }
    if url.startswith("sentinel://"):
        return master_client(sentinels_in(url, master), **options)
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(url, **options))


class SentinelBlockingPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's Sentinel pool (connections follow the master), bounded and blocking like the
    plain client's pool."""


def master_client(where: Sentinels, **options: object) -> redis.Redis:
    """A client of the current master behind ``where``'s sentinels (asked with short timeouts
    and no retries: one sentinel that is down costs a second, and the next one is asked)."""
    sentinel = Sentinel(
        list(where.addresses),
        sentinel_kwargs={
            "socket_connect_timeout": 1.0,
            "socket_timeout": 1.0,
            "retry": Retry(NoBackoff(), 0),
        },
    )
    return sentinel.master_for(
        where.master,
        connection_pool_class=SentinelBlockingPool,
        db=where.db,
        password=where.password,
        **options,
    )


def timing(s: Settings) -> Timing:
    return Timing(
        queued_deadline_seconds=s.queued_deadline_seconds,
        lease_seconds=s.lease_seconds,
        record_ttl_seconds=s.record_ttl_seconds,
        memory_ttl_seconds=s.handler_memory_ttl_seconds,
    )


@lru_cache(maxsize=1)
def db() -> Store:
    """The process's store (its stores by concern on one Redis pool)."""
    s = settings()
    client = redis_client(
        s.redis_url, max_connections=s.redis_max_connections, master=s.redis_sentinel_master
    )
    return Store.on(client, timing(s))


def outbox() -> Outbox:
    return db().outbox
