"""Record state changes (fakeredis with Lua): the atomic steps the pipeline relies on."""

from __future__ import annotations

import time

from worker.records import DEAD_MESSAGES, OUTBOX, WATCH, Records, cursor_key

FIELDS = {"integration": "acme", "message_id": "m", "message": "order:ready", "body": "{}"}


def accept(records: Records, digest: str = "d1", token: str = "t1") -> str:
    return records.accept("acme", "m", digest, token, FIELDS)


def test_first_accept_creates_then_same_content_is_publishing_then_exists(records: Records) -> None:
    assert accept(records) == "created"
    assert accept(records, token="t2") == "publishing"
    records.mark_published("acme", "m")
    assert accept(records, token="t3") == "exists"


def test_other_content_under_the_same_id_is_a_conflict(records: Records) -> None:
    accept(records)
    assert accept(records, digest="d2") == "conflict"


def test_a_record_whose_publisher_died_is_taken_over_when_stale(records: Records) -> None:
    accept(records)
    time.sleep(records.timing.publish_stale_seconds + 0.05)

    assert accept(records, token="t2") == "takeover"
    assert records.get("acme", "m").fields["publish_token"] == "t2"


def test_abandon_removes_only_an_unpublished_record_of_the_same_token(records: Records) -> None:
    accept(records)
    assert records.abandon("acme", "m", "other-token") is False
    assert records.abandon("acme", "m", "t1") is True
    assert records.get("acme", "m") is None
    assert records.redis.zscore(WATCH, "acme:m") is None


def test_begin_counts_attempts_and_refuses_a_held_lease(records: Records) -> None:
    accept(records)
    assert records.begin("acme", "m", "lease-1") == ("started", 1)
    assert records.begin("acme", "m", "lease-2") == ("busy", 0)
    records.release_lease("acme", "m", "lease-1")
    assert records.begin("acme", "m", "lease-2") == ("started", 2)


def finish(records: Records, status: str = "succeeded", **kw: object) -> bool:
    return records.finish(
        "acme",
        "m",
        status,
        {"message_id": "m"},
        error=None,  # type: ignore[arg-type]
        cursor=kw.get("cursor", {}),
        push=bool(kw.get("push", True)),
        lease_token=None,
        keep=kw.get("keep"),  # type: ignore[arg-type]
    )


def test_finish_writes_answer_outbox_and_cursor_once(records: Records) -> None:
    accept(records)
    records.begin("acme", "m", "lease")

    assert finish(records, cursor={"since": 5}, keep=[("sent", "H1", {"n": 1})]) is True
    assert finish(records, cursor={"since": 9}) is False  # a redelivery writes nothing

    record = records.get("acme", "m")
    assert record.status == "succeeded"
    assert record.fields["delivery"] == "pending"
    assert records.redis.zscore(OUTBOX, "acme:m") is not None
    assert records.cursor("acme", "default") == {"since": 5}
    assert records.recall("acme", "default", "sent", ["H1", "H2"]) == [{"n": 1}, None]
    assert records.redis.zscore(WATCH, "acme:m") is None


def test_dead_is_listed_and_requeue_makes_it_queued_again(records: Records) -> None:
    accept(records)
    finish(records, "dead", push=False)
    assert records.dead("messages")[0][:2] == ("acme", "m")

    assert records.requeue("acme", "m") is not None

    assert records.get("acme", "m").status == "queued"
    assert records.redis.zcard(DEAD_MESSAGES) == 0
    assert records.requeue("acme", "m") is None  # only finished records


def test_delivery_failures_reschedule_then_die_and_can_be_replayed(records: Records) -> None:
    accept(records)
    finish(records)

    assert records.delivery_failed("acme", "m", "hub down", time.time() + 5) == 1
    assert records.delivery_failed("acme", "m", "hub down", None) == 2
    assert records.get("acme", "m").fields["delivery"] == "dead"
    assert records.dead("deliveries")[0][:2] == ("acme", "m")
    assert records.redeliver("acme", "m") is True
    assert records.get("acme", "m").fields["delivery"] == "pending"
    records.delivered("acme", "m")
    assert records.get("acme", "m").fields["delivery"] == "delivered"
    assert records.redis.zscore(OUTBOX, "acme:m") is None


def test_cursor_is_per_integration_and_store(records: Records) -> None:
    records.redis.hset(cursor_key("acme", "shop-a"), "since", "1")
    assert records.cursor("acme", "shop-a") == {"since": 1}
    assert records.cursor("acme", "shop-b") == {}
