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
