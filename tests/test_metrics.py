"""Metrics kept in Redis and read back by ``GET /metrics`` (fakeredis with Lua): who counts what,
in which round trip, and what the page shows. Provider calls go over real HTTP to a local server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from endpoint.metrics import cursor_time, render
from tests.conftest import settle
from tests.support.records import accept, mark_published
from worker.basics import metrics
from worker.basics.deadline import DeadlineExceeded
from worker.basics.errors import TransientError
from worker.basics.settings import Settings
from worker.hub.messages import Answer
from worker.integrations import http as provider_http
from worker.integrations import registry
from worker.integrations.job import Job
from worker.pipeline.handling import handle, retry_reason
from worker.store.bundle import Store
from worker.store.outbox import Claimed, Outbox
from worker.store.pacing import TooLong
from worker.store.schema import OUTBOX, memory_key

Found = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Empty(BaseModel):
    pass


behaviour: dict[str, Callable[[Job[Empty]], Answer]] = {}
metered = registry.register(registry.Integration("metered", "Metered", "Handlers a test scripts"))


@metered.service("work", message="metered:work", payload=Empty)
def work(job: Job[Empty]) -> Answer:
    return behaviour["work"](job)


polled = registry.register(registry.Integration("polled", "Polled", "A poll with a time cursor"))


@polled.service(
    "tracking",
    message="polled:poll",
    payload=Empty,
    requires=[registry.Requirement("since", "Cursor", cursor=True)],
    schedule=registry.Schedule(1, "hours"),
)
def poll(job: Job[Empty]) -> Answer:
    return job.answer()


class _Provider(BaseHTTPRequestHandler):
    """``/ok`` answers 200, ``/down`` 503, ``/slow`` after a second."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(1.0)
        status = 503 if self.path == "/down" else 200
        body = json.dumps({"ok": status == 200}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def outbox(db: Store) -> Outbox:
    return Outbox(db.redis, db.timing)


def no_push(claimed: Claimed) -> None:
    """These attempts push nothing now: no HUB_PUSH_URL is set."""


def call(url: str) -> Any:
    return provider_http.call(
        provider_http.pooled_session(), "Metered", "GET", url, timeout=(1.0, 0.3)
    )


def recorded(db: Store, message_id: str, service: str = "work") -> None:
    body = {"message_id": message_id, "message": "metered:work", "payload": {}}
    fields = {"message": "metered:work", "service": service, "body": json.dumps(body)}
    accept(db, "metered", message_id, "digest", fields)
    mark_published(db, "metered", message_id, time.time())


def run(db: Store, outbox: Outbox, message_id: str, **settings: Any) -> str:
    handled = handle(
        metered,
        metered.handler("metered:work"),
        message_id,
        db,
        outbox,
        Settings(**settings),
        send_push=no_push,
    )
    return handled.outcome


def page(db: Store) -> Found:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(render(db))
        for sample in family.samples
    }


