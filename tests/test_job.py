"""What a handler's job says when a provider answers "already exists" (fakeredis): success only
when the provider holds what this message sends."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import BaseModel

from worker.basics.backoff import RetryPolicy
from worker.basics.errors import HardError, TransientError
from worker.integrations.job import EarlierAttemptUnsettled, Job, LookFirst, differences
from worker.store.bundle import Store
from worker.store.schema import memory_key, once_key

SENDS = {"shipping": {"address1": "2 Main St.", "zip": "20815"}, "lines": [{"sku": "A", "qty": 1}]}


class Empty(BaseModel):
    pass


def job(db: Store, message_id: str, attempt: int = 1, run: int = 0) -> Job[Empty]:
    return Job(
        integration="acme",
        message_id=message_id,
        message="order:ready",
        payload=Empty(),
        parameters={},
        store="shop",
        attempt=attempt,
        db=db,
        run=run,
    )


def sent_before(db: Store, message_id: str, sends: dict, *, record_lives: bool = True) -> None:
    """``message_id`` created H1 with ``sends`` and kept it; while its record lives, its once
    mark still holds the whole content."""
    earlier = job(db, message_id)
    if record_lives:
        db.once.done("acme", message_id, "create", {"id": 1}, sends=sends)
    earlier.keep_sent("sent", "H1", sends, {"order_number": "R1"})
    with db.redis.pipeline() as pipe:
        pipe.multi()
        db.memory.kept.write(pipe, "acme", "shop", earlier.kept)
        pipe.execute()


def sent_before_in_the_earlier_format(db: Store, message_id: str, sends: dict) -> None:
    """What was kept before digests: the whole content, one key per name."""
    kept = {"order_number": "R1", "message_id": message_id, "sends": sends}
    db.redis.set(memory_key("acme", "shop", "sent", "H1"), json.dumps(kept))


def met_again(
    db: Store, message_id: str, sends: dict, *, earlier_attempt: dict | None = None
) -> str:
    current = job(db, message_id, attempt=2 if earlier_attempt is not None else 1)
    if earlier_attempt is not None:
        db.once.inflight("acme", message_id, "create", 1, sends=earlier_attempt)

    def create(_key: str) -> str:
        return current.already_there("sent", "H1", sends, "Acme refused the order")

    return current.once("create", create, sends=sends)


def test_the_same_content_sent_by_another_message_is_already_sent(db: Store) -> None:
    sent_before(db, "m1", SENDS)

    assert met_again(db, "m2", SENDS) == "already sent by message m1"


def test_other_content_sent_by_another_message_is_refused_saying_what_differs(
    db: Store,
) -> None:
    sent_before(db, "m1", SENDS)
    other = {**SENDS, "shipping": {"address1": "7 Elm Rd.", "zip": "20815"}}

    with pytest.raises(HardError) as refused:
        met_again(db, "m2", other, earlier_attempt=other)  # even after its own attempt

    (reason,) = refused.value.reasons
    assert "message m1" in reason
    assert "shipping.address1 '2 Main St.' (this message: '7 Elm Rd.')" in reason
    assert "zip" not in reason


def test_once_its_record_expired_what_differs_is_named_with_what_this_message_carries(
    db: Store,
) -> None:
    sent_before(db, "m1", SENDS, record_lives=False)  # only digests are left
    other = {**SENDS, "shipping": {"address1": "7 Elm Rd.", "zip": "20815"}}

    assert met_again(db, "m2", SENDS) == "already sent by message m1"
    with pytest.raises(HardError) as refused:
        met_again(db, "m3", other)

    (reason,) = refused.value.reasons
    assert reason == (
        "H1 already exists: message m1 sent it with other shipping "
        "(this message: address1 '7 Elm Rd.', zip '20815')"
    )


def test_what_was_kept_whole_in_the_earlier_format_is_still_compared_field_by_field(
    db: Store,
) -> None:
    sent_before_in_the_earlier_format(db, "m1", SENDS)
    other = {**SENDS, "lines": [{"sku": "A", "qty": 2}]}

    assert met_again(db, "m2", SENDS) == "already sent by message m1"
    with pytest.raises(HardError, match=r"lines\.0\.qty 1 \(this message: 2\)"):
        met_again(db, "m3", other)
    assert Job.sent_about(db.memory.recall("acme", "shop", "sent", ["H1"])[0]) == {
        "order_number": "R1"
    }


def test_what_is_kept_of_a_creation_is_digests_not_the_content(db: Store) -> None:
    sent_before(db, "m1", SENDS)

    (kept,) = db.memory.recall("acme", "shop", "sent", ["H1"])

    assert kept[0] == "m1"
    assert len(kept[1]) == 11 + 2 * len(SENDS)
    assert Job.sent_about(kept) == {"order_number": "R1"}


def test_this_messages_own_earlier_attempt_is_recognised(db: Store) -> None:
    assert met_again(db, "m3", SENDS, earlier_attempt=SENDS).startswith("sent by an earlier")


def test_without_a_record_of_sending_it_already_exists_is_refused(db: Store) -> None:
    with pytest.raises(HardError, match="no record of sending it"):
        met_again(db, "m4", SENDS)
    with pytest.raises(HardError, match="no record of sending it"):
        met_again(db, "m5", SENDS, earlier_attempt={**SENDS, "lines": []})


def test_differences_name_each_changed_field_and_stop_at_a_limit() -> None:
    before = {"a": 1, "b": {"c": [1, 2]}, **{f"k{n}": n + 1 for n in range(12)}}
    now = {"a": 2, "b": {"c": [1, 3]}, **{f"k{n}": -n - 1 for n in range(12)}}

    changed = differences(before, now)

    assert changed[0] == "a 1 (this message: 2)"
    assert "b.c.1 2 (this message: 3)" in changed
    assert changed[-1] == "and 6 more"
    assert differences(before, before) == []


# -- an earlier attempt whose outcome is unknown: looked up once it can no longer land ----------


def unknown_earlier_attempt(db: Store, message_id: str, sent_ago: float) -> None:
    """Attempt 1 began the create ``sent_ago`` seconds ago and never learned how it ended."""
    db.once.inflight("acme", message_id, "create", 1, sends=SENDS)
    key = once_key("acme", message_id, "create")
    mark = json.loads(db.redis.get(key))
    db.redis.set(key, json.dumps({**mark, "since": time.time() - sent_ago}))


class Provider:
    """What the provider holds, and every call made to it."""

    def __init__(self, holds: str | None) -> None:
        self.holds = holds
        self.calls: list[str] = []

    def create(self, _key: str) -> str:
        self.calls.append("create")
        return "created"

    def find(self) -> str | None:
        self.calls.append("find")
        return self.holds


def test_an_unknown_attempt_that_may_still_land_is_waited_for_not_repeated(
    db: Store,
) -> None:
    unknown_earlier_attempt(db, "m5", sent_ago=20)
    provider = Provider(holds=None)

    with pytest.raises(EarlierAttemptUnsettled) as unsettled:
        job(db, "m5", attempt=2).once("create", provider.create, look=LookFirst(60, provider.find))

    assert provider.calls == []  # neither a look (too early to trust) nor a second create
    assert 39.5 <= unsettled.value.not_before <= 40.5  # when it can no longer land
    assert db.once.state("acme", "m5", "create")["state"] == "inflight"


def test_an_unknown_attempt_that_landed_is_found_and_not_made_again(db: Store) -> None:
    unknown_earlier_attempt(db, "m6", sent_ago=61)
    provider = Provider(holds="found")

    result = job(db, "m6", attempt=2).once(
        "create", provider.create, look=LookFirst(60, provider.find)
    )

    assert (result, provider.calls) == ("found", ["find"])
    assert db.once.state("acme", "m6", "create") == {
        "state": "done",
        "result": "found",
        "at": pytest.approx(time.time(), abs=5),
        "run": 0,
        "sends": None,
    }


def test_an_unknown_attempt_that_never_landed_is_made_again_after_the_look(
    db: Store,
) -> None:
    unknown_earlier_attempt(db, "m7", sent_ago=61)
    provider = Provider(holds=None)

    result = job(db, "m7", attempt=2).once(
        "create", provider.create, look=LookFirst(60, provider.find)
    )

    assert (result, provider.calls) == ("created", ["find", "create"])


def test_a_first_attempt_creates_without_looking(db: Store) -> None:
    provider = Provider(holds="found")

    result = job(db, "m8").once("create", provider.create, look=LookFirst(60, provider.find))

    assert (result, provider.calls) == ("created", ["create"])


def test_a_create_that_failed_transiently_is_looked_up_once_it_can_no_longer_land(
    db: Store,
) -> None:
    def create(_key: str) -> str:
        raise TransientError("Acme answered HTTP 502")

    with pytest.raises(TransientError) as failed:
        job(db, "m9").once("create", create, look=LookFirst(60, Provider(None).find))

    assert 59.5 <= failed.value.not_before <= 60.5  # the retry is the look, not a wait
    assert db.once.state("acme", "m9", "create")["state"] == "inflight"


def test_a_wait_for_a_create_to_settle_is_above_the_back_offs_cap_and_budget() -> None:
    policy = RetryPolicy(base_seconds=0.2, max_seconds=1, for_seconds=10, max_attempts=3)

    assert policy.next_attempt_at(1, since=0, now=5, not_before=30) == 35
    assert policy.next_attempt_at(1, since=0, now=5, retry_after=30) <= 6  # a hint is capped
    assert policy.next_attempt_at(3, since=0, now=5, not_before=30) is None  # attempts spent


def test_a_create_refused_for_its_rate_is_not_in_doubt(db: Store) -> None:
    def create(_key: str) -> str:
        raise TransientError("Acme is limiting requests", retry_after=3, status=429)

    with pytest.raises(TransientError) as limited:
        job(db, "m10").once("create", create, look=LookFirst(60, Provider(None).find))

    assert limited.value.not_before is None  # its Retry-After, not a wait for it to land
    assert db.once.state("acme", "m10", "create") is None


# -- a replay starts from scratch, and still creates once ----------------------------------------


def test_a_replay_does_not_take_an_earlier_runs_answer_for_its_own(db: Store) -> None:
    job(db, "r1").once("confirm", lambda _key: "what the first run was told")
    provider = Provider(holds=None)

    result = job(db, "r1", run=1).once("confirm", provider.create)

    assert (result, provider.calls) == ("created", ["create"])
    assert db.once.state("acme", "r1", "confirm")["run"] == 1


def test_a_replay_looks_for_what_an_earlier_run_created_before_creating(
    db: Store,
) -> None:
    job(db, "r2").once("create", lambda _key: "made by the first run", sends=SENDS)
    provider = Provider(holds="found")

    result = job(db, "r2", run=1).once(
        "create", provider.create, sends=SENDS, look=LookFirst(60, provider.find)
    )

    assert (result, provider.calls) == ("found", ["find"])  # not made twice


def test_a_replay_recognises_an_earlier_runs_create_as_its_own(db: Store) -> None:
    """Without a look, the replay's create meets the provider's "already exists": what the
    earlier run sent is this message's own, not another message's."""
    job(db, "r3").once("create", lambda _key: "made", sends=SENDS)
    replay = job(db, "r3", run=1)

    def create(_key: str) -> str:
        return replay.already_there("sent", "H1", SENDS, "Acme refused the order")

    assert (
        replay.once("create", create, sends=SENDS) == "sent by an earlier attempt of this message"
    )


def test_an_earlier_runs_attempt_does_not_clear_a_replays_mark(db: Store) -> None:
    """Attempts count from 1 again in a replay: a late refusal of the first run's attempt 1
    must not forget the replay's attempt 1, whose call is in flight."""
    db.once.inflight("acme", "r4", "create", 1, sends=SENDS, run=1)

    db.once.clear("acme", "r4", "create", 1, run=0)

    assert db.once.state("acme", "r4", "create")["state"] == "inflight"
    assert (job(db, "r4").run_key, job(db, "r4", run=1).run_key) == (
        "r4",
        "r4 (replay 1)",
    )
