"""Redis behind Sentinel on loopback, with real processes: a primary, a replica and three
sentinels (``redis-server <conf> --sentinel``), plus the provider and hub stand-ins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.sentinel.nodes import RedisNode
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import wait_until

MASTER = "mymaster"
HUB_TOKEN = "hub-secret-token"
HUB_STORE = "test-store"


class SentinelGroup:
    """A primary, its replica and three sentinels watching them (quorum 2; down after 1 s)."""

    def __init__(self) -> None:
        self.primary = RedisNode()
        self.replica = RedisNode("--replicaof", "127.0.0.1", str(self.primary.port))
        conf = (
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 4000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        self.sentinels = [RedisNode(sentinel_conf=conf) for _ in range(3)]
        self.nodes = [self.primary, self.replica]

    def start(self) -> SentinelGroup:
        try:
            for node in [*self.nodes, *self.sentinels]:
                node.start()
            wait_until(self.replicated, timeout=30)
            wait_until(lambda: self.sentinels_agree(2), timeout=30)  # each sees the other two
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels) + "/0"

    def master_port(self) -> int:
        """Where the sentinels say the master is now."""
        for sentinel in self.sentinels:
            try:
                _, port = sentinel.client().sentinel_get_master_addr_by_name(MASTER)
                return int(port)
            except redis.RedisError:
                continue
        raise AssertionError("no sentinel answers")

    def node_on(self, port: int) -> RedisNode:
        return next(node for node in self.nodes if node.port == port)

    def replicated(self) -> bool:
        """The master has a replica in sync."""
        info = self.node_on(self.master_port()).client().info("replication")
        return any(
            isinstance(v, dict) and v.get("state") == "online"
            for k, v in info.items()
            if k.startswith("slave")
        )

    def sentinels_agree(self, others: int) -> bool:
        return all(
            int(s.client().sentinel_master(MASTER)["num-other-sentinels"]) >= others
            for s in self.sentinels
        )

    def stop(self) -> None:
        for node in [*self.sentinels, *self.nodes]:
            node.stop()


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    running = SentinelGroup().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def provider() -> Iterator[ProviderServer]:
    server = ProviderServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def hub() -> Iterator[HubServer]:
    server = HubServer(HUB_TOKEN, HUB_STORE)
    yield server
    server.close()
