"""Fixtures for pipeline tests: a real redis-server, gunicorn, Celery workers, and HTTP servers
standing in for the provider and the hub."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, serving

HUB_TOKEN = "hub-secret-token"
HUB_STORE = "test-store"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


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


def stack_env(provider: ProviderServer, hub: HubServer) -> dict[str, str]:
    return {
        "ACME_API_URL": provider.url,
        "ACME_API_KEY": ProviderServer.API_KEY,
        "HUB_PUSH_URL": f"{hub.url}/push",
        "HUB_ACCESS_TOKEN": HUB_TOKEN,
        "HUB_STORE": HUB_STORE,
    }


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, provider: ProviderServer, hub: HubServer) -> Iterator[Stack]:
    """Receiver and one worker, shared by a module's tests (each test uses its own ids)."""
    with serving(redis_server, stack_env(provider, hub)) as running:
        yield running
