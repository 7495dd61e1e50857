"""A batch gathers in Redis, not in waiting threads (real redis-server, a Celery worker with two
threads, ecomdash's simulator over HTTP): with far fewer threads than the batch size,
confirmations still go out in full batches, each record once, within ecomdash's limits."""

from __future__ import annotations

import math
import time

from tests.ecomdash.conftest import (
    EcomdashSimulator,
    confirm_message,
    ecomdash_env,
    ecomdash_stack,
    post_all,
    wait_finished,
)
from tests.support.published import Published
from tests.support.servers import HubServer
from tests.support.stack import wait_until

THREADS = 2
BATCH_SIZE = 20
CONFIRMATIONS = 60


def test_confirmations_go_out_in_full_batches_with_two_threads(
    simulator_process: EcomdashSimulator, sim: EcomdashSimulator, hub: HubServer
) -> None:
    sim.add_shipments(400000, CONFIRMATIONS)
    bodies = [confirm_message(400000 + i) for i in range(CONFIRMATIONS)]
    ids = [b["message_id"] for b in bodies]
    env = ecomdash_env(
        simulator_process,
        hub,
        ECOMDASH_BATCH_SIZE=str(BATCH_SIZE),
        ECOMDASH_BATCH_WINDOW_SECONDS="2",
    )
    with ecomdash_stack(env, threads=THREADS) as stack:
        post_all(stack, bodies)
        found = wait_finished(stack, ids, timeout=60)

        assert set(found.values()) == {"succeeded"}
        stats = sim.stats()
        assert stats["calls"] == math.ceil(CONFIRMATIONS / BATCH_SIZE), stats
        assert stats["answered"] == {"200": stats["calls"]}  # no 429
        assert stats["max_concurrency"] <= 3
        held = sorted(t["ShipmentId"] for t in sim.tracking())
        assert held == list(range(400000, 400000 + CONFIRMATIONS))  # each once
        wait_until(lambda: all(hub.received(i) for i in ids), timeout=30)


def test_each_message_runs_twice_whatever_its_batch_waits_for(
    simulator_process: EcomdashSimulator, sim: EcomdashSimulator, hub: HubServer
) -> None:
    """Once to queue its record, once, woken by its batch's leader, to answer it: confirmations
    arriving more slowly than a batch fills (each inside the window of the one before) do not
    bring their messages back each time the window moves on."""
    count, size = 40, 20
    sim.add_shipments(410000, count)
    bodies = [confirm_message(410000 + i) for i in range(count)]
    ids = [b["message_id"] for b in bodies]
    env = ecomdash_env(
        simulator_process,
        hub,
        ECOMDASH_BATCH_SIZE=str(size),
        ECOMDASH_BATCH_WINDOW_SECONDS="1",
        ECOMDASH_BATCH_MAX_WAIT_SECONDS="30",
    )
    with ecomdash_stack(env, threads=THREADS) as stack:
        published = Published(stack.redis.client(), "ecomdash")
        try:
            for body in bodies:  # one every 0.25 s: a batch fills in 5 s, its window is 1 s
                post_all(stack, [body], clients=1)
                time.sleep(0.25)
            found = wait_finished(stack, ids, timeout=90)
            published.settled()
            runs = published.of("ecomdash")
        finally:
            published.stop()

        assert set(found.values()) == {"succeeded"}
        assert sim.stats()["calls"] == count // size
        # Each message twice; the message first on the queue looks again as the window moves.
        assert runs <= 2 * count + 3 * (5 // 1) * (count // size), runs
