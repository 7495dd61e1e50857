"""``GET /messages``: failed, dead and retrying messages listed by state, integration and store,
page by page, on the real pieces (gunicorn, a Celery worker, redis-server, the Acme provider over
HTTP). Each state has an index in Redis kept in step with the record's state changes, so an
entry leaves when its record leaves the state (a replay that succeeds, a retry that begins) or
expires, and a page costs the same however much history Redis holds."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.pipeline.conftest import stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.records import accept
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, serving, wait_until
from worker.pipeline.runtime import redis_client
from worker.store.bundle import Store
from worker.store.record import Timing

# A provider's Retry-After is honoured up to RETRY_MAX_SECONDS: a message answered 503 with
# "Retry-After: 15" stays retrying for 15 s, while one answered 503 alone is dead within a
# second or two (TASK_MAX_ATTEMPTS=3, RETRY_BASE_SECONDS=0.2).
HELD_SECONDS = 15
REFUSED = {"status": 422, "errors": ["Acme refused: unknown SKU"]}


@pytest.fixture(scope="module")
def listing_stack(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> Iterator[Stack]:
    with serving(redis_server, {**stack_env(provider, hub), "RETRY_MAX_SECONDS": "60"}) as running:
        yield running


def a_store() -> str:
    return f"shop-{uuid.uuid4().hex[:8]}"


def send(stack: Stack, provider: ProviderServer, store: str, *actions: dict[str, Any]) -> str:
    """An Acme order for ``store`` whose provider answers ``actions`` in turn (then 201)."""
    body = order_message()
    provider.script(body["payload"]["order"]["number"], *actions)
    assert stack.post("/acme/send_order", body, store=store).status_code == 200
    return body["message_id"]


def listing(stack: Stack, **query: Any) -> requests.Response:
    return requests.get(f"{stack.url}/messages", params=query, headers=stack.headers(), timeout=10)


def listed(stack: Stack, **query: Any) -> list[dict[str, Any]]:
    response = listing(stack, **query)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["message_id"] for row in rows]


def test_failed_dead_and_retrying_messages_are_listed_by_state_integration_and_store(
    listing_stack: Stack, provider: ProviderServer
) -> None:
    stack, shop, other = listing_stack, a_store(), a_store()
    failed = []
    for _ in range(3):  # one after the other: the last is the newest failure
        failed.append(send(stack, provider, shop, REFUSED))
        stack.wait_status("acme", failed[-1], "failed")
    elsewhere = send(stack, provider, other, REFUSED)
    dead = send(stack, provider, shop, *[{"status": 503, "errors": ["maintenance"]}] * 3)
    succeeded = send(stack, provider, shop)
    stack.wait_status("acme", elsewhere, "failed")
    stack.wait_status("acme", dead, "dead")
    stack.wait_status("acme", succeeded, "succeeded")
    retrying = send(stack, provider, shop, {"status": 503, "retry_after": HELD_SECONDS})
    stack.wait_status("acme", retrying, "retrying")

    what_failed = listed(stack, store=shop)  # by default: failed and dead, newest first
    only_failed = listed(stack, store=shop, status="failed")
    still_trying = listed(stack, store=shop, status="retrying")
    everything = listed(stack, store=shop, status="failed,dead,retrying", integration="acme")

    assert set(ids(what_failed)) == {*failed, dead}
    assert ids(only_failed) == ids(sorted(only_failed, key=lambda r: r["since"], reverse=True))
    assert set(ids(only_failed)) == set(failed)
    newest = only_failed[0]
    assert newest["message_id"] == failed[2]
    assert (newest["integration"], newest["store"], newest["status"]) == ("acme", shop, "failed")
    assert newest["message"] == "order:ready" and newest["service"] == "send_order"
    assert newest["attempts"] == 1 and "unknown SKU" in newest["last_error"]
    assert newest["since"].endswith("+00:00")
    (trying,) = still_trying
    assert (trying["message_id"], trying["status"]) == (retrying, "retrying")
    assert trying["next_attempt_at"] is not None and "503" in trying["last_error"]
    assert set(ids(everything)) == {*failed, dead, retrying}
    assert ids(listed(stack, store=other, status="failed")) == [elsewhere]
    assert listed(stack, store=shop, integration="dotcom") == []
    assert succeeded not in ids(everything)
    across_stores = ids(listed(stack, status="failed", integration="acme", limit=500))
    assert {*failed, elsewhere} <= set(across_stores)


def test_pages_follow_each_other_by_cursor_without_gaps_or_repeats(
    listing_stack: Stack, provider: ProviderServer
) -> None:
    stack, shop = listing_stack, a_store()
    sent = [send(stack, provider, shop, REFUSED) for _ in range(5)]
    for message_id in sent:
        stack.wait_status("acme", message_id, "failed")

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query = {"store": shop, "status": "failed", "limit": 2}
        page = listing(stack, **query, **({"cursor": cursor} if cursor else {})).json()
        pages.append(ids(page["messages"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [len(page) for page in pages] == [2, 2, 1]
    walked = [message_id for page in pages for message_id in page]
    assert sorted(walked) == sorted(sent)
    assert walked == ids(listed(stack, store=shop, status="failed"))


def test_an_entry_leaves_its_listing_when_its_record_leaves_the_state(
    listing_stack: Stack, provider: ProviderServer
) -> None:
    stack, shop = listing_stack, a_store()
    failed = send(stack, provider, shop, REFUSED)
    retrying = send(stack, provider, shop, {"status": 503, "retry_after": HELD_SECONDS})
    stack.wait_status("acme", failed, "failed")
    stack.wait_status("acme", retrying, "retrying")
    assert ids(listed(stack, store=shop, status="failed")) == [failed]
    assert ids(listed(stack, store=shop, status="retrying")) == [retrying]

    replayed = requests.post(
        f"{stack.url}/messages/acme/{failed}/replay", headers=stack.headers(), timeout=10
    )
    assert replayed.status_code == 200, replayed.text
    stack.wait_status("acme", failed, "succeeded")
    stack.wait_status("acme", retrying, "succeeded", timeout=HELD_SECONDS + 30)

    assert listed(stack, store=shop, status="failed,dead,retrying") == []


def test_a_bad_query_is_refused_naming_what_is_wrong(listing_stack: Stack) -> None:
    cases = [
        ({"status": "lost"}, 400, "status"),
        ({"status": "failed,"}, 400, "status"),
        ({"limit": "0"}, 400, "limit"),
        ({"limit": "many"}, 400, "limit"),
        ({"limit": "501"}, 400, "limit"),
        ({"cursor": "not-a-cursor"}, 400, "cursor"),
        ({"store": "a:b"}, 400, "store"),
        ({"integration": "nope"}, 404, "nope"),
    ]
    for query, status, named in cases:
        response = listing(listing_stack, **query)
        assert response.status_code == status, (query, response.text)
        (note,) = response.json()["notifications"]
        assert note["level"] == "error" and named in note["description"], (query, note)

    anonymous = requests.get(f"{listing_stack.url}/messages", timeout=10)
    assert anonymous.status_code == 401


@pytest.fixture
def short_lived(provider: ProviderServer, hub: HubServer) -> Iterator[Stack]:
    """Records kept 3 s, on a Redis of its own (no other worker takes its messages)."""
    env = {**stack_env(provider, hub), "RECORD_TTL_SECONDS": "3", "WATCHDOG_INTERVAL_SECONDS": "1"}
    with serving(None, env) as running:
        yield running


def test_an_entry_leaves_with_its_expired_record(
    short_lived: Stack, provider: ProviderServer, hub: HubServer
) -> None:
    shop = a_store()
    failed = send(short_lived, provider, shop, REFUSED)
    short_lived.wait_status("acme", failed, "failed")
    hub.wait_for(failed)  # delivered: the record now expires RECORD_TTL_SECONDS later
    assert ids(listed(short_lived, store=shop, status="failed")) == [failed]

    wait_until(lambda: listed(short_lived, store=shop, status="failed") == [], timeout=20)

    # The index entries themselves are gone (taken off by the workers' sweep), not only hidden.
    client = short_lived.redis.client()
    wait_until(
        lambda: (
            not any(
                client.zscore(key, f"acme:{shop}:{failed}") is not None
                for key in client.keys("shiphub:state:failed:*")
            )
        ),
        timeout=20,
    )


@pytest.fixture
def receiver_alone() -> Iterator[tuple[Stack, RedisServer]]:
    """A receiver on a Redis of its own and no worker: every command Redis counts is the
    receiver's."""
    server = RedisServer().start()
    stack = Stack(server, {})
    try:
        stack.start_web()
        yield stack, server
    finally:
        stack.stop()
        server.stop()


