"""Talking to Dotcom: signing, cursors and windows, settings, and the client against the
simulator's app served in-process (real HTTP, no extra processes)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from pydantic import SecretStr
from werkzeug.serving import make_server

from simulators.dotcom import (
    OrderError as SimError,
)
from simulators.dotcom import (
    SimulatorConfig,
    create_app,
    order_errors_document,
)
from tests.dotcom.conftest import API_KEY, BASE_PATH, FIXTURES, PASSWORD
from worker.basics.errors import HardError, TransientError
from worker.integrations.dotcom.client import Credentials, DotcomClient, authorization, signature
from worker.integrations.dotcom.documents import (
    HeldOrder,
    OrderError,
    UnexpectedAnswer,
    is_duplicate_order,
    parse_held_orders,
    parse_order_errors,
)
from worker.integrations.dotcom.handlers import credentials, dotcom
from worker.integrations.dotcom.mapping import dotcom_time, parse_cursor, poll_window, shipments_url
from worker.integrations.dotcom.settings import DotcomSettings, dotcom_settings, load_config
from worker.integrations.http import pooled_session
from worker.integrations.job import Job
from worker.pipeline.polling import Poll, configured_polls
from worker.store.bundle import Store

NEW_YORK = ZoneInfo("America/New_York")
# Dotcom's test service, whose URLs the signature vectors sign (no setting defaults to it).
TEST_API_URL = "https://cwa.dotcomdistribution.com/dcd_api_test/DCDAPIService.svc"


# -- signing -------------------------------------------------------------------------------------


def test_signature_vector_for_the_order_url() -> None:
    url = f"{TEST_API_URL}/order"
    assert authorization(API_KEY, PASSWORD, url) == "demo-api-key:7NIrsGHy7KHm1rvj1qBw5A=="


def test_signature_vector_for_a_shipment_url_with_escapes() -> None:
    url = (
        f"{TEST_API_URL}/shipment?fromShipDate=2013-10-28&toShipDate=2013-10-29%2003:00:21%20-0400"
    )
    assert signature(url, PASSWORD) == "UNRGx1K817atQaReAChWpw=="


# -- cursors and windows -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2013-10-28 3:15:21 -0400", datetime(2013, 10, 28, 7, 15, 21, tzinfo=UTC)),
        ("2013-10-28 03:15:21 -0400", datetime(2013, 10, 28, 7, 15, 21, tzinfo=UTC)),
        ("2013-10-28 03:15:21 -04:00", datetime(2013, 10, 28, 7, 15, 21, tzinfo=UTC)),
        ("2013-10-28 07:15:21 UTC", datetime(2013, 10, 28, 7, 15, 21, tzinfo=UTC)),
        ("2013-10-28 03:15:21", datetime(2013, 10, 28, 7, 15, 21, tzinfo=UTC)),
        ("2013-10-28 03:15", datetime(2013, 10, 28, 7, 15, tzinfo=UTC)),
        ("2013-10-28T03:15:21-04:00", datetime(2013, 10, 28, 7, 15, 21, tzinfo=UTC)),
        ("2013-10-28T07:15:21Z", datetime(2013, 10, 28, 7, 15, 21, tzinfo=UTC)),
        ("2013-10-28T03:15:21.5", datetime(2013, 10, 28, 7, 15, 21, 500000, tzinfo=UTC)),
        ("2013-10-28", datetime(2013, 10, 28, 4, 0, tzinfo=UTC)),
        (" 2013-12-01 ", datetime(2013, 12, 1, 5, 0, tzinfo=UTC)),
    ],
)
def test_cursor_formats(raw: str, expected: datetime) -> None:
    assert parse_cursor(raw, NEW_YORK) == expected


@pytest.mark.parametrize("raw", ["yesterday", "2013-13-01", "10/28/2013", "2013-10-28 25:00:00"])
def test_unreadable_cursor(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_cursor(raw, NEW_YORK)


def test_cursor_is_written_like_the_classic() -> None:
    moment = datetime(2013, 10, 29, 7, 15, 21, tzinfo=UTC)
    assert dotcom_time(moment, NEW_YORK) == "2013-10-29 03:15:21 -0400"
    assert parse_cursor(dotcom_time(moment, NEW_YORK), NEW_YORK) == moment


def test_window_runs_from_the_cursor_to_now_minus_the_lag() -> None:
    s = DotcomSettings(poll_lag_seconds=900, poll_overlap_seconds=600)
    now = datetime(2013, 10, 29, 7, 30, 21, 123456, tzinfo=UTC)
    cursor = datetime(2013, 10, 28, 7, 15, 21, tzinfo=UTC)
    window = poll_window(cursor, now, s)
    assert window.start == cursor
    assert window.end == datetime(2013, 10, 29, 7, 15, 21, tzinfo=UTC)
    assert window.query_start == cursor - timedelta(minutes=10)
    assert window.is_open


def test_first_window_looks_back() -> None:
    s = DotcomSettings(poll_lag_seconds=0, first_poll_lookback_hours=24)
    now = datetime(2013, 10, 29, 7, 0, tzinfo=UTC)
    assert poll_window(None, now, s).start == now - timedelta(hours=24)


def test_a_cursor_too_recent_gives_an_empty_window() -> None:
    s = DotcomSettings(poll_lag_seconds=900)
    now = datetime(2013, 10, 29, 7, 0, tzinfo=UTC)
    assert not poll_window(now - timedelta(minutes=5), now, s).is_open


def test_window_url_is_encoded_as_dotcom_documents_it() -> None:
    start = datetime(2013, 10, 28, 7, 15, 21, tzinfo=UTC)
    end = datetime(2013, 10, 29, 7, 0, 21, tzinfo=UTC)
    assert shipments_url(TEST_API_URL, start, end, NEW_YORK) == (
        f"{TEST_API_URL}/shipment?fromShipDate=2013-10-28%2003:15:21%20-0400"
        "&toShipDate=2013-10-29%2003:00:21%20-0400"
    )


def test_window_url_encodes_a_plus_offset() -> None:
    moment = datetime(2013, 10, 20, 7, 0, tzinfo=UTC)
    url = shipments_url("https://x/svc", moment, moment, ZoneInfo("Europe/Paris"))
    assert url == (
        "https://x/svc/shipment?fromShipDate=2013-10-20%2009:00:00%20%2B0200"
        "&toShipDate=2013-10-20%2009:00:00%20%2B0200"
    )


# -- Dotcom's order answers ------------------------------------------------------------------------


def test_empty_order_errors_is_success() -> None:
    assert parse_order_errors(order_errors_document([]).encode()) == []


def test_order_errors_in_their_order() -> None:
    document = order_errors_document(
        [
            SimError("Invalid Item. Item X does not exist in the item master.", "H1"),
            SimError("Second problem.", "H1"),
        ]
    )
    assert parse_order_errors(document.encode()) == [
        OrderError("Invalid Item. Item X does not exist in the item master.", "H1"),
        OrderError("Second problem.", "H1"),
    ]


@pytest.mark.parametrize(
    "document", [b"", b"<response><order_errors>", b"<html><body>Error</body></html>"]
)
def test_unexpected_order_answer_is_transient(document: bytes) -> None:
    with pytest.raises(UnexpectedAnswer):
        parse_order_errors(document)


def test_duplicate_order_wording() -> None:
    assert is_duplicate_order(OrderError("Order H1 already exists.", "H1"), "H1")
    assert is_duplicate_order(OrderError("Duplicate order number", ""), "H1")
    assert not is_duplicate_order(OrderError("Order H2 already exists.", "H2"), "H1")
    assert not is_duplicate_order(OrderError("Invalid Item.", "H1"), "H1")


# -- settings ------------------------------------------------------------------------------------


def test_config_comes_from_dotcom_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOTCOM_API_KEY", "key-1")
    monkeypatch.setenv("DOTCOM_PASSWORD", "secret-1")
    monkeypatch.setenv("DOTCOM_SHIPPING_LOOKUP", '[{"UPS Ground (USD)": "03"}]')
    monkeypatch.setenv("DOTCOM_LAST_POLLING_DATETIME", "2013-10-28 3:15:21 -0400")
    config = load_config()
    assert config["api_key"] == "key-1"
    assert isinstance(config["password"], SecretStr)
    assert config["password"].get_secret_value() == "secret-1"
    assert "secret-1" not in repr(config)
    assert config["shipping_lookup"] == '[{"UPS Ground (USD)": "03"}]'
    assert config["last_polling_datetime"] == "2013-10-28 3:15:21 -0400"


def test_config_leaves_out_what_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("API_KEY", "PASSWORD", "SHIPPING_LOOKUP", "LAST_POLLING_DATETIME"):
        monkeypatch.delenv(f"DOTCOM_{name}", raising=False)
    monkeypatch.setenv("DOTCOM_PASSWORD", "")
    monkeypatch.delenv("DOTCOM_API_URL", raising=False)
    assert load_config() == {}
    assert dotcom_settings().api_url is None  # no default: see test_configuration.py


def test_bad_setting_is_a_hard_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOTCOM_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("DOTCOM_API_URL", "ftp://example.com/")
    with pytest.raises(HardError) as caught:
        dotcom_settings()
    assert [r.split(":")[0] for r in caught.value.reasons] == ["DOTCOM_API_URL", "DOTCOM_TIMEZONE"]


# -- credentials ---------------------------------------------------------------------------------


def job_with(db: Store, **parameters: Any) -> Job[Any]:
    return Job("dotcom", "m1", "shipment:ready", None, parameters, "store", 1, db)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("api_key", {"api_key": "key-1\n", "password": PASSWORD}),
        ("api_key", {"api_key": "key-1\tkey", "password": PASSWORD}),
        ("password", {"api_key": API_KEY, "password": SecretStr("pass-1\r\n")}),
        ("password", {"api_key": API_KEY, "password": "pass\x00word"}),
    ],
)
def test_a_credential_with_control_characters_is_refused_naming_it(
    db: Store, name: str, parameters: dict[str, Any]
) -> None:
    with pytest.raises(HardError) as caught:
        credentials(job_with(db, **parameters))
    assert caught.value.subject == f"Invalid {name}"
    assert caught.value.reasons == [
        f"{name} has control characters (a line break, a tab...): check the {name} parameter "
        f"(or DOTCOM_{name.upper()}); its value is not shown"
    ]
    value = parameters[name]
    secret = value.get_secret_value() if isinstance(value, SecretStr) else value
    assert secret.strip() not in str(caught.value)


def test_an_api_key_beyond_ascii_is_refused_naming_it(db: Store) -> None:
    with pytest.raises(HardError) as caught:
        credentials(job_with(db, api_key="kéy-1", password=PASSWORD))
    assert caught.value.subject == "Invalid api_key"
    assert "kéy-1" not in str(caught.value)


def test_credentials_with_surrounding_spaces_are_trimmed(db: Store) -> None:
    found = credentials(job_with(db, api_key=f"  {API_KEY} ", password=PASSWORD))
    assert found.api_key == API_KEY
    assert found.password.get_secret_value() == PASSWORD


# -- the client over HTTP ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[str, object]]:
    app = create_app(SimulatorConfig(ship_after_seconds=0, visible_after_seconds=0))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app.extensions["dotcom_simulator"]
    server.shutdown()


@pytest.fixture
def base(live: tuple[str, object]) -> str:
    url, _ = live
    requests.post(f"{url}/_sim/reset", timeout=5).raise_for_status()
    return f"{url}{BASE_PATH}"


def client(base: str, password: str = PASSWORD) -> DotcomClient:
    return DotcomClient(base, Credentials(API_KEY, SecretStr(password)), (2, 5), pooled_session())


def order_request(number: str) -> bytes:
    """A valid order (tests/fixtures/dotcom/order_request.xml) under ``number``."""
    return (FIXTURES / "order_request.xml").read_bytes().replace(b">R100<", f">{number}<".encode())


ORDER = order_request("H1")


def fault(base: str, kind: str, route: str) -> None:
    control = base.removesuffix(BASE_PATH)
    body = {"kind": kind, "route": route}
    requests.post(f"{control}/_sim/faults", json=body, timeout=5).raise_for_status()


def duplicate_orders(base: str, what: str) -> None:
    control = base.removesuffix(BASE_PATH)
    answer = requests.post(f"{control}/_sim/config", json={"duplicate_orders": what}, timeout=5)
    answer.raise_for_status()


def test_signed_order_is_taken(base: str) -> None:
    duplicate_orders(base, "refuse")
    try:
        assert client(base).send_orders(ORDER) == []
        assert client(base).send_orders(ORDER) == [OrderError("Order H1 already exists.", "H1")]
    finally:
        duplicate_orders(base, "accept")


@pytest.mark.parametrize("number", ["H1", "H 2/3+4%5"])
def test_the_orders_held_under_a_number_are_read_signed(base: str, number: str) -> None:
    assert client(base).held_orders(number) == []
    client(base).send_orders(order_request(number))
    client(base).send_orders(order_request(number))  # the simulator stores a repeat again

    held = client(base).held_orders(number)

    assert [(o.client_order_number, o.order_status) for o in held] == [(number, "Received")] * 2
    assert len({o.dcd_order_number for o in held}) == 2
    assert client(base).held_orders(number + "0") == []


def test_the_specifications_spelling_of_the_order_status_answer_is_read() -> None:
    sample = b"""<?xml version="1.0" encoding="UTF-8"?><response><orders><order>
      <client-order-number>H1</client-order-number><dcd-order-number>0202100001</dcd-order-number>
      <dcd-order-suffix>01</dcd-order-suffix><order-status>Shipped</order-status>
      <ship_date>2010-03-04</ship_date></order></orders></response>"""
    assert parse_held_orders(sample) == [HeldOrder("H1", "0202100001", "Shipped")]
    assert parse_held_orders(b"<response><orders/></response>") == []


def test_signed_window_with_escapes_is_taken(base: str) -> None:
    end = datetime.now(UTC)
    client(base).send_orders(ORDER)
    url = shipments_url(base, end - timedelta(hours=1), end + timedelta(seconds=5), NEW_YORK)
    found = list(client(base).shipments(url))
    assert [r.client_order_number for r in found] == ["H1"]
    url = shipments_url(base, end - timedelta(hours=1), end, ZoneInfo("Asia/Tokyo"))
    assert "%2B0900" in url
    assert len(list(client(base).shipments(url))) <= 1  # signed and accepted


def test_wrong_password_is_a_hard_error_without_the_secret(base: str) -> None:
    with pytest.raises(HardError) as caught:
        client(base, password="s3cret-wrong").send_orders(ORDER)
    assert caught.value.subject == "Dotcom rejected the API key or signature"
    assert "s3cret-wrong" not in str(caught.value)


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("http_500", "HTTP 500"),
        ("http_503", "HTTP 503"),
        ("malformed_xml", "not readable XML"),
        ("html_error_page", "an HTML page (HTTP 200) instead of XML"),
    ],
)
def test_failures_are_transient_with_a_clear_message(base: str, kind: str, words: str) -> None:
    fault(base, kind, "order")
    with pytest.raises(TransientError) as caught:
        client(base).send_orders(ORDER)
    assert words in str(caught.value)


@pytest.mark.parametrize("kind", ["http_500", "malformed_xml", "html_error_page"])
def test_failed_shipment_answers_are_transient(base: str, kind: str) -> None:
    fault(base, kind, "shipment")
    end = datetime.now(UTC)
    with pytest.raises(TransientError):
        list(client(base).shipments(shipments_url(base, end - timedelta(hours=1), end, NEW_YORK)))


def test_unreachable_dotcom_is_transient() -> None:
    with pytest.raises(TransientError) as caught:
        client("http://127.0.0.1:9/svc").send_orders(ORDER)
    assert "could not be reached" in str(caught.value)


def test_slow_dotcom_is_transient(base: str) -> None:
    control = base.removesuffix(BASE_PATH)
    body = {"kind": "slow", "route": "order", "delay_seconds": 1.5}
    requests.post(f"{control}/_sim/faults", json=body, timeout=5).raise_for_status()
    slow = DotcomClient(base, Credentials(API_KEY, SecretStr(PASSWORD)), (1, 0.5), pooled_session())
    with pytest.raises(TransientError) as caught:
        slow.send_orders(ORDER)
    assert "did not answer in time" in str(caught.value)


def test_auto_polls_run_tracking_when_the_credentials_are_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    integrations = {"dotcom": dotcom}
    monkeypatch.setenv("DOTCOM_API_URL", TEST_API_URL)
    monkeypatch.setenv("DOTCOM_API_KEY", "key-1")
    monkeypatch.delenv("DOTCOM_PASSWORD", raising=False)
    assert configured_polls("auto", integrations) == []

    monkeypatch.setenv("DOTCOM_PASSWORD", "secret-1")  # no cursor needed: the poll keeps its own
    monkeypatch.delenv("DOTCOM_LAST_POLLING_DATETIME", raising=False)
    assert configured_polls("auto", integrations) == [Poll("dotcom", "tracking", 3600)]
