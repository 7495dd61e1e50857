"""What a page of the message tabs costs Redis: the same whatever the history (thousands of
messages that succeeded, failed long ago and were replayed), counted by a real redis-server
(``INFO commandstats``) for every tab and a search."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from endpoint.app import create_app
from tests.conftest import Publisher, unit_settings
from tests.support.records import accept
from tests.support.stack import RedisServer
from tests.test_ops import OPS, OPS_PASSWORD
from worker.pipeline.runtime import redis_client
from worker.store.bundle import Store
from worker.store.record import Timing

pytestmark = pytest.mark.pipeline  # a redis-server started by this module's fixture

TABS = ("queued", "processing", "retrying", "failed", "dead", "pushes", "dead-pushes")


@pytest.fixture
def served() -> Iterator[tuple[FlaskClient, Store, RedisServer]]:
    server = RedisServer().start()
    try:
        db = Store.on(redis_client(server.url), Timing())
        app = create_app(unit_settings(ops_password=OPS_PASSWORD), db, Publisher())
        with app.test_client() as client:
            yield client, db, server
    finally:
        server.stop()


def settle(db: Store, message_id: str, status: str, store: str = "shop") -> None:
    accept(db, "acme", message_id, "fp", {"message": "order:ready", "store": store}, time.time())
    if status == "queued":
        return
    db.attempts.begin("acme", message_id, f"lease-{message_id}")
    db.attempts.finish(
        "acme",
        message_id,
        status,  # type: ignore[arg-type]
        {"message_id": message_id},  # type: ignore[arg-type]
        error="refused" if status != "succeeded" else None,
        cursor={},
        push=False,
        lease_token=f"lease-{message_id}",
    )


def costs(client: FlaskClient, server: RedisServer) -> dict[str, dict[str, int]]:
    """The commands Redis ran for a page of each tab (and a search), by name."""
    redis = server.client()
    found = {}
    for query in [f"tab={t}&limit=10&store=shop" for t in TABS] + ["q=some-id"]:
        redis.config_resetstat()
        assert client.get(f"/ops/messages?{query}", headers=OPS).status_code == 200
        stats = redis.info("commandstats")
        found[query] = {
            name.removeprefix("cmdstat_"): int(s["calls"])
            for name, s in stats.items()
            if name not in ("cmdstat_config", "cmdstat_info")
        }
    return found


def test_a_tab_page_costs_the_same_whatever_the_history(
    served: tuple[FlaskClient, Store, RedisServer],
) -> None:
    client, db, server = served
    for n in range(20):
        settle(db, f"failed-{n}", "failed")
        settle(db, f"queued-{n}", "queued")
    client.get("/ops/messages", headers=OPS)  # the process's first use loads the Lua scripts
    before = costs(client, server)

    for n in range(3000):
        settle(db, f"history-{n}", "succeeded", store=f"shop-{n % 7}")
    after = costs(client, server)

    assert after == before
    for query, calls in after.items():
        assert not {"scan", "keys", "hscan", "zscan"} & set(calls), (query, calls)
        # a record per row (of 10), and the polled stores (the store filter offers them)
        assert calls.get("hgetall", 0) <= 11, calls
        assert sum(calls.values()) <= 80, (query, sorted(calls.items()))
