"""Simulators keep connections alive, as the real services do: a client's requests reuse one
connection, whatever the body (read, left unread, answered in chunks); a client that asks to
close has its connection closed. Through the real process (``python -m simulators.dotcom``)."""

from __future__ import annotations

import http.client
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from tests.support.stack import free_port, wait_until


@pytest.fixture(scope="module")
def dotcom_port() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.dotcom", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _healthy(port), timeout=30)
        yield port
    finally:
        process.kill()
        process.wait(timeout=10)


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/_sim/health", timeout=1).ok
    except requests.ConnectionError:
        return False


def _ask(
    connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes, str | None]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    answer = connection.getresponse()
    return answer.status, answer.read(), answer.getheader("Connection")


def test_one_connection_carries_every_request(dotcom_port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", dotcom_port, timeout=5)
    try:
        status, body, closing = _ask(connection, "GET", "/_sim/health")
        assert (status, closing) == (200, None)
        opened = connection.sock.getsockname()
        # A body the app reads, then one it refuses before reading all of it, then a GET.
        assert _ask(connection, "POST", "/_sim/config", b"{}")[0] == 200
        assert _ask(connection, "POST", "/_sim/faults", b'{"kind": "no such fault"}')[0] == 400
        status, body, closing = _ask(connection, "GET", "/_sim/health")
        assert (status, body.strip(), closing) == (200, b'{"ok":true}', None)
        assert connection.sock is not None and connection.sock.getsockname() == opened
    finally:
        connection.close()


def test_a_client_asking_to_close_is_closed(dotcom_port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", dotcom_port, timeout=5)
    try:
        connection.request("GET", "/_sim/health", headers={"Connection": "close"})
        answer = connection.getresponse()
        assert answer.status == 200
        assert answer.getheader("Connection") == "close"
        answer.read()
        assert answer.will_close
    finally:
        connection.close()
