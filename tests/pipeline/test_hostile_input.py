"""Input that should never reach a handler, sent to the real gunicorn receiver (on a real
redis-server, a Celery worker behind it): a 4xx in the usual error shape naming the problem,
nothing recorded, and no traceback in the receiver's log.

Malformed chunked encoding can only be tested here: gunicorn de-chunks the body, and its errors
surface while the receiver reads it."""

from __future__ import annotations

import http.client
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.stack import Stack


def fresh_id() -> str:
    return f"hostile-{uuid.uuid4().hex[:12]}"


def order_text(message_id: str | None = None, quantity: str = "1", extra: str = "") -> str:
    """A hub message as text, so that 1e400, NaN or any nesting can be put into it."""
    return (
        f'{{"message_id": {json.dumps(message_id or fresh_id())}, "message": "order:ready", '
        f'"payload": {{{extra}"order": {{"number": "H1", "quantity": {quantity}}}}}}}'
    )


def post_raw(stack: Stack, body: str | bytes, **headers: str) -> requests.Response:
    return requests.post(
        f"{stack.url}/acme/send_order",
        data=body.encode() if isinstance(body, str) else body,
        headers={**stack.headers(**headers), "Content-Type": "application/json"},
        timeout=30,
    )


def refused(status: int, body: Any, expected_status: int) -> str:
    """Assert the usual error shape with ``expected_status``; return the description."""
    assert status == expected_status, body
    assert body["notifications"][0]["level"] == "error", body
    assert body["notifications"][0]["subject"], body
    return body["notifications"][0]["description"]


def records_in(stack: Stack) -> int:
    return len(stack.redis.client().keys("shiphub:msg:*"))


@pytest.fixture(autouse=True)
def no_traceback(stack: Stack) -> Iterator[None]:
    """Whatever a test sends, the receiver logs no unexpected error for it."""
    start = len(stack.services["web"].output())
    yield
    logged = stack.services["web"].output()[start:]
    assert "Traceback" not in logged and "unexpected error" not in logged, logged


# -- 1, 2, 4: bodies refused before anything touches them --------------------------------------
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (order_text(quantity="9" * 5000), "too long"),
        (order_text(extra=f'"deep": {"[" * 298}{"]" * 298}, '), "nested too deeply"),
        (order_text(extra=f'"deep": {"[" * 900}{"]" * 900}, '), "nested too deeply"),
        (order_text(quantity="1e400"), "not finite"),
        (order_text(extra='"weight": NaN, '), "not finite"),
        (order_text(extra='"weight": -Infinity, '), "not finite"),
        (order_text(extra='"note": "\\ud800", '), "surrogate"),
    ],
    ids=["integer-5000-digits", "depth-300", "depth-900", "1e400", "NaN", "-Infinity", "surrogate"],
)
def test_hostile_body_is_406_naming_the_problem(stack: Stack, body: str, problem: str) -> None:
    before = records_in(stack)

    response = post_raw(stack, body)

    assert problem in refused(response.status_code, response.json(), 406)
    assert records_in(stack) == before


# -- 3: malformed chunked transfer-encoding ----------------------------------------------------
def post_chunked(stack: Stack, framed: bytes, *, cut: bool = False) -> tuple[int, Any]:
    """POST ``framed`` as a chunked body over a raw socket (no client library would send a
    malformed one); ``cut`` closes our side after it, as a client that stopped mid-body."""
    head = (
        "POST /acme/send_order HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{stack.web_port}\r\n"
        f"X-Hub-Token: {stack.ENDPOINT_KEY}\r\n"
        "Content-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", stack.web_port), timeout=15) as sock:
        sock.sendall(head.encode() + framed)
        if cut:
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_well_formed_chunked_body_is_taken(stack: Stack) -> None:
    body = order_text().encode()

    status, reply = post_chunked(stack, chunk(body[:20]) + chunk(body[20:]) + b"0\r\n\r\n")

    assert (status, reply["status"]) == (200, "queued")


@pytest.mark.parametrize(
    ("framed", "cut", "problem"),
    [
        (b"zz\r\n{}\r\n0\r\n\r\n", False, "is malformed: Invalid chunk size: b'zz'"),
        (b"-5\r\nhello\r\n0\r\n\r\n", False, "is malformed: Invalid chunk size"),
        (b"5\r\nhelloXX0\r\n\r\n", False, "is malformed: Invalid chunk terminator"),
        (b"5;\x01ext\r\nhello\r\n0\r\n\r\n", False, "is malformed: Invalid chunk extension"),
        (b'64\r\n{"message_id"', True, "ended before it was complete"),
    ],
    ids=["size-not-hex", "size-negative", "no-crlf-after-data", "bad-extension", "cut-short"],
)
def test_malformed_chunked_body_is_400_naming_the_problem(
    stack: Stack, framed: bytes, cut: bool, problem: str
) -> None:
    before = records_in(stack)

    status, reply = post_chunked(stack, framed, cut=cut)

    assert f"The chunked body {problem}" in refused(status, reply, 400)
    assert records_in(stack) == before


# -- 5: message_id, message and the store ------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("message_id", "forged\nINFO worker ready"),
        ("message_id", "bell\x07"),
        ("message_id", " padded"),
        ("message_id", "/lead"),
        ("message", "order:ready\r"),
    ],
)
def test_message_id_or_message_that_is_not_printable_text_is_406(
    stack: Stack, field: str, value: str
) -> None:
    body = {**json.loads(order_text()), field: value}
    before = records_in(stack)

    response = stack.post("/acme/send_order", body)

    assert refused(response.status_code, response.json(), 406).startswith(f"{field}:")
    assert records_in(stack) == before


@pytest.mark.parametrize("store", ["a:b", "s" * 101, "tab\tin"])
def test_store_header_that_cannot_be_a_key_part_is_400(stack: Stack, store: str) -> None:
    before = records_in(stack)

    response = post_raw(stack, order_text(), **{"X-Hub-Store": store})

    assert "X-Hub-Store" in refused(response.status_code, response.json(), 400)
    assert records_in(stack) == before


# -- 6: one route, one record ------------------------------------------------------------------
def test_ids_with_colons_and_slashes_read_back_their_own_record(stack: Stack) -> None:
    base = fresh_id()
    ids = [base, f"{base}:b", f"{base}/y", f"{base}/y:b", f"{base}/replay"]
    for n, message_id in enumerate(ids):
        response = post_raw(stack, order_text(message_id, quantity=str(n + 1)))
        assert response.status_code == 200, response.text

    for message_id in ids:
        record = stack.record("acme", message_id)
        assert (record["integration"], record["message_id"]) == ("acme", message_id)
