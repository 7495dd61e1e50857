"""Messages arriving at the same time share a round trip to Redis
(``worker.pipeline.intake.Together``), each still recorded and queued as if it had come alone (a
real redis-server, real threads)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import pytest
import redis

from tests.sentinel.nodes import RedisNode
from tests.support.stack import RedisServer, wait_until
from worker.pipeline.intake import Together
from worker.pipeline.runtime import redis_client
from worker.store.bundle import Store
from worker.store.messages import Arrival, Received
from worker.store.replication import NotOnReplicas
from worker.store.schema import record_key
from worker.tasks.enqueue import Envelope

MESSAGES = 50


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    started = RedisServer().start()
    yield started
    started.stop()


@pytest.fixture
def db(redis_server: RedisServer) -> Store:
    redis_server.client().flushall()
    return Store.on(redis_client(redis_server.url))


def arrival(number: int) -> Arrival:
    message_id = f"m{number}"
    fields = {"integration": "acme", "message_id": message_id, "message": "order:ready"}
    envelope = Envelope("acme", f'{{"headers": {{"shiphub_message": "acme:{message_id}"}}}}')
    return Arrival("acme", message_id, f"digest-{number}", fields, envelope, 1.0e9 + number)


class RoundTrips:
    """``Messages.receive_all`` counted, its first round trip held until all the others have
    queued up behind it, and any round trip made to fail by ``fail``."""

    def __init__(self, db: Store, together: Together, queued: int) -> None:
        self.sizes: list[int] = []
        self._real = db.messages.receive_all
        self._together = together
        self._queued = queued
        self.fail: Callable[[int], BaseException | None] = lambda number: None
        db.messages.receive_all = self  # type: ignore[method-assign]

    def __call__(self, arrivals: Sequence[Arrival]) -> list[Received]:
        self.sizes.append(len(arrivals))
        if len(self.sizes) == 1:
            wait_until(lambda: len(self._together._queued) == self._queued, timeout=10)
        if failure := self.fail(len(self.sizes)):
            raise failure
        return self._real(arrivals)


def all_at_once(together: Together, count: int = MESSAGES) -> list[Received | BaseException]:
    """Every message from a thread of its own; what each got back, or raised."""
    results: list[Received | BaseException] = [RuntimeError("not run")] * count

    def one(number: int) -> None:
        try:
            results[number] = together.receive(arrival(number))
        except BaseException as exc:
            results[number] = exc

    first = threading.Thread(target=one, args=(0,))
    first.start()  # it sends at once, alone; the others arrive while it is under way
    wait_until(lambda: together._under_way, timeout=10)
    rest = [threading.Thread(target=one, args=(n,)) for n in range(1, count)]
    for thread in rest:
        thread.start()
    for thread in [first, *rest]:
        thread.join(30)
    return results


def test_messages_arriving_together_share_a_round_trip_and_each_is_recorded_and_queued(
    db: Store,
) -> None:
    together = Together(db)
    trips = RoundTrips(db, together, queued=MESSAGES - 1)

    results = all_at_once(together)

    assert trips.sizes == [1, MESSAGES - 1]
    assert [r.outcome for r in results] == ["created"] * MESSAGES  # type: ignore[union-attr]
    client = db.redis
    assert sorted(client.lrange("acme", 0, -1)) == sorted(
        f'{{"headers": {{"shiphub_message": "acme:m{n}"}}}}' for n in range(MESSAGES)
    )
    for n in range(MESSAGES):
        assert client.hget(record_key("acme", f"m{n}"), "fingerprint") == f"digest-{n}"

    again = all_at_once(Together(db))  # each is found, as if it had come alone
    assert {r.outcome for r in again} == {"exists"}  # type: ignore[union-attr]
    assert client.llen("acme") == MESSAGES


def test_a_round_trip_carries_at_most_its_share(db: Store) -> None:
    together = Together(db, most=10)
    trips = RoundTrips(db, together, queued=MESSAGES - 1)

    results = all_at_once(together)

    assert trips.sizes == [1, 10, 10, 10, 10, 9]
    assert {r.outcome for r in results} == {"created"}  # type: ignore[union-attr]


def test_a_failed_round_trip_fails_each_of_its_messages_and_the_next_ones_go_through(
    db: Store,
) -> None:
    together = Together(db)
    trips = RoundTrips(db, together, queued=MESSAGES - 1)
    trips.fail = lambda number: redis.ConnectionError("gone") if number == 2 else None

    results = all_at_once(together)

    assert results[0].outcome == "created"  # type: ignore[union-attr]
    failed = results[1:]
    assert all(isinstance(r, redis.ConnectionError) for r in failed)
    assert len({id(r) for r in failed}) == len(failed)  # each its own, raised once
    assert db.redis.llen("acme") == 1  # nothing of theirs was recorded or queued
    assert together.receive(arrival(1)).outcome == "created"  # nobody is left holding the turn


def test_a_sender_cut_off_mid_round_trip_leaves_its_messages_retryable_not_hanging(
    db: Store,
) -> None:
    together = Together(db)
    trips = RoundTrips(db, together, queued=MESSAGES - 1)
    trips.fail = lambda number: KeyboardInterrupt() if number == 2 else None  # not an Exception

    results = all_at_once(together)

    kinds = [type(r).__name__ for r in results[1:]]
    assert sorted(set(kinds)) == ["ConnectionError", "KeyboardInterrupt"]
    assert kinds.count("KeyboardInterrupt") == 1  # the sender's own; the others may be retried
    assert together.receive(arrival(2)).outcome == "created"


def test_a_redis_that_lost_its_scripts_gets_them_again(db: Store) -> None:
    assert db.messages.receive_all([arrival(1)])[0].outcome == "created"
    db.redis.script_flush()

    received = db.messages.receive_all([arrival(1), arrival(2)])

    assert [r.outcome for r in received] == ["exists", "created"]


@pytest.fixture
def waiting_for_a_replica(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """REDIS_MIN_REPLICAS_ACKED=1 (the settings are read once per process: read them again)."""
    from worker.basics.settings import settings

    monkeypatch.setenv("REDIS_MIN_REPLICAS_ACKED", "1")
    monkeypatch.setenv("REDIS_REPLICAS_TIMEOUT_SECONDS", "0.5")
    settings.cache_clear()
    yield
    monkeypatch.undo()
    settings.cache_clear()


def waits(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


@pytest.mark.slow  # waits on a replica: about six seconds
def test_with_the_replica_setting_one_wait_covers_a_round_trip(
    redis_server: RedisServer, db: Store, waiting_for_a_replica: None
) -> None:
    replica = RedisNode("--replicaof", "127.0.0.1", str(redis_server.port)).start()
    try:
        wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up")
        together = Together(db)
        trips = RoundTrips(db, together, queued=MESSAGES - 1)
        before = waits(db.redis)

        results = all_at_once(together)

        assert {r.outcome for r in results} == {"created"}  # type: ignore[union-attr]
        assert trips.sizes == [1, MESSAGES - 1]
        assert waits(db.redis) - before == 2  # one per round trip, not one per message
        assert replica.client().llen("acme") == MESSAGES  # the replica had them when answered
    finally:
        replica.stop()


def test_a_round_trip_not_on_enough_replicas_fails_each_of_its_messages(
    db: Store, waiting_for_a_replica: None
) -> None:
    together = Together(db)  # no replica at all
    RoundTrips(db, together, queued=MESSAGES - 1)

    results = all_at_once(together)

    assert all(isinstance(r, NotOnReplicas) for r in results)
    assert len({id(r) for r in results}) == MESSAGES


def test_one_round_trip_takes_each_message_as_if_it_had_come_alone(db: Store) -> None:
    """One run of the accept script for many messages: the same message twice in it is a
    duplicate the second time, the same id with another content a conflict; each new one is
    queued once; the counters count each outcome; the recent list keeps its cap."""
    from worker.basics import metrics
    from worker.store.schema import RECENT, RECENT_KEPT

    first = [arrival(n) for n in range(RECENT_KEPT)]
    assert {r.outcome for r in db.messages.receive_all(first)} == {"created"}
    again, other = arrival(RECENT_KEPT + 1), arrival(RECENT_KEPT + 1)
    other = replace(other, fingerprint="another", now=2.0e9)

    received = db.messages.receive_all([again, again, other, arrival(RECENT_KEPT + 2)])

    assert [r.outcome for r in received] == ["created", "exists", "conflict", "created"]
    assert received[1].record is not None and received[1].record.status == "queued"
    assert db.redis.llen("acme") == RECENT_KEPT + 2  # one task per new message
    counted = db.redis.hgetall(metrics.MESSAGES.key)
    accepted = metrics.MESSAGES.field("acme", metrics.UNKNOWN, "accepted")
    duplicate = metrics.MESSAGES.field("acme", metrics.UNKNOWN, "duplicate")
    assert (int(counted[accepted]), int(counted[duplicate])) == (RECENT_KEPT + 2, 1)
    assert db.redis.zcard(RECENT) == RECENT_KEPT
    assert db.redis.zscore(RECENT, "acme:m0") is None  # the oldest left first
