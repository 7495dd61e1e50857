"""An invalid setting stops web, worker and beat as they start, naming the variable, with the
status that keeps gunicorn from restarting its workers forever (real processes).

Every setting counts, the service's and each integration's: a structured one (a JSON lookup, a
cursor, POLLS, a URL) is parsed as a message would parse it, and a secret is checked for what
makes it no secret (blank, whitespace around it, a control character), its value never said."""

from __future__ import annotations

import pytest

from tests.support.stack import RedisServer, Stack
from worker.basics.errors import ConfigurationError

# A secret's value, wrapped in what makes it unfit: it must never appear in what is printed.
SECRET = "a-secret-value-0123456789"


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("HUB_STORE", "shop:eu", "HUB_STORE"),
        ("RETRY_FOR_SECONDS", "-1", "RETRY_FOR_SECONDS"),
        (
            "REDIS_URL",
            "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:sentinel",
            "REDIS_URL",
        ),
        # JSON lookups with a bracket missing: they used to pass and fail every message.
        ("DOTCOM_SHIPPING_LOOKUP", '[{"Standard": "03"}', "not valid JSON"),
        ("DOTCOM_SHIPPING_LOOKUP", '[{"Standard": "way-too-long"}]', "ship-method"),
        ("ECOMDASH_CARRIER_LOOKUP", '{"UPS": 1', "not valid JSON"),
        ("ECOMDASH_CARRIER_LOOKUP", '{"UPS": "one"}', "whole number"),
        ("DOTCOM_LAST_POLLING_DATETIME", "yesterday", "DOTCOM_LAST_POLLING_DATETIME"),
        ("DUOPLANE_LAST_POLLING_DATETIME", "yesterday", "DUOPLANE_LAST_POLLING_DATETIME"),
        (
            "SHIPPING_ORDERS_LAST_POLLING_DATETIME",
            "yesterday",
            "SHIPPING_ORDERS_LAST_POLLING_DATETIME",
        ),
        ("POLLS", "dotcom.nothing", "unknown service"),
        ("HUB_PUSH_URL", "hub.example.com/push", "http(s) URL"),
        ("DOTCOM_API_URL", "http://", "with a host"),
        ("REDIS_URL", "127.0.0.1:6379", "REDIS_URL"),
        ("SHIPHUB_INTEGRATION_MODULES", "no_such_module_here", "no_such_module_here"),
        # A store name outside the safe set (its pushes could not carry it in a header).
        ("HUB_STORE", "店舗-1", "letters"),
        # Secrets that are no secret.
        ("SHIPPING_ORDERS_WEBHOOK_SECRET", " ", "blank"),
        ("SHIPPING_ORDERS_WEBHOOK_SECRET", "short", "at least"),
        ("ENDPOINT_KEY", "   ", "blank"),
    ],
)
def test_web_worker_and_beat_stop_at_start_naming_an_invalid_setting(
    redis_server: RedisServer, variable: str, value: str, said: str
) -> None:
    extra = {variable: value, "HUB_ACCESS_TOKEN": "hub-token-0123456789"}
    stack = Stack(redis_server, extra)
    try:
        with pytest.raises(AssertionError, match="exited at start-up"):
            stack.start_web()
        with pytest.raises(AssertionError, match="exited at start-up"):
            stack.start_worker()
        stack.start_beat()
        for name in ("web", "worker", "beat"):
            service = stack.services[name]
            status = service.process.wait(30)
            assert status == ConfigurationError.EXIT_STATUS, service.output()
            assert variable in service.output(), service.output()
            assert said in service.output(), service.output()
            assert "Traceback" not in service.output(), service.output()
    finally:
        stack.stop()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SHIPPING_ORDERS_WEBHOOK_SECRET", f" {SECRET} "),
        ("SPECTRUM_API_TOKEN", f"{SECRET}\n"),
        ("DOTCOM_PASSWORD", f"{SECRET}\t"),
        ("HUB_ACCESS_TOKEN", f"{SECRET} "),
        ("OPS_PASSWORD", f"\t{SECRET}"),
        ("REDIS_URL", f"redis://:{SECRET}@127.0.0.1:port/0"),
        ("HUB_PUSH_SECRET", f"whsec_{SECRET}"),  # not base64: '-' is not in its alphabet
    ],
)
def test_a_secret_that_is_unfit_stops_every_process_without_its_value_being_said(
    redis_server: RedisServer, variable: str, value: str
) -> None:
    stack = Stack(redis_server, {variable: value})
    try:
        with pytest.raises(AssertionError, match="exited at start-up"):
            stack.start_web()
        with pytest.raises(AssertionError, match="exited at start-up"):
            stack.start_worker()
        stack.start_beat()
        for name in ("web", "worker", "beat"):
            service = stack.services[name]
            assert service.process.wait(30) == ConfigurationError.EXIT_STATUS, service.output()
            assert variable in service.output(), service.output()
            assert SECRET not in service.output(), service.output()
    finally:
        stack.stop()
