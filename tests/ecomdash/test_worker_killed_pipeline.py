"""A worker killed (kill -9) while its batch is at ecomdash: every message still ends answered,
and only the records of the call that was in flight may reach ecomdash twice (there is no way
to know whether that call landed); records that were only queued are sent exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from tests.ecomdash.conftest import (
    EcomdashSimulator,
    confirm_message,
    ecomdash_env,
    ecomdash_stack,
    post_all,
    wait_finished,
)
from tests.support.servers import HubServer
from tests.support.stack import Stack, wait_until

BATCH = 10


@pytest.fixture
def kill_stack(simulator_process: EcomdashSimulator, hub: HubServer) -> Iterator[Stack]:
    env = ecomdash_env(
        simulator_process,
        hub,
        ECOMDASH_BATCH_SIZE=str(BATCH),
        ECOMDASH_BATCH_WINDOW_SECONDS="0.3",
        ECOMDASH_READ_TIMEOUT_SECONDS="3",
        ECOMDASH_CONNECT_TIMEOUT_SECONDS="1",
        LEASE_SECONDS="3",
        WATCHDOG_INTERVAL_SECONDS="1",
    )
    with ecomdash_stack(env, worker="first", threads=40) as running:
        yield running


def test_a_worker_killed_mid_batch_leaves_every_message_answered(
    kill_stack: Stack, sim: EcomdashSimulator
) -> None:
    sim.add_shipments(400000, 30)
    sim.fault("slow", delay_seconds=2.0)  # the first call is at ecomdash when the worker dies
    bodies = [confirm_message(400000 + i) for i in range(30)]
    ids = [b["message_id"] for b in bodies]
    post_all(kill_stack, bodies, clients=30)
    wait_until(lambda: sim.stats()["in_flight"] >= 1, timeout=20)
    kill_stack.services["first"].kill()
    wait_until(lambda: sim.stats()["in_flight"] == 0, timeout=10)  # it landed, unanswered
    in_flight = {t["ShipmentId"] for t in sim.tracking()}
    assert 0 < len(in_flight) <= BATCH
    kill_stack.start_worker("second", concurrency=40)

    found = wait_finished(kill_stack, ids, timeout=60)
    assert set(found.values()) == {"succeeded"}
    sent = Counter(t["ShipmentId"] for t in sim.tracking())
    assert set(sent) == set(range(400000, 400030))  # every record reached ecomdash
    twice = {shipment for shipment, times in sent.items() if times > 1}
    assert twice <= in_flight  # only the call in flight may have been repeated
    assert max(sent.values()) <= 2
