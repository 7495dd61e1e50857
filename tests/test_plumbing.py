"""Pure pieces: parameter folding, back-off, error classification, push signing, poll config."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator

import pytest
import requests
from pydantic import ValidationError

from worker.basics.errors import HardError, TransientError
from worker.basics.settings import Settings
from worker.hub.messages import HubMessage, fold_parameters, qualify
from worker.integrations import registry
from worker.integrations.http import classify, retry_after_seconds
from worker.pipeline.delivery import signed_headers
from worker.pipeline.polling import ScheduleError, configured_polls, poll_message


def test_parameters_fold_prefixed_and_bare_names_prefixed_winning() -> None:
    raw = [
        {"name": "api_key", "value": "bare"},
        {"name": "acme.api_key", "value": "prefixed"},
        {"name": "shipping_lookup", "value": [{"UPS Ground": "03"}]},
        {"name": "other.api_key", "value": "not ours"},
        "junk",
    ]

    folded = fold_parameters(raw, "acme")

    assert folded["api_key"] == "prefixed"
    assert folded["shipping_lookup"] == [{"UPS Ground": "03"}]
    assert folded["other.api_key"] == "not ours"


def test_parameters_ride_in_the_payload_or_at_the_top() -> None:
    inside = HubMessage(message_id="1", message="m", payload={"parameters": [{"name": "a"}]})
    top = HubMessage(message_id="1", message="m", payload={}, parameters=[{"name": "b"}])

    assert inside.raw_parameters() == [{"name": "a"}]
    assert top.raw_parameters() == [{"name": "b"}]
    assert qualify("dotcom", "last_polling_datetime") == "dotcom.last_polling_datetime"
    assert qualify("dotcom", "dotcom.x") == "dotcom.x"


def test_backoff_grows_has_jitter_honours_retry_after_and_stays_under_the_cap() -> None:
    policy = Settings(retry_base_seconds=2, retry_max_seconds=60).handler_retries

    first = [policy.delay(1) for _ in range(50)]
    fifth = [policy.delay(5) for _ in range(50)]

    assert all(1 <= d <= 2 for d in first)
    assert all(16 <= d <= 32 for d in fifth)
    assert len(set(fifth)) > 1
    assert policy.delay(1, retry_after=30) == 30
    assert policy.delay(10, retry_after=3600) == 60


def test_pushes_back_off_with_jitter_from_one_second_up_to_their_cap() -> None:
    policy = Settings(hub_push_retry_max_seconds=300).push_retries

    first = [policy.delay(1) for _ in range(50)]
    tenth = [policy.delay(10) for _ in range(50)]

    assert all(0.5 <= d <= 1 for d in first)
    assert all(150 <= d <= 300 for d in tenth)
    assert len(set(tenth)) > 1  # answers held back by a hub outage do not all return at once
    assert policy.delay(1, retry_after=120) == 120  # the hub's Retry-After
    assert policy.delay(1, retry_after=9999) == 300  # ... up to the cap


def test_the_retry_budget_is_time_and_attempts_limit_only_when_set() -> None:
    timed = Settings(retry_for_seconds=3600, retry_max_seconds=60).handler_retries
    since = 1000.0

    assert timed.next_attempt_at(500, since, since + 10) is not None  # attempts do not limit
    assert timed.next_attempt_at(3, since, since + 3600) is None  # the hour is spent
    last = timed.next_attempt_at(10, since, since + 3590)  # a 30-60 s back-off
    assert last == since + 3600  # the last retry is pulled in to the end of the budget
    counted = Settings(task_max_attempts=3).handler_retries
    assert counted.next_attempt_at(2, since, since) is not None
    assert counted.next_attempt_at(3, since, since) is None


def response(status: int, body: str = "", **headers: str) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body.encode()
    r.headers.update(headers)
    return r


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retriable_statuses_are_transient(status: int) -> None:
    assert isinstance(classify(response(status), "P"), TransientError)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_client_errors_are_hard_with_the_providers_words(status: int) -> None:
    error = classify(response(status, '{"message": "bad sku"}'), "P")

    assert isinstance(error, HardError)
    assert error.reasons == ['{"message": "bad sku"}']


def test_retry_after_in_seconds_or_as_a_date_and_a_provider_header() -> None:
    assert classify(response(429, **{"Retry-After": "7"}), "P").retry_after == 7
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert retry_after_seconds("soon") is None
    odd = classify(
        response(429, **{"Duoplane-Retry-After-Seconds": "3"}),
        "P",
        retry_after_headers=("Retry-After", "Duoplane-Retry-After-Seconds"),
    )
    assert odd.retry_after == 3


@pytest.fixture
def far_from_gmt(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process in a local time zone hours from GMT."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_retry_after_date_is_gmt_in_each_of_https_three_forms(far_from_gmt: None) -> None:
    """IMF-fixdate, RFC 850 and asctime's form (which writes no zone: HTTP dates are GMT)."""
    for date in (
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Wednesday, 21-Oct-15 07:28:00 GMT",
        "Wed Oct 21 07:28:00 2015",
    ):
        assert retry_after_seconds(date, now=1445412470) == 10, date


