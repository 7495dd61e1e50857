"""Structured logs (``worker.basics.logs``): the JSON and text lines, one line per event whatever
the traceback, the fields bound per thread, the redaction of every known secret, and the lines the
receiver and the worker's task signals add (fast: no process is started)."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from flask.testing import FlaskClient
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from tests.conftest import ENDPOINT_KEY, auth
from worker.basics import logs
from worker.integrations.kit import ProviderSettings

SECRET = "s3cret-value-1"
QUOTED_SECRET = 'pa"ss\\word-2'


class Lines:
    """What the configured handler wrote, line by line."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def text(self) -> str:
        return self.stream.getvalue()

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines()]


def configured(
    lines: Lines, log_format: str, secrets: list[str], log_level: str = "INFO"
) -> Iterator[Lines]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    handler = logs.configure(log_format, log_level, lines.stream, secrets)
    logs.clear()
    try:
        yield lines
    finally:
        logs.clear()
        root.removeHandler(handler)
        root.handlers[:], root.level = saved[0], saved[1]
        sys.excepthook, threading.excepthook = saved[2], saved[3]
        logging.captureWarnings(False)


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    yield from configured(Lines(), "json", [SECRET, QUOTED_SECRET, "short"])


@pytest.fixture
def text_lines() -> Iterator[Lines]:
    yield from configured(Lines(), "text", [SECRET])


def test_a_json_line_names_the_message_it_is_about(json_lines: Lines) -> None:
    logs.bind(message_id="m-1", integration="dotcom", service="send_shipment")
    logs.bind(attempt=2)
    logging.getLogger("shiphub.test").info("sent %s", "H1", extra={"shipment": "H1"})

    (line,) = json_lines.json()
    assert list(line)[:8] == [
        "time",
        "level",
        "logger",
        "message",
        "message_id",
        "integration",
        "service",
        "attempt",
    ]
    assert line["time"].endswith("+00:00")
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "shiphub.test", "sent H1")
    assert (line["message_id"], line["attempt"], line["shipment"]) == ("m-1", 2, "H1")


def test_a_traceback_stays_inside_its_one_line(json_lines: Lines) -> None:
    try:
        {}["missing"]
    except KeyError:
        logging.getLogger("shiphub.test").exception("handler failed\nsecond line")

    assert len(json_lines.text().splitlines()) == 1
    (line,) = json_lines.json()
    assert line["message"] == "handler failed\nsecond line"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in line["exception"]
    assert list(line)[-1] == "exception"


def test_celerys_formatting_data_is_not_a_field(json_lines: Lines) -> None:
    data = {"args": "['dotcom', 'm-1', 'claim']", "traceback": "Traceback ..."}
    logging.getLogger("celery.app.trace").info("Task x succeeded", extra={"data": data})

    (line,) = json_lines.json()
    assert "data" not in line and "claim" not in json_lines.text()


def test_every_known_secret_is_redacted_wherever_it_is(json_lines: Lines) -> None:
    log = logging.getLogger("shiphub.test")
    log.warning("token %s in the message", SECRET)
    log.warning("in a field", extra={"header": f"Bearer {SECRET}", "quoted": QUOTED_SECRET})
    try:
        raise ValueError(f"the provider echoed {SECRET}")
    except ValueError:
        log.exception("failed")
    log.warning("a short secret is not looked for: short")

    text = json_lines.text()
    assert SECRET not in text
    assert "ss\\word-2" not in text and "ss\\\\word-2" not in text
    first, second, third, fourth = json_lines.json()
    assert first["message"] == "token [redacted] in the message"
    assert (second["header"], second["quoted"]) == ("Bearer [redacted]", "[redacted]")
    assert "ValueError: the provider echoed [redacted]" in third["exception"]
    assert fourth["message"].endswith(": short")


def test_fields_bound_in_one_thread_stay_out_of_anothers_lines(json_lines: Lines) -> None:
    logs.bind(message_id="mine", integration="dotcom")
    other = threading.Thread(target=lambda: logging.getLogger("t").info("other thread"))
    other.start()
    other.join()
    logging.getLogger("t").info("this thread")
    logs.clear()
    logging.getLogger("t").info("after clear")

    other_line, this_line, cleared = json_lines.json()
    assert "message_id" not in other_line
    assert this_line["message_id"] == "mine"
    assert "message_id" not in cleared and "integration" not in cleared


def test_an_uncaught_exception_in_a_thread_is_one_line(json_lines: Lines) -> None:
    def crash() -> None:
        raise RuntimeError("scheduler tick crashed")

    thread = threading.Thread(target=crash, name="shiphub-scheduler")
    thread.start()
    thread.join()

    (line,) = json_lines.json()
    assert line["message"] == "uncaught exception in thread shiphub-scheduler"
    assert "RuntimeError: scheduler tick crashed" in line["exception"]


