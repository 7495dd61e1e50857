"""A batch gathers in Redis, not in waiting threads (real redis-server, a Celery worker with two
threads, ecomdash's simulator over HTTP): with far fewer threads than the batch size,
confirmations still go out in full batches, each record once, within ecomdash's limits."""

from __future__ import annotations

import math

from tests.ecomdash.conftest import (
    EcomdashSimulator,
    confirm_message,
    ecomdash_env,
    ecomdash_stack,
    post_all,
    wait_finished,
)
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