def test_a_page_costs_the_same_whatever_the_history(
    receiver_alone: tuple[Stack, RedisServer],
) -> None:
    """Months of history (thousands of records, most succeeded, some failed long ago and
    replayed) do not make a page dearer: it reads the state's index and one record per row."""
    stack, server = receiver_alone
    db = Store.on(redis_client(server.url), Timing())
    client = server.client()
    now = time.time()

    def settle(message_id: str, status: str) -> None:
        accept(db, "acme", message_id, "fp", {"message": "order:ready", "store": "s"}, now)
        db.attempts.begin("acme", message_id, f"lease-{message_id}")
        db.attempts.finish(
            "acme",
            message_id,
            status,
            {"message_id": message_id},  # type: ignore[arg-type]
            error="refused" if status != "succeeded" else None,
            cursor={},
            push=False,
            lease_token=f"lease-{message_id}",
        )

    for n in range(3000):
        settle(f"history-{n}", "succeeded")
    for n in range(30):
        settle(f"failed-{n}", "failed")

    # The receiver's first use of Redis loads the store's Lua scripts, once per process (29
    # SCRIPT LOADs): not a page's cost, so a first page is asked for before counting.
    listed(stack, status="failed", limit=10)
    client.config_resetstat()
    page = listed(stack, status="failed", limit=10)
    stats = client.info("commandstats")

    assert len(page) == 10
    calls = {name.removeprefix("cmdstat_"): found["calls"] for name, found in stats.items()}
    assert not {"scan", "keys", "hscan", "zscan"} & set(calls), calls
    assert calls.get("hgetall", 0) <= 11, calls
    assert sum(calls.values()) <= 40, sorted(calls.items())