def test_text_lines_for_a_terminal(text_lines: Lines) -> None:
    logs.bind(message_id="m-1", attempt=1)
    logging.getLogger("shiphub.test").info("sent with %s", SECRET)

    (line,) = text_lines.text().splitlines()
    assert line.endswith(" INFO shiphub.test [message_id=m-1 attempt=1]: sent with [redacted]")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_json_unless_on_a_terminal() -> None:
    redactor = logs.Redactor([])
    assert isinstance(logs.formatter("auto", io.StringIO(), redactor), logs.JsonLines)
    assert isinstance(logs.formatter("auto", _Terminal(), redactor), logs.TextLines)
    assert isinstance(logs.formatter("json", _Terminal(), redactor), logs.JsonLines)
    assert isinstance(logs.formatter("text", io.StringIO(), redactor), logs.TextLines)


def test_configuring_again_replaces_its_handler(json_lines: Lines) -> None:
    again = Lines()
    handler = logs.configure("json", "WARNING", again.stream, [])
    try:
        ours = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
        assert handler in ours and len([h for h in ours if h.stream is json_lines.stream]) == 0
        logging.getLogger("t").info("below LOG_LEVEL")
        logging.getLogger("t").warning("kept")
        assert [line["message"] for line in again.json()] == ["kept"]
    finally:
        logging.getLogger().removeHandler(handler)


class _ZedSettings(ProviderSettings):
    """A provider whose credential is a SecretStr named unlike a secret variable."""

    model_config = SettingsConfigDict(env_prefix="ZED_", extra="ignore")
    provider: ClassVar[str] = "Zed"
    credentials: SecretStr | None = None
    account: str | None = None


def test_known_secrets_are_every_secret_setting() -> None:
    environ = {
        "ENDPOINT_KEY": "endpoint-key-1",
        "HUB_ACCESS_TOKEN": "hub-token-1",
        "SHIPHUB_SECRET_KEY": "fernet-one,fernet-two",
        "OPS_PASSWORD": "ops-password-1",
        "DOTCOM_PASSWORD": "dotcom-password",
        "ECOMDASH_ECD_KEY": "ecd-key-1",
        "SHIPPING_ORDERS_WEBHOOK_SECRET": "webhook-secret",
        "ZED_CREDENTIALS": "zed-credentials",
        "ZED_ACCOUNT": "zed-account-name",
        "FLOWER_BASIC_AUTH": "admin:flower-password",
        "REDIS_URL": "redis://:redis-password@redis.internal:6379/0",
        "HUB_STORE": "default-store",
        "HUB_PUSH_SECRET": "whsec_cHVzaC1zZWNyZXQtb25l whsec_cHVzaC1zZWNyZXQtdHdv",
    }

    found = logs.known_secrets(environ)

    for expected in (
        "endpoint-key-1",
        "hub-token-1",
        "fernet-one",
        "fernet-two",
        "ops-password-1",
        "dotcom-password",
        "ecd-key-1",
        "webhook-secret",
        "zed-credentials",
        "flower-password",
        "redis-password",
        "whsec_cHVzaC1zZWNyZXQtb25l",  # each secret of a rotation, with and without its prefix
        "cHVzaC1zZWNyZXQtdHdv",
    ):
        assert expected in found
    assert "zed-account-name" not in found and "default-store" not in found


def test_the_receiver_logs_one_intake_line_per_message(
    json_lines: Lines, client: FlaskClient
) -> None:
    order = {"message_id": "m-1", "message": "order:ready", "payload": {"order": {"number": "H1"}}}
    client.post("/acme/send_order", json=order, headers=auth())
    client.post("/acme/send_order", json=order, headers=auth())
    client.post("/acme/send_order", json={**order, "payload": {"order": {}}}, headers=auth())
    client.post("/acme/send_order", json={**order, "message_id": "m-2"})
    changed = {**order, "payload": {"order": {"number": "H2"}}}
    client.post("/acme/send_order", json=changed, headers=auth())

    intake = [line for line in json_lines.json() if "intake" in line]
    assert [(i["intake"], i["status"], i.get("reason")) for i in intake] == [
        ("queued", 200, None),
        ("duplicate", 200, None),
        ("refused", 422, "Invalid payload.order.number"),
        ("refused", 401, "Unauthorized"),
        ("conflict", 409, "this message_id was received with another body"),
    ]
    # A request without the token is refused before its body is read: no message_id.
    assert [i.get("message_id") for i in intake] == ["m-1", "m-1", "m-1", None, "m-1"]
    assert all((i["integration"], i["service"]) == ("acme", "send_order") for i in intake)
    assert [i["level"] for i in intake] == ["INFO", "INFO", "INFO", "WARNING", "WARNING"]
    assert "H1" not in json_lines.text() and ENDPOINT_KEY not in json_lines.text()


