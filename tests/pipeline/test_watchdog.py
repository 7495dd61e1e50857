"""The watchdog tells a lost message from a queued one (real redis-server, Celery's own queues)."""

from __future__ import annotations

import time

from celery import Celery

from tests.pipeline.conftest import stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, wait_until
from worker.store.bundle import Store
from worker.store.schema import WATCH


def test_a_long_backlog_is_not_republished_but_a_lost_message_is(
    provider: ProviderServer, hub: HubServer
) -> None:
    redis_server = RedisServer().start()  # its own: the queue and the counter are counted exactly
    stack = Stack(redis_server, {**stack_env(provider, hub), "WATCHDOG_INTERVAL_SECONDS": "1"})
    try:
        stack.start_web()
        stack.start_worker("hub-only", queues="hub")  # nobody consumes the acme queue
        redis = redis_server.client()
        republished_before = Store.on(redis).listings.stats()["messages_republished"]
        bodies = [order_message() for _ in range(5)]
        for body in bodies:
            assert stack.post("/acme/send_order", body).status_code == 200
        for body in bodies:  # all of them waited longer than the deadline
            redis.zadd(WATCH, {f"acme:{body['message_id']}": 0})
        celery = Celery(broker=redis_server.url)

        celery.send_task("shiphub.watchdog", queue="hub")
        time.sleep(3)

        assert redis.llen("acme") == 5  # a queued message is not "lost"
        assert Store.on(redis).listings.stats()["messages_republished"] == republished_before

        lost = redis.rpop("acme")  # the broker loses the oldest one
        redis.zadd(WATCH, {f"acme:{bodies[0]['message_id']}": 0})
        celery.send_task("shiphub.watchdog", queue="hub")

        wait_until(lambda: redis.llen("acme") == 5, timeout=15)
        assert bodies[0]["message_id"] in redis.lindex("acme", 0)
        assert lost is not None
        republished = Store.on(redis).listings.stats()["messages_republished"]
        assert republished == republished_before + 1
    finally:
        stack.stop()
        redis_server.stop()


def test_the_workers_own_sweeps_ask_the_broker_afresh_every_time(
    provider: ProviderServer, hub: HubServer
) -> None:
    """The sweeps every worker runs (not the task): a backlog looked at again and again is left
    alone, and a message the broker loses afterwards is found lost by a later sweep."""
    redis_server = RedisServer().start()
    settings = {"WATCHDOG_INTERVAL_SECONDS": "1", "QUEUED_DEADLINE_SECONDS": "1"}
    stack = Stack(redis_server, {**stack_env(provider, hub), **settings})
    try:
        stack.start_web()
        stack.start_worker("hub-only", queues="hub")  # nobody consumes the acme queue
        redis = redis_server.client()
        bodies = [order_message() for _ in range(3)]
        for body in bodies:
            assert stack.post("/acme/send_order", body).status_code == 200
        posted = time.time()
        members = [f"acme:{b['message_id']}" for b in bodies]
        wait_until(  # looked at past the deadline, twice, and left alone
            lambda: all((redis.zscore(WATCH, m) or 0) >= posted + 3 for m in members), timeout=30
        )
        assert redis.llen("acme") == 3
        assert Store.on(redis).listings.stats()["messages_republished"] == 0

        assert redis.rpop("acme") is not None  # the broker loses the oldest

        wait_until(lambda: Store.on(redis).listings.stats()["messages_republished"] == 1, 30)
        assert redis.llen("acme") == 3
        assert bodies[0]["message_id"] in redis.lindex("acme", 0)
    finally:
        stack.stop()
        redis_server.stop()
