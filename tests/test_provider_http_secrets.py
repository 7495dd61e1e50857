"""Header values never reach an error: ``provider_http.call`` refuses a header value it cannot
send before sending it (a hard error naming the header, not its value), and never copies the
text of a requests exception that could echo a header value into an error's reasons."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from worker.basics.errors import HardError, ProviderError, TransientError
from worker.integrations import http as provider_http

SECRET = "s3cr3t-token-value"


class _Ok(BaseHTTPRequestHandler):
    """200 "ok"; under /echo a 400 whose body repeats the request's headers, as debug error
    pages do."""

    def do_GET(self) -> None:
        echo = self.path.startswith("/echo")
        body = f"Bad request. You sent: {dict(self.headers)}".encode() if echo else b"ok"
        self.send_response(400 if echo else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def call(url: str, headers: dict[str, str], session: requests.Session | None = None) -> Any:
    return provider_http.call(
        session or provider_http.pooled_session(), "Acme", "GET", url, headers=headers
    )


def assert_hides(error: ProviderError, *secrets: str) -> None:
    shown = " ".join([str(error), error.subject, *error.reasons])
    for secret in secrets:
        assert secret not in shown
    # No original exception chained to it, whose text a traceback would show.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


@pytest.mark.parametrize(
    "value",
    [
        f"{SECRET}\n",
        f"{SECRET}\r\nX-Injected: yes",
        f"{SECRET}\x00",
        f"{SECRET}\x7f",
        f"Bearer {SECRET}\t",
    ],
    ids=["newline", "crlf", "nul", "del", "tab"],
)
def test_control_characters_in_a_header_are_refused_before_sending(
    server_url: str, value: str
) -> None:
    with pytest.raises(HardError) as caught:
        call(server_url, {"Authorization": value})
    assert "Authorization" in str(caught.value)
    assert "control characters" in str(caught.value)
    assert_hides(caught.value, SECRET)


def test_a_header_that_latin_1_cannot_carry_is_refused_without_its_value(server_url: str) -> None:
    with pytest.raises(HardError) as caught:
        call(server_url, {"X-Api-Key": f"{SECRET}Ł"})
    assert "X-Api-Key" in str(caught.value)
    assert_hides(caught.value, SECRET)


def test_requests_own_header_refusal_is_not_echoed(server_url: str) -> None:
    # Leading whitespace is no control character, but requests refuses it with the value in
    # its message (InvalidHeader).
    with pytest.raises(HardError) as caught:
        call(server_url, {"Authorization": f"  {SECRET}"})
    assert "could not be sent" in caught.value.subject
    assert_hides(caught.value, SECRET)


class _Echoing(HTTPAdapter):
    """An adapter failing with text that repeats a header value, as some exceptions do."""

    def __init__(self, error: type[requests.RequestException]) -> None:
        super().__init__()
        self.error = error

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        raise self.error(f"failed sending {dict(request.headers)!r}")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (requests.ConnectionError, TransientError),
        (requests.Timeout, TransientError),
        (requests.exceptions.InvalidHeader, HardError),
        (requests.exceptions.InvalidURL, HardError),
    ],
)
def test_exception_text_never_carries_a_header_value(
    error: type[requests.RequestException], kind: type[ProviderError]
) -> None:
    session = provider_http.pooled_session()
    session.mount("http://", _Echoing(error))
    with pytest.raises(kind) as caught:
        call("http://127.0.0.1:9/x", {"Authorization": f"Key {SECRET}"}, session)
    assert_hides(caught.value, SECRET)


def test_a_fine_header_is_sent(server_url: str) -> None:
    response = call(server_url, {"Authorization": f"Key {SECRET}"})
    assert response.status_code == 200


def test_an_error_answer_that_echoes_the_headers_does_not_carry_them(server_url: str) -> None:
    with pytest.raises(HardError) as caught:
        call(f"{server_url}/echo", {"Authorization": f"key-1:{SECRET}"})
    assert caught.value.status == 400
    assert "You sent" in caught.value.reasons[0]
    assert_hides(caught.value, SECRET, "key-1")
