"""Each piece of work is published once, however long it waits in its queue, and published again
only when the broker lost it (real redis-server, real Celery workers; counted as Redis sees the
pushes onto the queues' lists)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.pipeline.conftest import stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.published import Published
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, wait_until
from worker.store.schema import DUE, OUTBOX, WATCH, record_key

# A task not started within a second is looked for in the broker: the waits below are many
# such seconds long.
DEADLINE = 1.0
SETTINGS = {
    "QUEUED_DEADLINE_SECONDS": str(DEADLINE),
    "WATCHDOG_INTERVAL_SECONDS": "1",
    "RETRY_BASE_SECONDS": "5",
    "RETRY_MAX_SECONDS": "5",
}


@pytest.fixture
def own(provider: ProviderServer, hub: HubServer) -> Iterator[tuple[Stack, Published]]:
    """A stack on a Redis of its own (the queues are counted exactly), with a worker that
    consumes none of them: its scheduler ticks and sweeps while the work waits."""
    redis_server = RedisServer().start()
    published = Published(redis_server.client(), "acme", "hub")
    stack = Stack(redis_server, {**stack_env(provider, hub), **SETTINGS})
    try:
        stack.start_web()
        stack.start_worker("idle", queues="idle")
        yield stack, published
    finally:
        published.stop()
        stack.stop()
        redis_server.stop()


def looked_at_twice(stack: Stack, key: str, members: list[str], since: float) -> bool:
    """Every member's next look is three deadlines past ``since``: the broker was asked about
    each at least twice after its task had waited past the deadline."""
    with stack.redis.client().pipeline(transaction=False) as pipe:
        for who in members:
            pipe.zscore(key, who)
        scores = pipe.execute()
    return all(s is not None and s >= since + 3 * DEADLINE for s in scores)


def fields(stack: Stack, ids: list[str], field: str) -> list[str | None]:
    client = stack.redis.client()
    return [client.hget(record_key("acme", m), field) for m in ids]


def test_work_waiting_in_its_queue_is_published_once_however_long_it_waits(
    own: tuple[Stack, Published], provider: ProviderServer, hub: HubServer
) -> None:
    stack, published = own
    bodies = [order_message() for _ in range(40)]
    ids = [b["message_id"] for b in bodies]
    retried = ids[::4]  # refused once with a 429: one scheduled retry each
    for body in bodies[::4]:
        provider.script(body["payload"]["order"]["number"], {"status": 429, "retry_after": 5})
    members = [f"acme:{m}" for m in ids]

    # 1. A backlog: the messages wait in their queue, the sweeps look at them past the deadline.
    for body in bodies:
        assert stack.post("/acme/send_order", body).status_code == 200
    posted = time.time()
    wait_until(lambda: looked_at_twice(stack, WATCH, members, posted), timeout=30)

    # 2. Handled; the pushes wait in theirs (nobody consumes it), the retries in the due set.
    handlers = stack.start_worker("handlers", queues="acme")
    wait_until(
        lambda: all(s in ("succeeded", "retrying") for s in fields(stack, ids, "status")),
        timeout=30,
    )
    handlers.stop()
    assert fields(stack, retried, "status") == ["retrying"] * len(retried)

    # 3. The retries come due and are published; they and the pushes wait past the deadline.
    wait_until(lambda: stack.redis.client().zcard(DUE) == 0, timeout=30)
    published_at = time.time()
    wait_until(
        lambda: looked_at_twice(stack, WATCH, [f"acme:{m}" for m in retried], published_at),
        timeout=30,
    )
    pushes_waiting = [f"acme:{m}" for m in ids if m not in retried]
    wait_until(lambda: looked_at_twice(stack, OUTBOX, pushes_waiting, published_at), timeout=30)

    # 4. Everything drains.
    stack.start_worker("all")
    wait_until(lambda: set(fields(stack, ids, "delivery")) == {"delivered"}, timeout=60)

    published.settled()
    assert fields(stack, retried, "attempts") == ["2"] * len(retried)
    pieces = len(ids) + len(retried)  # first runs and scheduled retries
    assert pieces <= published.of("acme") <= 1.1 * pieces, published.counts
    assert len(ids) <= published.of("hub") <= 1.1 * len(ids), published.counts
    assert [len(hub.received(m)) for m in ids] == [1] * len(ids)


def test_a_push_task_the_broker_lost_is_sent_again(
    own: tuple[Stack, Published], hub: HubServer
) -> None:
    stack, published = own
    body = order_message()
    client = stack.redis.client()
    stack.start_worker("handlers", queues="acme")
    assert stack.post("/acme/send_order", body).status_code == 200
    wait_until(lambda: client.llen("hub") == 1, timeout=30)  # its push task waits

    assert client.delete("hub") == 1  # the broker loses it
    stack.start_worker("pushes", queues="hub")

    hub.wait_for(body["message_id"], timeout=30)
    assert len(hub.received(body["message_id"])) == 1
    published.settled()
    assert published.of("hub") >= 2  # sent again
