"""HTTP plumbing shared by every provider client: pooled sessions, timeouts, error classification.

Written once so that each provider module only says what is special about its API (auth, body
shapes, where its error reasons live). Every call honours the running handler's deadline
(``worker.basics.deadline``): its timeouts are what is left of it, and its body is read in bounded
steps that stop when it passes. Every call is timed and counted by how it ended (ok, http_error,
timeout, connection) for the running attempt (``worker.basics.metrics``); a timeout and an
unreachable provider are errors of their own (``NoAnswer``, ``Unreachable``), so a retry says why.
"""

from __future__ import annotations

import email.utils
import re
import socket
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC
from typing import Any, TypeVar

import requests
import urllib3.exceptions
from pydantic import BaseModel, ValidationError
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from worker.basics import deadline, metrics
from worker.basics.deadline import DeadlineExceeded
from worker.basics.errors import HardError, TransientError
from worker.basics.metrics import CallOutcome

M = TypeVar("M", bound=BaseModel)
# A provider's session: connections kept per host, and what it says it is.
POOL_SIZE = 16
USER_AGENT = "shiphub/0.1"
DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
EXCERPT = 300
CHUNK = 64 * 1024
# Header values (and their words) this short are no secrets to hide from an error's text; nor
# are the values of these standard headers ("application/xml" may well be in a reason).
MIN_HIDDEN = 6
PUBLIC_HEADERS = frozenset(
    (
        "accept",
        "accept-encoding",
        "connection",
        "content-length",
        "content-type",
        "host",
        "user-agent",
    )
)


class NoAnswer(TransientError):
    """The provider did not answer in time: its connect or read timeout passed."""


class Unreachable(TransientError):
    """The provider could not be reached, or its answer was cut off."""


