"""A handler's deadline ends provider I/O under the thread pool: a slow answer, a body that drips
in, and what is left of the deadline as each call's timeout (real HTTP servers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from worker.basics.deadline import Deadline, DeadlineExceeded
from worker.integrations import http as provider_http


class _Slow(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/late":  # headers after 5 s
            time.sleep(5)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if self.path == "/drip":  # a body that never stops arriving, a byte at a time
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
            return
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture(scope="module")
def slow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def timed_call(url: str, seconds: float, **kw: object) -> float:
    session = provider_http.pooled_session()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded), Deadline(seconds).running():
        provider_http.call(session, "Slow", "GET", url, timeout=(5.0, 60.0), **kw)  # type: ignore[arg-type]
    return time.monotonic() - started


def test_an_answer_slower_than_the_deadline_ends_at_the_deadline(slow_server: str) -> None:
    assert timed_call(f"{slow_server}/late", 1.0) < 1.6


def test_a_body_that_drips_in_ends_at_the_deadline(slow_server: str) -> None:
    assert timed_call(f"{slow_server}/drip", 1.0) < 1.6


def test_a_streamed_body_that_drips_in_ends_at_the_deadline(slow_server: str) -> None:
    session = provider_http.pooled_session()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded), Deadline(1.0).running():
        response = provider_http.call(session, "Slow", "GET", f"{slow_server}/drip", stream=True)
        for _ in provider_http.body_chunks(response):
            pass
    assert time.monotonic() - started < 1.6


def test_a_call_after_the_deadline_is_not_made(slow_server: str) -> None:
    with Deadline(0.05).running():
        time.sleep(0.1)
        with pytest.raises(DeadlineExceeded):
            provider_http.call(provider_http.pooled_session(), "Slow", "GET", f"{slow_server}/")


def test_a_quick_call_within_the_deadline_reads_its_body(slow_server: str) -> None:
    with Deadline(5).running():
        response = provider_http.call(provider_http.pooled_session(), "Ok", "GET", slow_server)
    assert response.text == "ok"


def test_the_deadline_is_a_transient_error_saying_what_ran_out() -> None:
    error = DeadlineExceeded(3.0)
    assert "3" in str(error)
    from worker.basics.errors import TransientError

    assert isinstance(error, TransientError)