def value(found: Found, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def handler_attempts(found: Found) -> float:
    labels = {"integration": "metered", "service": "work"}
    return value(found, "shiphub_handler_duration_seconds_count", **labels)


def messages(found: Found, outcome: str, service: str = "work") -> float:
    return value(
        found, "shiphub_messages_total", integration="metered", service=service, outcome=outcome
    )


# -- storage -----------------------------------------------------------------------------------
def test_an_observation_lands_in_the_smallest_bucket_that_holds_it() -> None:
    family = metrics.HANDLER_SECONDS
    assert family.bucket(0.05) == "0.05"  # upper bounds are inclusive, as Prometheus's "le"
    assert family.bucket(0.051) == "0.1"
    assert family.bucket(300.0) == "300.0"
    assert family.bucket(301.0) == "+Inf"


def test_a_tally_written_in_one_round_trip_reads_back_as_cumulative_buckets(
    redis_client: redis.Redis,
) -> None:
    tally = metrics.Tally()
    for seconds in (0.02, 0.3, 0.3, 7.0, 999.0):
        tally.observe(metrics.HANDLER_SECONDS, ("metered", "work"), seconds)
    with redis_client.pipeline() as pipe:
        tally.write(pipe)
        metrics.increment(pipe, metrics.RETRIES, "metered", "timeout", by=2)
        pipe.execute()

    stored = metrics.read(redis_client)

    series = stored.histograms[metrics.HANDLER_SECONDS][("metered", "work")]
    buckets = dict(series.cumulative(metrics.HANDLER_SECONDS.buckets))
    assert (buckets["0.05"], buckets["0.25"], buckets["0.5"], buckets["10.0"]) == (1, 1, 3, 4)
    assert (buckets["300.0"], buckets["+Inf"], series.count) == (4, 5, 5)
    assert series.sum == pytest.approx(1006.62)
    assert stored.counters[metrics.RETRIES] == {("metered", "timeout"): 2}


def test_any_label_value_survives_the_field_encoding(redis_client: redis.Redis) -> None:
    odd = 'shop "north"|1,\\ ü'
    with redis_client.pipeline() as pipe:
        metrics.increment(pipe, metrics.DELIVERIES, odd, "dead")
        pipe.hset(metrics.DELIVERIES.key, "not ours", 5)  # ignored, not a crash
        pipe.execute()

    assert metrics.read(redis_client).counters[metrics.DELIVERIES] == {(odd, "dead"): 1}


# -- who counts what ---------------------------------------------------------------------------
def test_accept_counts_accepted_once_by_integration_and_service(db: Store) -> None:
    recorded(db, "a1")
    recorded(db, "a1")  # the same message again: counted by its caller as a duplicate

    found = page(db)

    assert messages(found, "accepted") == 1
    assert db.listings.stats()["messages_accepted"] == 1


def test_count_keeps_a_labelled_count_and_the_totals(db: Store) -> None:
    db.listings.count("messages_duplicate", integration="metered", service="work")
    db.listings.count("messages_republished", integration="metered", service="work")

    found = page(db)

    assert messages(found, "duplicate") == 1
    assert messages(found, "republished") == 1
    assert db.listings.stats()["messages_republished"] == 1
    assert db.listings.stats()["messages_duplicate"] == 1


def test_a_succeeded_attempt_counts_its_outcome_time_and_provider_call_with_its_answer(
    db: Store, outbox: Outbox, provider_url: str
) -> None:
    recorded(db, "s1")

    def succeed(job: Job[Empty]) -> Answer:
        call(f"{provider_url}/ok")
        return job.answer().notify("info", "Done", "done")

    behaviour["work"] = succeed

    assert run(db, outbox, "s1") == "succeeded"

    found = page(db)
    assert messages(found, "succeeded") == 1
    assert messages(found, "retrying") == 0
    assert handler_attempts(found) == 1
    calls = {"integration": "metered", "outcome": "ok"}
    assert value(found, "shiphub_provider_call_duration_seconds_count", **calls) == 1
    assert value(found, "shiphub_provider_call_duration_seconds_bucket", **calls, le="+Inf") == 1


@pytest.mark.parametrize(
    ("path", "reason", "call_outcome"),
    [("/down", "provider_5xx", "http_error"), ("/slow", "timeout", "timeout")],
)
def test_a_retry_counts_its_reason_and_the_call_that_failed(
    db: Store,
    outbox: Outbox,
    provider_url: str,
    path: str,
    reason: str,
    call_outcome: str,
) -> None:
    recorded(db, "r1")
    behaviour["work"] = lambda job: call(f"{provider_url}{path}")

    assert run(db, outbox, "r1") == "retrying"

    found = page(db)
    assert messages(found, "retrying") == 1
    assert value(found, "shiphub_retries_total", integration="metered", reason=reason) == 1
    calls = {"integration": "metered", "outcome": call_outcome}
    assert value(found, "shiphub_provider_call_duration_seconds_count", **calls) == 1
    assert handler_attempts(found) == 1


def test_an_unreachable_provider_is_a_connection_retry(db: Store, outbox: Outbox) -> None:
    recorded(db, "c1")
    behaviour["work"] = lambda job: call("http://127.0.0.1:1/")

    assert run(db, outbox, "c1") == "retrying"

    found = page(db)
    assert value(found, "shiphub_retries_total", integration="metered", reason="connection") == 1
    calls = {"integration": "metered", "outcome": "connection"}
    assert value(found, "shiphub_provider_call_duration_seconds_count", **calls) == 1


def test_a_message_whose_retries_ran_out_counts_dead_and_shows_in_the_dead_gauge(
    db: Store, outbox: Outbox
) -> None:
    recorded(db, "d1")

    def fail(job: Job[Empty]) -> Answer:
        raise TransientError("Metered answered HTTP 503", ["down"], status=503)

    behaviour["work"] = fail

    assert run(db, outbox, "d1", task_max_attempts=1) == "dead"

    found = page(db)
    assert messages(found, "dead") == 1
    assert messages(found, "retrying") == 0
    assert value(found, "shiphub_dead_messages") == 1
    assert handler_attempts(found) == 1


def test_a_refused_answer_counts_failed(db: Store, outbox: Outbox) -> None:
    recorded(db, "f1")
    behaviour["work"] = lambda job: job.answer().notify("error", "Refused", "No such SKU")

    assert run(db, outbox, "f1") == "failed"

    assert messages(page(db), "failed") == 1


def test_an_answer_thrown_away_for_a_conflict_is_a_conflict_retry(
    db: Store, outbox: Outbox
) -> None:
    recorded(db, "w1")

    def raced(job: Job[Empty]) -> Answer:
        job.watch("shipment", "S1")
        db.redis.set(memory_key("metered", job.store, "shipment", "S1"), '"another"')
        job.keep("shipment", "S1", "mine")
        return job.answer()

    behaviour["work"] = raced

    assert run(db, outbox, "w1") == "retrying"

    found = page(db)
    assert value(found, "shiphub_retries_total", integration="metered", reason="conflict") == 1
    assert messages(found, "retrying") == 1
    assert messages(found, "succeeded") == 0


def test_a_stale_finish_counts_no_outcome(db: Store) -> None:
    recorded(db, "x1")
    db.attempts.begin("metered", "x1", "mine")
    tally = metrics.Tally()
    tally.observe(metrics.HANDLER_SECONDS, ("metered", "work"), 0.1)

    written = db.attempts.finish(
        "metered",
        "x1",
        "succeeded",
        {"message_id": "x1"},
        error=None,
        cursor={},
        push=False,
        lease_token="not-mine",
        observed=tally,
    )

    assert written == "stale"
    found = page(db)
    assert messages(found, "succeeded") == 0
    assert handler_attempts(found) == 0


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (DeadlineExceeded(4.0), "deadline"),
        (redis.ConnectionError("gone"), "redis"),
        (TooLong("Duoplane's limit leaves no room now"), "rate_limited"),
        (TransientError("HTTP 429", status=429), "rate_limited"),
        (TransientError("HTTP 502", status=502), "provider_5xx"),
        (provider_http.NoAnswer("Acme did not answer in time"), "timeout"),
        (provider_http.Unreachable("Acme could not be reached"), "connection"),
        (TransientError("Acme answered with something unreadable"), "provider_transient"),
        (TransientError("HTTP 408", status=408), "provider_transient"),
        (KeyError("bug"), "unexpected"),
    ],
)
def test_retry_reasons_are_a_small_closed_set(error: BaseException, reason: str) -> None:
    assert retry_reason(error) == reason
    assert reason in metrics.RETRY_REASONS


