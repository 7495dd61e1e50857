"""``worker.store.replication.confirm`` against a real primary and replica: it returns once the
replica has every write, also writes made on another connection (a duplicate's record), and raises
when the replica does not acknowledge in time."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import redis

from tests.sentinel.nodes import RedisNode
from tests.support.stack import wait_until
from worker.pipeline.runtime import redis_client
from worker.store.replication import NotOnReplicas, confirm


@pytest.fixture
def pair() -> Iterator[tuple[RedisNode, RedisNode]]:
    primary = RedisNode()
    replica = RedisNode("--replicaof", "127.0.0.1", str(primary.port))
    try:
        primary.start()
        replica.start()
        wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up")
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def test_confirm_returns_once_the_replica_has_what_another_connection_wrote(
    pair: tuple[RedisNode, RedisNode],
) -> None:
    primary, replica = pair
    writer, confirmer = primary.client(), redis_client(f"redis://127.0.0.1:{primary.port}/0")
    for n in range(50):
        writer.set(f"record:{n}", "x" * 10_000)

        confirm(confirmer, replicas=1, timeout_seconds=4)

        assert replica.client().get(f"record:{n}") == "x" * 10_000


def test_a_replica_that_does_not_acknowledge_in_time_makes_confirm_raise_until_it_does(
    pair: tuple[RedisNode, RedisNode],
) -> None:
    primary, replica = pair
    writer, client = primary.client(), redis_client(f"redis://127.0.0.1:{primary.port}/0")
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)  # alive and connected, acknowledging nothing
    try:
        writer.set("record:late", "recorded on the primary only")  # another connection
        with pytest.raises(NotOnReplicas, match="0 of 1 replicas"):
            confirm(client, replicas=1, timeout_seconds=0.3)
        assert isinstance(NotOnReplicas("x"), redis.RedisError)  # intake answers it 503
    finally:
        replica.process.send_signal(signal.SIGCONT)

    confirm(client, replicas=1, timeout_seconds=4)  # the hub's retry: a duplicate, no new write

    assert replica.client().get("record:late") == "recorded on the primary only"


def test_more_replicas_than_there_are_is_never_confirmed(
    pair: tuple[RedisNode, RedisNode],
) -> None:
    primary, _ = pair

    with pytest.raises(NotOnReplicas, match="1 of 2 replicas"):
        confirm(redis_client(f"redis://127.0.0.1:{primary.port}/0"), 2, 0.2)


def test_with_no_replicas_required_confirm_does_not_touch_redis() -> None:
    unreachable = redis_client(f"redis://127.0.0.1:{RedisNode().port}/0")

    confirm(unreachable, replicas=0, timeout_seconds=1)