def test_push_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    s = Settings(hub_access_token="tok", hub_store="shop")
    body = b'{"message_id":"m"}'

    headers = signed_headers(body, s, timestamp=1700000000)

    expected = hmac.new(b"tok", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature"] == f"sha256={expected}"
    assert headers["X-Hub-Store"] == "shop"
    assert headers["X-Hub-Timestamp"] == "1700000000"
    assert headers["X-Hub-Access-Token"] == "tok"


def test_classic_signed_access_token_is_hmac_sha1_of_body_and_timestamp() -> None:
    s = Settings(hub_access_token="tok", hub_sign_access_token=True)
    body = b"{}"

    headers = signed_headers(body, s, timestamp=1700000000)

    assert headers["X-Hub-Access-Token"] == hmac.new(b"tok", b"{}1700000000", "sha1").hexdigest()


@pytest.fixture
def acme() -> dict[str, registry.Integration]:
    registry.load("tests.support.acme")
    return {"acme": registry.integrations()["acme"]}


def test_polls_auto_needs_configured_credentials(
    acme: dict[str, registry.Integration], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACME_API_KEY", raising=False)
    assert configured_polls("auto", acme) == []
    monkeypatch.setenv("ACME_API_KEY", "k")
    [poll] = configured_polls("auto", acme)
    assert (poll.integration, poll.service, poll.every_seconds) == ("acme", "tracking", 3600)


def test_polls_explicit_list_and_errors(acme: dict[str, registry.Integration]) -> None:
    [poll] = configured_polls("acme.tracking=60", acme)
    assert poll.every_seconds == 60
    assert configured_polls("off", acme) == []
    with pytest.raises(ScheduleError, match="unknown service"):
        configured_polls("acme.nope", acme)
    with pytest.raises(ScheduleError, match="whole number"):
        configured_polls("acme.tracking=soon", acme)
    with pytest.raises(ScheduleError, match="no schedule"):
        configured_polls("acme.send_order", acme)


def test_poll_message_id_is_fixed_within_an_interval(acme: dict[str, registry.Integration]) -> None:
    service = acme["acme"].services["tracking"]

    a = poll_message("acme", service, 60, now=120.0)
    b = poll_message("acme", service, 60, now=179.9)
    c = poll_message("acme", service, 60, now=180.0)

    assert a.message_id == b.message_id != c.message_id
    assert a.message == "acme:shipments:poll"


def test_a_sentinel_redis_url_names_every_sentinel_the_master_its_database_and_password() -> None:
    s = Settings(
        redis_url="sentinel://:pw@h1:26379;sentinel://h2:26380;sentinel://h3/2",
        redis_sentinel_master="shiphub",
    )

    where = s.sentinels

    assert where is not None
    assert where.addresses == (("h1", 26379), ("h2", 26380), ("h3", 26379))
    assert (where.master, where.db, where.password) == ("shiphub", 2, "pw")
    # kombu parses each part on its own when it moves on to the next: each is complete.
    assert where.kombu_url.split(";") == [
        "sentinel://:pw@h1:26379/2",
        "sentinel://:pw@h2:26380/2",
        "sentinel://:pw@h3:26379/2",
    ]
    assert Settings(redis_url="redis://127.0.0.1:6379/0").sentinels is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sentinel://:s3cret@h1:port", "invalid port"),
        ("sentinel://:a@h1;sentinel://:b@h2", "different passwords or databases"),
        ("sentinel://h1/1;sentinel://h2/2", "different passwords or databases"),
        ("sentinel://h1/first", "the database is a number"),
        ("sentinel://h1;redis://h2", "is not sentinel://host:port"),
    ],
)
def test_a_sentinel_url_that_cannot_work_is_refused_naming_the_problem_not_the_password(
    url: str, problem: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(redis_url=url)

    said = refused.value.errors()[0]["msg"]  # what the refusal to start prints
    assert "REDIS_URL" in said and problem in said and "s3cret" not in said


def test_a_sentinel_url_in_kombus_hands_stays_on_our_fixed_transport_after_a_switch() -> None:
    from kombu import Connection

    from worker.tasks import broker

    connection = Connection(
        "sentinel://127.0.0.1:1/0;sentinel://127.0.0.1:2/0",
        transport="worker.tasks.broker:SentinelTransport",
    )
    connection.maybe_switch_next()  # what kombu does after a connection error

    assert connection.port == 2
    assert connection.transport_cls in ("sentinel", "worker.tasks.broker:SentinelTransport")
    assert connection.transport.Channel is broker.SentinelChannel
    assert issubclass(broker.SentinelChannel, broker.kombu_redis.SentinelChannel)
