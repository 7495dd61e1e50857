"""Slow clients and waiting requests cannot take the receiver: with 1,000 connections dawdling
over half a request header and 500 requests waiting for answers, /healthz and a new post still
answer within a second (real gunicorn, as the Procfile runs it, and a real redis-server)."""

from __future__ import annotations

import json
import selectors
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.pipeline.test_pipeline import order_message
from tests.support.stack import RedisServer, Stack

DAWDLERS = 1000
WAITERS = 500
WAIT_LIMIT = 400


@pytest.fixture
def receiver(redis_server: RedisServer) -> Iterator[Stack]:
    """Only the receiver: no worker, so every waiting request waits its whole wait."""
    stack = Stack(redis_server, {"HUB_WAIT_MAX_REQUESTS": str(WAIT_LIMIT)})
    try:
        stack.start_web()
        yield stack
    finally:
        stack.stop()


def connect(stack: Stack) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", stack.web_port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return sock


def waiting_request(stack: Stack) -> bytes:
    body = json.dumps(order_message()).encode()
    head = (
        "POST /acme/send_order HTTP/1.1\r\nHost: shiphub\r\nContent-Type: application/json\r\n"
        f"X-Hub-Token: {stack.ENDPOINT_KEY}\r\nX-Hub-Wait: 60\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def answered_202(socks: list[socket.socket]) -> int:
    """How many of ``socks`` already got a 202 (epoll: their descriptors are over 1,024)."""
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        ready = [key.fileobj for key, _ in selector.select(timeout=0.5)]
    return sum(sock.recv(64).startswith(b"HTTP/1.1 202") for sock in ready)  # type: ignore[union-attr]


def test_dawdling_connections_and_waiting_requests_leave_the_receiver_responsive(
    receiver: Stack,
) -> None:
    opened: list[socket.socket] = []
    try:
        for _ in range(DAWDLERS):  # half a request header, then nothing
            sock = connect(receiver)
            sock.sendall(b"POST /acme/send_order HTTP/1.1\r\nHost: shiphub\r\nContent-Le")
            opened.append(sock)
        waiters = []
        for _ in range(WAITERS):  # whole requests that wait up to a minute for their answer
            sock = connect(receiver)
            sock.sendall(waiting_request(receiver))
            waiters.append(sock)
        opened += waiters
        time.sleep(3)  # all of them are in

        started = time.monotonic()
        health = requests.get(f"{receiver.url}/healthz", timeout=5)
        health_took = time.monotonic() - started
        started = time.monotonic()
        posted = receiver.post("/acme/send_order", order_message())
        post_took = time.monotonic() - started
        turned_away = answered_202(waiters)
    finally:
        for sock in opened:
            sock.close()

    assert health.status_code == 200
    assert health_took < 1.0
    assert posted.status_code == 200 and posted.json()["status"] == "queued"
    assert post_took < 1.0
    # Beyond HUB_WAIT_MAX_REQUESTS, a request is answered 202 at once instead of waiting.
    assert turned_away >= WAITERS - WAIT_LIMIT - 10
    assert turned_away <= WAITERS - WAIT_LIMIT + 10


def test_a_request_waits_for_its_answer_when_few_do(receiver: Stack) -> None:
    body = order_message(message_id=uuid.uuid4().hex)

    response = receiver.post("/acme/send_order", body, wait=1)

    assert response.status_code == 202  # no worker: the wait runs out, it is not refused
    assert "wait ran out" in response.json()["notifications"][0]["description"]