# -- deliveries and the outbox -----------------------------------------------------------------
def answered(db: Store, message_id: str) -> None:
    accept(db, "metered", message_id, "d", {"message": "metered:work", "body": "{}"})
    settle(db, message_id, "succeeded", integration="metered", push=True)


def pushed(outbox: Outbox, message_id: str, ok: bool, next_at: float | None = None) -> str:
    claim = outbox.claim("metered", message_id)
    assert claim is not None
    outbox.take("metered", message_id, claim, 10)
    if ok:
        return "delivered" if outbox.delivered("metered", message_id, claim) else "stale"
    return outbox.failed("metered", message_id, claim, "hub answered HTTP 503", next_at)


def deliveries(found: Found, outcome: str) -> float:
    return value(found, "shiphub_deliveries_total", integration="metered", outcome=outcome)


def test_deliveries_are_counted_by_outcome_where_their_outcome_is_recorded(
    db: Store, outbox: Outbox
) -> None:
    answered(db, "p1")
    answered(db, "p2")

    assert pushed(outbox, "p1", ok=False, next_at=time.time()) == "retrying"
    assert pushed(outbox, "p1", ok=True) == "delivered"
    assert pushed(outbox, "p2", ok=False, next_at=None) == "dead"

    found = page(db)
    assert (deliveries(found, "retrying"), deliveries(found, "delivered")) == (1, 1)
    assert deliveries(found, "dead") == 1
    assert value(found, "shiphub_dead_deliveries") == 1
    assert value(found, "shiphub_outbox_pending") == 0
    assert value(found, "shiphub_outbox_oldest_age_seconds") == 0
    assert db.listings.stats()["deliveries_delivered"] == 1