def pooled_session() -> requests.Session:
    """One session per provider per worker process: keep-alive connections, no hidden retries
    (retries are the task's business, where they are counted and bounded)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse a Retry-After value: delta seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # asctime's form writes no zone: an HTTP date is GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


def call(
    session: requests.Session,
    provider: str,
    method: str,
    url: str,
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retry_after_headers: Iterable[str] = ("Retry-After",),
    reasons: Callable[[requests.Response], list[str]] | None = None,
    error_type: Callable[[requests.Response], str | None] | None = None,
    transient_types: frozenset[str] = frozenset(),
    exact_url: bool = False,
    stream: bool = False,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """Send one request; return a 2xx response or raise a classified provider error.

    ``reasons`` extracts the provider's own error reasons from a failed response (its body shape
    is provider-specific); without it a short excerpt of the body is used. ``error_type`` reads
    the provider's own error type from it, for APIs that say the severity by type rather than by
    HTTP code: a type in ``transient_types`` is retried, another known type is not, and without
    a type the HTTP code decides. ``exact_url`` sends
    ``url`` byte for byte (requests would otherwise re-quote it), for APIs that sign the URL.
    Redirects are not followed: a provider API that redirects is misconfigured, and following
    would carry credentials elsewhere. With ``stream`` the caller reads the body, through
    ``body_chunks``; otherwise it is read here, within the deadline.

    Header values are credentials, so none reaches an error: a value HTTP cannot carry is
    refused before sending (a HardError naming the header); the text of requests' exceptions
    that can quote a header (InvalidHeader, InvalidURL...) is left out, and the text of
    timeouts and connection errors has every header value hidden.
    """
    given = dict(headers or {})
    sent_headers = CaseInsensitiveDict(session.headers)
    sent_headers.update(given)
    refuse_unsendable_headers(sent_headers, provider)
    started = time.monotonic()
    try:
        response = _send(session, method, url, timeout, exact_url, given, kwargs)
    except requests.Timeout as exc:
        _counted(CallOutcome.TIMEOUT, started)
        _raise_if_out_of_time()
        raise NoAnswer(
            f"{provider} did not answer in time", [scrubbed(str(exc), sent_headers)]
        ) from None
    except requests.ConnectionError as exc:
        _counted(CallOutcome.CONNECTION, started)
        _raise_if_out_of_time()
        raise Unreachable(
            f"{provider} could not be reached", [scrubbed(str(exc), sent_headers)]
        ) from None
    except (requests.RequestException, UnicodeError) as exc:
        # InvalidHeader, InvalidURL...: their text can quote a header value (a credential).
        raise HardError(
            f"The request to {provider} could not be sent",
            [f"{type(exc).__name__}; its text is not shown, as it can quote a header value"],
        ) from None
    if 200 <= response.status_code < 300 and stream:
        _counted(CallOutcome.OK, started)  # until its headers: the caller reads the body
        return response
    try:
        _read_whole(response, provider)
        ok = 200 <= response.status_code < 300
        _counted(CallOutcome.OK if ok else CallOutcome.HTTP_ERROR, started)
        if ok:
            return response
        raise classify(
            response, provider, retry_after_headers, reasons, error_type, transient_types
        )
    except (Unreachable, DeadlineExceeded) as exc:  # the body was cut off, or ran out of time
        cut = isinstance(exc, Unreachable)
        _counted(CallOutcome.CONNECTION if cut else CallOutcome.TIMEOUT, started)
        raise
    finally:
        response.close()


def _counted(outcome: CallOutcome, started: float) -> None:
    metrics.provider_call(outcome, time.monotonic() - started)


def _send(
    session: requests.Session,
    method: str,
    url: str,
    timeout: tuple[float, float],
    exact_url: bool,
    headers: Mapping[str, str],
    kwargs: Mapping[str, Any],
) -> requests.Response:
    """Prepare and send one request, its body left unread (``stream``) for the deadline."""
    request = requests.Request(method, url, headers=dict(headers), **kwargs)
    prepared = session.prepare_request(request)
    if exact_url:
        prepared.url = url
    settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
    settings["stream"] = True  # the body is read by the caller, in steps the deadline can stop
    return session.send(
        prepared, timeout=deadline.bounded(timeout), allow_redirects=False, **settings
    )


def refuse_unsendable_headers(headers: Mapping[str, str | bytes | None], provider: str) -> None:
    """A HardError, before anything is sent, for a header value HTTP cannot carry: control
    characters (a line break would end the header, or inject another) or characters beyond
    Latin-1. It names the header and never shows the value: header values are credentials
    (``Authorization``), and the same value would fail on every retry."""
    problems = [
        f"The {name} header {why}; its value is not shown"
        for name, value in headers.items()
        if isinstance(value, str) and (why := _unsendable(value))
    ]
    if problems:
        raise HardError(f"The request to {provider} was not sent", problems)


def _unsendable(value: str) -> str | None:
    """Why a header value cannot be sent, or None."""
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "has control characters (a line break, a tab...)"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return "has characters an HTTP header cannot carry (beyond Latin-1)"
    return None


def scrubbed(text: str, headers: Mapping[str, str | bytes | None]) -> str:
    """``text`` with every header value sent in it replaced by ``[hidden]``: an exception's text
    that echoes the request must not carry a credential into an error, a log or an answer."""
    for value in sorted(_hidden_values(headers), key=len, reverse=True):
        text = text.replace(value, "[hidden]")
    return text


def sent_headers(response: requests.Response) -> Mapping[str, str | bytes | None]:
    """The headers of the request that got ``response`` (none for a response made by hand)."""
    return getattr(response.request, "headers", None) or {}


def _hidden_values(headers: Mapping[str, str | bytes | None]) -> set[str]:
    """The value of each header that may be a secret (any but the standard ones), and its words
    (``Bearer <token>``, ``<api_key>:<signature>``), when long enough to be one."""
    values = {
        value.decode("latin-1") if isinstance(value, bytes) else value
        for name, value in headers.items()
        if value and name.lower() not in PUBLIC_HEADERS
    }
    pieces = {piece for value in values for piece in re.split(r"[\s:]+", value)}
    return {v for v in values | pieces if len(v) >= MIN_HIDDEN}


def body_chunks(response: requests.Response, provider: str = "The provider") -> Iterator[bytes]:
    """A response body as it arrives, decoded (gzip...), read within the running deadline: before
    each read the socket's timeout is cut to what is left, so even a body that drips in a byte
    at a time ends when the deadline passes (DeadlineExceeded). A body cut off otherwise is a
    TransientError."""
    raw = response.raw
    while True:
        _cut_socket_timeout(raw)
        try:
            chunk = raw.read1(CHUNK, decode_content=True)
        except (
            urllib3.exceptions.HTTPError,
            requests.RequestException,
            OSError,
        ) as exc:
            _raise_if_out_of_time()
            raise Unreachable(f"{provider}'s answer was cut off", [str(exc)]) from None
        if not chunk:
            return
        yield chunk


def text_of(response: requests.Response, provider: str = "The provider") -> str:
    """The whole body as text, read within the deadline if a streamed response has not been."""
    if not response._content_consumed:
        _read_whole(response, provider)
    return response.text


def _read_whole(response: requests.Response, provider: str) -> None:
    response._content = b"".join(body_chunks(response, provider))  # what .content then returns
    response._content_consumed = True


def _cut_socket_timeout(raw: Any) -> None:
    current = deadline.current()
    if current is None:
        return
    left = current.check()
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if isinstance(sock, socket.socket):
        sock.settimeout(max(0.001, min(left, sock.gettimeout() or left)))


def _raise_if_out_of_time() -> None:
    """A timeout that the deadline caused is the deadline's error, not the provider's."""
    current = deadline.current()
    if current is not None:
        current.check()


def classify(
    response: requests.Response,
    provider: str,
    retry_after_headers: Iterable[str] = ("Retry-After",),
    reasons: Callable[[requests.Response], list[str]] | None = None,
    error_type: Callable[[requests.Response], str | None] | None = None,
    transient_types: frozenset[str] = frozenset(),
) -> TransientError | HardError:
    """Turn a non-2xx response into the error the task knows how to treat; ``status`` on the
    error keeps the HTTP status for providers that word some of them specially. The request's
    header values are hidden from the reasons: some error pages repeat the request."""
    status = response.status_code
    found = [scrubbed(r, sent_headers(response)) for r in _safe_reasons(response, reasons)]
    code = _safe_type(response, error_type)
    subject = f"{provider} answered HTTP {status}" + (f" {code}" if code else "")
    transient = code in transient_types if code else status in RETRIABLE_STATUS
    if transient:
        hint = next(
            (
                seconds
                for header in retry_after_headers
                if (seconds := retry_after_seconds(response.headers.get(header))) is not None
            ),
            None,
        )
        return TransientError(subject, found, retry_after=hint, status=status, code=code)
    return HardError(subject, found, status=status, code=code)


def json_body(
    response: requests.Response, provider: str, what: str, model: type[M] | None = None
) -> Any:
    """A 2xx answer's JSON (validated into ``model`` when given), or a TransientError quoting an
    excerpt of it: an answer that is not what the provider sends may be a proxy's page, and the
    next attempt reads it again."""
    try:
        body = response.json()
        return model.model_validate(body) if model is not None else body
    except (ValueError, ValidationError):
        raise TransientError(
            f"{provider} answered {what} with something unreadable",
            [excerpt(text_of(response, provider))],
        ) from None


def _safe_type(
    response: requests.Response, error_type: Callable[[requests.Response], str | None] | None
) -> str | None:
    if error_type is None:
        return None
    try:
        return error_type(response)
    except Exception:  # an odd body: the HTTP code decides
        return None


def _safe_reasons(
    response: requests.Response, reasons: Callable[[requests.Response], list[str]] | None
) -> list[str]:
    if reasons is not None:
        try:
            found = reasons(response)
        except Exception:  # a provider's odd error body must not hide the error itself
            found = []
        if found:
            return found
    return [excerpt(response.text)] if response.text.strip() else []
