"""Pacing across workers: the leaky bucket and the concurrency slots in Redis (fakeredis, Lua)."""

from __future__ import annotations

import threading
import time

import fakeredis
import pytest

from worker.basics.deadline import Deadline
from worker.store.pacing import Bucket, Slots, TooLong


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


def test_a_bucket_lets_a_burst_through_then_paces_at_its_drain_rate(
    client: fakeredis.FakeRedis,
) -> None:
    bucket = Bucket(client, "acct", capacity=5, per_second=20)
    started = time.monotonic()
    waited = [bucket.take("P") for _ in range(9)]
    elapsed = time.monotonic() - started
    assert waited[:5] == [0.0] * 5  # the burst
    assert sum(waited[5:]) > 0  # then each waits for the bucket to drain
    assert 4 / 20 * 0.8 <= elapsed < 1.0


def test_a_hold_stops_every_caller_for_its_time(client: fakeredis.FakeRedis) -> None:
    bucket = Bucket(client, "acct", capacity=40, per_second=2)
    bucket.hold(0.3)
    started = time.monotonic()
    bucket.take("P")
    assert time.monotonic() - started >= 0.25


def test_waiting_past_the_deadline_is_a_transient_error(client: fakeredis.FakeRedis) -> None:
    bucket = Bucket(client, "acct", capacity=1, per_second=0.1)
    bucket.take("P")
    with Deadline(1.0).running(), pytest.raises(TooLong):
        bucket.take("P")


def test_slots_let_only_so_many_calls_in_flight(client: fakeredis.FakeRedis) -> None:
    slots = Slots(client, "acct:op", limit=3)
    inside, most = 0, 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal inside, most
        with slots.held("P"):
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.05)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 3
