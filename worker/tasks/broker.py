"""The broker: Celery's Redis transport (kombu), and what we rely on it holding.

**A transport that survives a Redis restart.** kombu 5.7's Redis channel can crash the worker
while Celery's consumer tears down a broken connection: ``Connection.collect()`` closes the
channels (a pending BRPOP read raises ``ConnectionError``, so the task channel is never marked
closed) and then detaches the transport's client; ``Connection.close()`` then closes that channel
again, its restore of unacknowledged messages reaches ``_connparams`` with no client, and the
``AttributeError`` ("'NoneType' object has no attribute 'hostname'") is not a connection error, so
the worker exits with "Unrecoverable error". This happens whenever Redis goes away with a late-
acked task in flight. ``Channel`` below makes a closed connection a connection error (which every
teardown path ignores) and lets ``close()`` finish when the pending read fails. Upstream:
celery/kombu#582 (same error), #1733 (the BRPOP read in ``close()``); no release fixes it.
Selected with ``broker_transport = "worker.tasks.broker:Transport"``; ``broker_url`` stays
``redis://...``.

**Behind Redis Sentinel** (``sentinel://...;sentinel://...``) the same fix rides on kombu's
``SentinelChannel`` (``SentinelTransport``). kombu moves a failing connection on to the next
``;`` part and then picks the transport by that part's scheme, which would be kombu's own
``sentinel`` transport without the fix from the second connection error on; so importing this
module makes the ``sentinel`` scheme name ours.

**What the watchdog reads.** kombu keeps a queue as a Redis list (oldest message at the tail)
and a worker's reserved, unacknowledged messages in the ``unacked`` hash (delivery tag → message)
and ``unacked_index`` zset (delivery tag → when reserved). ``BrokerView`` reads them to tell a
queued message from a lost one (``worker.pipeline.watchdog``).
"""

from __future__ import annotations

import json
from queue import Empty

import kombu.transport
import redis
from kombu.transport import redis as kombu_redis

# Headers every message task carries (``worker.tasks.app.publish``).
QUEUED_AT_HEADER = "shiphub_queued_at"
MESSAGE_HEADER = "shiphub_message"

# kombu's Redis transport keys (kombu.transport.redis.Channel defaults).
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"


class BrokerView:
    """What kombu's Redis transport holds in the same Redis as the records."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._oldest: dict[str, float | None] = {}
        self._reserved: dict[str, float] | None = None

    def oldest_waiting(self, queue: str) -> float | None:
        """When the oldest message waiting in ``queue`` was published (None: the queue is empty;
        0.0: a message without our stamp, which counts as older than anything)."""
        if queue not in self._oldest:
            raw = self.redis.lindex(queue, -1)
            self._oldest[queue] = None if raw is None else _headers(raw).get(QUEUED_AT_HEADER, 0.0)
            self._reserved = None  # read again after the queue: a message taken off it meanwhile
        return self._oldest[queue]

    def reserved_since(self, who: str) -> float | None:
        """When a worker reserved a broker message for ``who`` (the latest such time), if any;
        read after the queues looked at so far (a worker takes a message off its queue first,
        then records it reserved)."""
        if self._reserved is None:
            since = dict(self.redis.zrange(UNACKED_INDEX, 0, -1, withscores=True))
            self._reserved = {}
            for tag, raw in self.redis.hgetall(UNACKED).items():
                try:
                    payload = json.loads(raw)[0]
                except (ValueError, IndexError, TypeError):
                    continue
                name = payload.get("headers", {}).get(MESSAGE_HEADER) if payload else None
                if name:
                    self._reserved[name] = max(self._reserved.get(name, 0.0), since.get(tag, 0.0))
        return self._reserved.get(who)


def _headers(raw: str | bytes) -> dict:
    try:
        return json.loads(raw).get("headers") or {}
    except (ValueError, AttributeError):
        return {}


class _ClosedIsAConnectionError:
    """The fix, for kombu's Redis channels (plain and Sentinel)."""

    connection: kombu_redis.Transport
    _in_poll: bool
    connection_errors: tuple[type[BaseException], ...]
    _client_for_pool: tuple[redis.ConnectionPool, redis.Redis] | None = None

    def _connparams(self, asynchronous: bool = False) -> dict:
        transport = self.connection
        if transport is None or transport.client is None:
            raise redis.ConnectionError("the broker channel was used after its connection closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]

    def _create_client(self, asynchronous: bool = False) -> redis.Redis:
        """One client per connection pool: kombu makes a new one for each call that needs a
        client (every ack), and making a redis-py client costs more than the command it sends.
        The client is thread-safe: each command takes a connection from the pool."""
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool  # type: ignore[attr-defined]
        if self._client_for_pool is None or self._client_for_pool[0] is not pool:
            self._client_for_pool = (pool, super()._create_client())  # type: ignore[misc]
        return self._client_for_pool[1]

    def close(self) -> None:
        if self._in_poll:  # read the pending BRPOP reply, tolerating a broker that is gone
            try:
                self._brpop_read()  # type: ignore[attr-defined]
            except (Empty, *self.connection_errors):
                pass
        super().close()  # type: ignore[misc]


class Channel(_ClosedIsAConnectionError, kombu_redis.Channel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(_ClosedIsAConnectionError, kombu_redis.SentinelChannel):
    pass


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


kombu.transport.TRANSPORT_ALIASES["sentinel"] = f"{__name__}:SentinelTransport"
kombu.transport._transport_cache.pop("sentinel", None)
