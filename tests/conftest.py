"""Shared fixtures for fast tests: the receiver over fakeredis, with a publisher that records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from flask.testing import FlaskClient

from endpoint.app import create_app
from tests.support.kinds import forbid_processes, kind_of, processes_forbidden
from tests.support.servers import HubServer
from worker.basics.settings import Settings
from worker.integrations.registry import Handler, Route
from worker.store.bundle import Store
from worker.store.record import Timing

ENDPOINT_KEY = "unit-endpoint-key"


class Publisher:
    """Stands in for the broker in receiver tests: records what would be published."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []
        self.fail = False

    def __call__(self, handler: Handler | Route, message_id: str, queued_at: float = 0.0) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.published.append((handler.task_name, message_id))


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def db(redis_client: fakeredis.FakeRedis) -> Store:
    return Store.on(redis_client, Timing())


@pytest.fixture
def publisher() -> Publisher:
    return Publisher()


def unit_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "endpoint_key": ENDPOINT_KEY,
        "shiphub_secret_key": "4xK0gvQb0Z1m2Ab3yQ9cJ7dXo8hS5kLr6tW1uE2iV3c=",
        "shiphub_integration_modules": "tests.support.acme",
        "max_body_bytes": 4096,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def client(db: Store, publisher: Publisher) -> Iterator[FlaskClient]:
    app = create_app(unit_settings(), db, publisher)
    with app.test_client() as test_client:
        yield test_client


def auth(**extra: str) -> dict[str, str]:
    return {"X-Hub-Token": ENDPOINT_KEY, **extra}


def settle(
    db: Store,
    message_id: str,
    status: str,
    answer: dict[str, Any] | None = None,
    *,
    integration: str = "acme",
    push: bool = False,
    error: str | None = None,
) -> str:
    """Do what a worker does to a recorded message: begin it (taking its lease), then finish."""
    lease = f"lease-{message_id}"
    db.attempts.begin(integration, message_id, lease)
    return db.attempts.finish(
        integration,
        message_id,
        status,  # type: ignore[arg-type]
        answer or {"message_id": message_id},
        error=error,
        cursor={},
        push=push,
        lease_token=lease,
    )


@pytest.fixture(autouse=True)
def every_push_verified() -> Iterator[None]:
    """Fail the test in whose time a hub stub (``HubServer``) received a push whose signatures
    did not verify (the classic one, or Standard Webhooks' with the reference library): the
    push was refused 401, which a test waiting for its answer might otherwise only time out on.
    """
    before = {id(hub): len(hub.bad_signatures) for hub in HubServer.running}
    yield
    for hub in list(HubServer.running):
        with hub.lock:
            bad = hub.bad_signatures[before.get(id(hub), 0) :]
        assert not bad, f"pushes to the hub stub failed verification: {bad}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """When a test fails, attach the logs of the processes it used (anything with ``logs()``)."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if callable(getattr(value, "logs", None)):
            report.sections.append((f"logs of {name}", value.logs()))


def pytest_configure(config: pytest.Config) -> None:
    if processes_forbidden():
        forbid_processes()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its kind (unit, pipeline or browser) by the rule in
    tests/support/kinds.py: a new test is classified by what it uses, without a hand-written
    mark. ``bin/test-fast`` runs ``-m "unit and not slow"``; ``bin/test`` runs every kind."""
    for item in items:
        marked = {mark.name for mark in item.iter_markers()}
        kind = kind_of(Path(item.path), getattr(item, "fixturenames", ()), marked)
        if kind not in marked:
            item.add_marker(kind)
