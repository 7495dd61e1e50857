"""A credential with control characters, through the real pieces: it is refused as a hard error
naming the parameter, never retried, and neither it nor a request signature made with it shows
anywhere (the waiting reply, the record, the hub push, the worker's log)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from tests.dotcom.conftest import (
    ENV_SHIPPING_LOOKUP,
    PASSWORD,
    DotcomSimulator,
    poll_message,
    post,
    shipment_message,
)
from tests.support.servers import HubServer
from tests.support.stack import Stack
from worker.integrations.dotcom.client import authorization

# Dotcom's signature: Base64 of an HMAC-MD5, always 22 characters and "==".
SIGNATURE = re.compile(r"[A-Za-z0-9+/]{22}==")
REFUSED = "Invalid api_key"


def key_with(suffix: str) -> str:
    """A unique api_key (so a leak cannot be another test's) ending in control characters."""
    return f"key-{uuid.uuid4().hex[:12]}{suffix}"


def ready_with(api_key: str) -> dict[str, Any]:
    return shipment_message(
        parameters={
            "api_key": api_key,
            "password": PASSWORD,
            "shipping_lookup": ENV_SHIPPING_LOOKUP,
        }
    )


def poll_with(api_key: str) -> dict[str, Any]:
    return poll_message(api_key=api_key, password=PASSWORD)


def assert_nothing_secret(text: str, api_key: str, signatures: list[str], where: str) -> None:
    bare = api_key.strip()
    assert bare not in text, f"the api_key shows in {where}"
    for signature in signatures:
        assert signature not in text, f"a request signature shows in {where}"
    assert not SIGNATURE.search(text), f"something like a signature shows in {where}"


@pytest.mark.parametrize(
    ("service", "build"),
    [("send_shipment", ready_with), ("tracking", poll_with)],
    ids=["shipment_ready", "poll"],
)
@pytest.mark.parametrize("suffix", ["\n", "\r\nX-Injected: yes"], ids=["newline", "injection"])
def test_api_key_with_control_characters_is_refused_and_never_shown(
    dotcom_stack: Stack,
    sim: DotcomSimulator,
    hub: HubServer,
    store: str,
    service: str,
    build: Any,
    suffix: str,
) -> None:
    api_key = key_with(suffix)
    body = build(api_key)
    message_id = body["message_id"]
    worker = dotcom_stack.services["worker"]
    log_start = len(worker.output())
    order_signature = authorization(api_key, PASSWORD, f"{sim.api_url}/order").split(":")[-1]

    response = post(dotcom_stack, service, body, store)

    assert response.status_code == 500, response.text
    notes = response.json()["notifications"]
    assert [(n["level"], n["subject"]) for n in notes] == [("error", REFUSED)], notes
    assert "api_key" in notes[0]["description"]
    assert "control characters" in notes[0]["description"]
    assert_nothing_secret(response.text, api_key, [order_signature], "the reply")

    record = dotcom_stack.record("dotcom", message_id)
    assert (record["status"], record["attempts"]) == ("failed", 1)  # a hard error: not retried
    assert "api_key" in record["last_error"]
    assert_nothing_secret(json.dumps(record), api_key, [order_signature], "the record")

    pushed = hub.wait_for(message_id)
    assert_nothing_secret(json.dumps(pushed), api_key, [order_signature], "the hub push")

    log = worker.output()
    assert api_key.strip() not in log, "the api_key shows in the worker's log"
    assert_nothing_secret(log[log_start:], api_key, [order_signature], "the worker's log")
    assert sim.orders()["order_requests"] == 0  # refused before any request
