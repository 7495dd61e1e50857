"""The broker transport's client reuse (``worker.tasks.broker``), against a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kombu import Connection

from tests.support.stack import RedisServer


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    running = RedisServer().start()
    yield running
    running.stop()


def test_a_channel_makes_one_client_per_pool_and_a_new_one_with_a_new_pool(
    redis_server: RedisServer,
) -> None:
    with Connection(redis_server.url, transport="worker.tasks.broker:Transport") as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        channel._pool = None  # what kombu does when it drops the pool (reconnecting)
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool
            assert third.ping()


def test_acks_through_the_shared_client_leave_nothing_unacknowledged(
    redis_server: RedisServer,
) -> None:
    with Connection(redis_server.url, transport="worker.tasks.broker:Transport") as connection:
        queue = connection.SimpleQueue("broker-reuse")
        for number in range(20):
            queue.put({"n": number})
        for _ in range(20):
            queue.get(timeout=5).ack()
        queue.close()
    client = redis_server.client()
    assert client.hlen("unacked") == 0
    assert client.zcard("unacked_index") == 0
    assert client.llen("broker-reuse") == 0
