"""Pacing across workers: the leaky bucket and the concurrency slots in Redis (fakeredis, Lua)."""

from __future__ import annotations

import itertools
import threading
import time

import fakeredis
import pytest

from worker.basics.deadline import Deadline
from worker.basics.errors import WaitUntil
from worker.store.pacing import Bucket, Share, Slots, TooLong


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


def booked(client: fakeredis.FakeRedis, holder: str, per_second: float = 2.0) -> Bucket:
    return Bucket(
        client, "acct", capacity=1, per_second=per_second, holder=holder, sleep_max_seconds=0.2
    )


def test_a_long_wait_is_booked_not_slept_and_the_bookings_are_spaced_at_the_drain_rate(
    client: fakeredis.FakeRedis,
) -> None:
    assert booked(client, "m1").take("P") == 0.0  # room at once
    started = time.monotonic()
    ats = []
    for holder in ("m2", "m3", "m4"):
        with pytest.raises(WaitUntil) as waiting:
            booked(client, holder).take("P")
        ats.append(waiting.value.at)
    assert time.monotonic() - started < 0.1  # nothing slept
    assert [round(b - a, 2) for a, b in itertools.pairwise(ats)] == [0.5, 0.5]
    assert ats[0] - time.time() == pytest.approx(0.5, abs=0.05)


def test_a_booked_holder_coming_back_takes_its_room_without_booking_again(
    client: fakeredis.FakeRedis,
) -> None:
    booked(client, "m1", per_second=4).take("P")
    with pytest.raises(WaitUntil) as waiting:
        booked(client, "m2", per_second=4).take("P")
    with pytest.raises(WaitUntil) as early:  # back too soon: the same booking
        booked(client, "m2", per_second=4).take("P")
    assert early.value.at == pytest.approx(waiting.value.at)
    time.sleep(max(0.0, waiting.value.at - time.time()))
    assert booked(client, "m2", per_second=4).take("P") == 0.0  # its room: goes
    with pytest.raises(WaitUntil) as after:  # the next one books after it, not beside it
        booked(client, "m3", per_second=4).take("P")
    assert after.value.at - time.time() == pytest.approx(0.25, abs=0.05)


def test_a_booking_a_pause_overtook_is_booked_again_after_the_pause(
    client: fakeredis.FakeRedis,
) -> None:
    booked(client, "m1").take("P")
    with pytest.raises(WaitUntil):
        booked(client, "m2").take("P")
    booked(client, "m2").hold(5.0)
    with pytest.raises(WaitUntil) as waiting:
        booked(client, "m2").take("P")
    assert waiting.value.at >= time.time() + 5.0


def test_a_share_lets_limit_attempts_run_and_tells_the_others_when_to_come_back(
    client: fakeredis.FakeRedis,
) -> None:
    share = Share(client, "acme", limit=2, ttl_seconds=60)
    assert share.take("t1", "m1") is None
    assert share.take("t2", "m2") is None
    first, second = share.take("t3", "m3"), share.take("t4", "m4")
    assert first is not None and second is not None and first <= second
    share.release("t1")
    assert share.take("t3", "m3") is None  # a slot freed: taken, out of the line
    assert share.take("t5", "m5") is not None