def test_a_request_after_a_message_carries_none_of_its_fields(
    json_lines: Lines, client: FlaskClient
) -> None:
    order = {"message_id": "m-9", "message": "order:ready", "payload": {"order": {"number": "H9"}}}
    client.post("/acme/send_order", json=order, headers=auth())
    client.post("/acme/send_order", data="not json", headers=auth())

    refused = [line for line in json_lines.json() if line.get("intake") == "refused"]
    assert len(refused) == 1 and "message_id" not in refused[0], refused


def test_a_task_is_named_from_its_arguments_and_forgotten_when_it_ends() -> None:
    from worker.tasks.app import _bind_message, _forget_message, _ReceivedMessage, message_fields

    assert message_fields("dotcom.shipment_ready", ["dotcom", "m-1"]) == {
        "message_id": "m-1",
        "integration": "dotcom",
        "service": "send_shipment",
    }
    assert message_fields("shiphub.deliver", ["dotcom", "m-1", "claim"]) == {
        "message_id": "m-1",
        "integration": "dotcom",
    }
    assert message_fields("shiphub.watchdog", []) == {}

    class Task:
        name = "dotcom.shipment_ready"

    logs.bind(attempt=3)  # left by a previous task of this pool thread
    _bind_message(task=Task(), args=["dotcom", "m-2"])
    assert logs.context() == {
        "message_id": "m-2",
        "integration": "dotcom",
        "service": "send_shipment",
    }
    _forget_message()
    assert logs.context() == {}

    received = logging.LogRecord("celery.worker.strategy", logging.INFO, "", 0, "x", (), None)
    received.data = {"name": "shiphub.deliver", "args": "['dotcom', 'm-3', 'c']"}
    assert _ReceivedMessage().filter(received)
    assert (received.message_id, received.integration) == ("m-3", "dotcom")


def test_a_redis_password_on_any_sentinel_part_is_a_known_secret() -> None:
    environ = {"REDIS_URL": "sentinel://h1:26379;sentinel://:redis-pass-2@h2:26379/0"}

    assert "redis-pass-2" in logs.known_secrets(environ)


def celery_task_end(description: str, exc: str, level: int = logging.INFO) -> None:
    """A task's end as Celery's tracer logs it (``celery.app.trace``, ``_log_error``)."""
    context = {"name": "dotcom.shipment_ready", "id": "t-1", "description": description}
    context["exc"] = exc
    logging.getLogger("celery.app.trace").log(
        level, "Task %(name)s[%(id)s] %(description)s: %(exc)s", context, extra={"data": context}
    )


@pytest.mark.parametrize("log_level", ["INFO", "WARNING"])
def test_a_message_that_failed_or_went_dead_is_a_warning(log_level: str) -> None:
    lines = Lines()
    for _ in configured(lines, "json", [], log_level):
        celery_task_end("raised expected", "MessageFailed('failed: refused')")
        celery_task_end("raised expected", "MessageFailed('dead: gave up')")
        celery_task_end("raised expected", "PushFailed('hub answered HTTP 503')")
        celery_task_end("raised expected", "SomethingElse('expected, and fine')")
        logging.getLogger("celery.app.trace").info("Task x[t-2] succeeded in 0.1s: 'succeeded'")

    found = [(line["level"], line["message"].split(": ", 1)[1]) for line in lines.json()]
    warnings = [
        ("WARNING", "MessageFailed('failed: refused')"),
        ("WARNING", "MessageFailed('dead: gave up')"),
        ("WARNING", "PushFailed('hub answered HTTP 503')"),
    ]
    if log_level == "INFO":
        assert found == [
            *warnings,
            ("INFO", "SomethingElse('expected, and fine')"),
            ("INFO", "'succeeded'"),
        ]
    else:
        assert found == warnings


def test_each_store_secret_of_a_webhook_secrets_object_is_a_known_secret() -> None:
    environ = {
        "SHIPPING_ORDERS_WEBHOOK_SECRETS": '{"shop-a": "store-secret-a", "shop-b": "store-b-2"}',
        "OTHER_SECRETS": "not json",
    }

    found = logs.known_secrets(environ)

    assert {"store-secret-a", "store-b-2", "not json"} <= set(found)
    assert "shop-a" not in found
