"""No silent provider URL: without DOTCOM_API_URL Dotcom is not configured (not polled, its
messages refused naming the variable), and an invalid DOTCOM_* value stops every process at
start-up (web, worker, beat) with a message naming the variable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.dotcom.conftest import API_KEY, PASSWORD, seed_shipment_ready
from tests.support.stack import RedisServer, Stack
from worker.basics.errors import HardError
from worker.hub.messages import PollPayload, ShipmentReady
from worker.integrations import registry
from worker.integrations.dotcom.handlers import dotcom, poll_shipment_results, send_shipment
from worker.integrations.dotcom.settings import dotcom_settings
from worker.integrations.job import Job
from worker.pipeline.polling import Poll, configured_polls
from worker.store.bundle import Store

NOT_SET = "DOTCOM_API_URL is not set"
INVALID = [
    ("DOTCOM_API_URL", "not-a-url"),
    ("DOTCOM_TIMEZONE", "Mars/Base"),
    ("DOTCOM_READ_TIMEOUT_SECONDS", "-1"),
]


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials configured, the URL not."""
    monkeypatch.delenv("DOTCOM_API_URL", raising=False)
    monkeypatch.setenv("DOTCOM_API_KEY", API_KEY)
    monkeypatch.setenv("DOTCOM_PASSWORD", PASSWORD)
    monkeypatch.setenv("DOTCOM_SHIPPING_LOOKUP", '[{"Standard": "03"}]')


def job_for(db: Store, message: str, payload: Any) -> Job[Any]:
    return Job(
        integration="dotcom",
        message_id=uuid.uuid4().hex,
        message=message,
        payload=payload,
        parameters=dotcom.config(),
        store="store",
        attempt=1,
        db=db,
    )


@pytest.mark.usefixtures("account")
@pytest.mark.parametrize("url", [None, ""], ids=["unset", "empty"])
def test_without_the_url_auto_polls_skip_dotcom(
    monkeypatch: pytest.MonkeyPatch, url: str | None
) -> None:
    if url is not None:
        monkeypatch.setenv("DOTCOM_API_URL", url)
    assert configured_polls("auto", {"dotcom": dotcom}) == []

    monkeypatch.setenv("DOTCOM_API_URL", "https://dotcom.example/svc")
    assert configured_polls("auto", {"dotcom": dotcom}) == [Poll("dotcom", "tracking", 3600)]


@pytest.mark.usefixtures("account")
def test_without_the_url_a_shipment_is_a_hard_error_naming_it(db: Store) -> None:
    ready = ShipmentReady.model_validate(seed_shipment_ready()["payload"])
    with pytest.raises(HardError) as caught:
        send_shipment(job_for(db, "shipment:ready", ready))
    assert NOT_SET in str(caught.value)


@pytest.mark.usefixtures("account")
def test_without_the_url_a_poll_is_a_hard_error_naming_it(db: Store) -> None:
    with pytest.raises(HardError) as caught:
        poll_shipment_results(job_for(db, "dotcom:shipment_results:poll", PollPayload()))
    assert NOT_SET in str(caught.value)


@pytest.mark.parametrize(("variable", "value"), INVALID)
def test_an_invalid_setting_stops_loading_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as caught:
        registry.load()
    assert caught.value.code != 0
    assert variable in str(caught.value)


def test_loading_without_the_url_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOTCOM_API_URL", raising=False)
    assert "dotcom" in registry.load()
    assert dotcom.check() == ["DOTCOM_API_URL"]


# -- through real processes ----------------------------------------------------------------------


@pytest.fixture
def bad_url_stack(redis_server: RedisServer) -> Iterator[Stack]:
    stack = Stack(redis_server, {"DOTCOM_API_URL": "not-a-url"})
    yield stack
    stack.stop()


def assert_exited_naming(stack: Stack, name: str, variable: str) -> None:
    service = stack.services[name]
    status = service.process.wait(30)  # it stops by itself, and does not restart forever
    output = service.output()
    assert status != 0, output
    assert variable in output, output
    assert "must be an http(s) URL" in output, output


def test_web_worker_and_beat_refuse_to_start_with_an_invalid_url(bad_url_stack: Stack) -> None:
    with pytest.raises(AssertionError, match="exited at start-up"):
        bad_url_stack.start_web()
    assert_exited_naming(bad_url_stack, "web", "DOTCOM_API_URL")

    with pytest.raises(AssertionError, match="exited at start-up"):
        bad_url_stack.start_worker()
    assert_exited_naming(bad_url_stack, "worker", "DOTCOM_API_URL")

    bad_url_stack.start_beat()
    assert_exited_naming(bad_url_stack, "beat", "DOTCOM_API_URL")


def test_settings_are_read_once_and_again_when_a_variable_changes(
    account: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOTCOM_API_URL", "http://127.0.0.1:9/one")
    first = dotcom_settings()
    assert dotcom_settings() is first  # not parsed again per message
    monkeypatch.setenv("DOTCOM_API_URL", "http://127.0.0.1:9/two")
    assert dotcom_settings().api_url == "http://127.0.0.1:9/two"
    monkeypatch.setenv("DOTCOM_READ_TIMEOUT_SECONDS", "-1")
    with pytest.raises(HardError, match="DOTCOM_READ_TIMEOUT_SECONDS"):
        dotcom_settings()
