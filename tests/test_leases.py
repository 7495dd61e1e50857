"""The lease keeper (fakeredis with Lua): renewing while a handler lives, letting go at its
deadline, and noticing a lease that was lost."""

from __future__ import annotations

import logging
import time

import fakeredis
import pytest

from worker.basics.deadline import Deadline, DeadlineExceeded
from worker.store.leases import LeaseKeeper
from worker.store.schema import WATCH


def test_a_held_lease_is_renewed_and_moves_the_watchdogs_deadline_along() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    keeper = LeaseKeeper(client, ttl_seconds=3)
    client.set("lease", "me", px=500)
    client.zadd(WATCH, {"acme:m": 0})

    with keeper.hold("lease", "me", until=time.monotonic() + 60, watch=(WATCH, "acme:m")):
        keeper.renew_all()
        assert 2500 < client.pttl("lease") <= 3000
        assert client.zscore(WATCH, "acme:m") > time.time() + 3
    keeper.renew_all()  # released: no longer renewed
    assert client.pttl("lease") <= 3000


def test_renewal_stops_at_the_deadline_so_a_stuck_holder_lets_go() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    keeper = LeaseKeeper(client, ttl_seconds=3)
    client.set("lock", "me", px=200)

    with keeper.hold("lock", "me", until=time.monotonic() - 1):  # its deadline has passed
        keeper.renew_all()
        assert client.pttl("lock") <= 200


def test_a_lease_taken_by_another_holder_is_lost_and_ends_the_attempt_at_its_next_call() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    keeper = LeaseKeeper(client, ttl_seconds=3)
    client.set("lease", "someone-else", px=3000)
    deadline = Deadline(60)

    with keeper.hold("lease", "me", until=time.monotonic() + 60, deadline=deadline) as held:
        keeper.renew_all()

    assert held.lost
    assert client.get("lease") == "someone-else"  # not renewed, not touched
    try:
        deadline.check()
    except DeadlineExceeded as exc:
        assert "lease" in str(exc)
    else:
        raise AssertionError("the attempt should end once its lease is lost")


def test_a_lease_its_holder_released_with_its_outcome_is_no_loss_to_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    keeper = LeaseKeeper(client, ttl_seconds=3)
    client.set("lease", "me", px=3000)
    deadline = Deadline(60)

    with keeper.hold("lease", "me", until=time.monotonic() + 60, deadline=deadline) as held:
        held.ending = True
        client.delete("lease")  # its outcome's write released it
        with caplog.at_level(logging.WARNING):
            keeper.renew_all()

    assert "was lost" not in caplog.text
    deadline.check()  # not cancelled