def test_outbox_age_is_since_the_oldest_answer_was_ready_not_since_its_next_push(
    db: Store, outbox: Outbox
) -> None:
    answered(db, "o1")
    db.redis.zadd(metrics.OUTBOX_READY, {"metered:o1": time.time() - 600})  # ready 10 min
    answered(db, "o2")
    assert pushed(outbox, "o1", ok=False, next_at=time.time() + 5) == "retrying"

    found = page(db)

    assert value(found, "shiphub_outbox_pending") == 2
    assert value(found, "shiphub_outbox_oldest_age_seconds") == pytest.approx(600, abs=5)

    assert pushed(outbox, "o2", ok=True) == "delivered"
    outbox.make_due("metered", "o1", 0)
    assert pushed(outbox, "o1", ok=True) == "delivered"
    assert value(page(db), "shiphub_outbox_oldest_age_seconds") == 0
    assert db.redis.zcard(metrics.OUTBOX_READY) == 0


def test_a_replayed_dead_delivery_is_ready_again_from_its_replay(db: Store, outbox: Outbox) -> None:
    answered(db, "q1")
    db.redis.zadd(metrics.OUTBOX_READY, {"metered:q1": time.time() - 3600})
    assert pushed(outbox, "q1", ok=False, next_at=None) == "dead"
    assert value(page(db), "shiphub_outbox_oldest_age_seconds") == 0

    assert outbox.redeliver("metered", "q1")

    assert value(page(db), "shiphub_outbox_oldest_age_seconds") < 60


def test_an_answer_that_left_the_outbox_by_a_replay_does_not_age_it(
    db: Store, outbox: Outbox
) -> None:
    answered(db, "z1")
    db.redis.zadd(metrics.OUTBOX_READY, {"metered:z1": time.time() - 3600})
    answered(db, "z2")
    db.redis.zrem(OUTBOX, "metered:z1")  # what a replay of its message does

    age = value(page(db), "shiphub_outbox_oldest_age_seconds")

    assert age < 60  # z2's, not the hour of z1 that is no longer waiting
    assert db.redis.zscore(metrics.OUTBOX_READY, "metered:z1") is None


# -- polls -------------------------------------------------------------------------------------
def test_cursor_times_are_read_only_when_they_carry_their_offset() -> None:
    assert cursor_time("2013-10-29 03:15:21 -0400").isoformat() == "2013-10-29T03:15:21-04:00"
    assert cursor_time("2026-11-23T05:00:00.000Z").isoformat() == "2026-11-23T05:00:00+00:00"
    assert cursor_time("2026-11-23T05:00:00") is None  # whose zone? not guessed
    assert cursor_time("17") is None and cursor_time(17) is None and cursor_time(None) is None


def test_poll_lag_and_cursor_age_per_polled_store(db: Store) -> None:
    registry.load("tests.support.acme")
    lagging = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 900))
    for integration, store, cursor in (
        ("polled", "north", {"since": lagging, "page": "abc"}),
        ("acme", "south", {"since": 42}),  # not a time: no lag, but its age
    ):
        accept(db, integration, store, "d", {"store": store, "body": "{}"})
        db.attempts.begin(integration, store, "lease")
        db.attempts.finish(
            integration,
            store,
            "succeeded",
            {"message_id": store},
            error=None,
            cursor=cursor,
            push=False,
            lease_token="lease",
        )

    found = page(db)

    lag = value(found, "shiphub_poll_lag_seconds", integration="polled", store="north")
    assert lag == pytest.approx(900, abs=5)
    assert value(found, "shiphub_poll_cursor_age_seconds", integration="acme", store="south") < 5
    unparsed = frozenset({("integration", "acme"), ("store", "south")})
    assert ("shiphub_poll_lag_seconds", unparsed) not in found
