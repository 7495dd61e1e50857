"""HTTP plumbing shared by every provider client: pooled sessions, timeouts, error classification.

Written once so that each provider module only says what is special about its API (auth, body
shapes, where its error reasons live).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from worker.errors import HardError, TransientError

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
EXCERPT = 300


def pooled_session(pool_size: int = 16, user_agent: str = "shiphub/0.1") -> requests.Session:
    """One session per provider per worker process: keep-alive connections, no hidden retries
    (retries are the task's business, where they are counted and bounded)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
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
    exact_url: bool = False,
    stream: bool = False,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """Send one request; return a 2xx response or raise a classified provider error.

    ``reasons`` extracts the provider's own error reasons from a failed response (its body shape
    is provider-specific); without it a short excerpt of the body is used. ``exact_url`` sends
    ``url`` byte for byte (requests would otherwise re-quote it), for APIs that sign the URL.
    Redirects are not followed: a provider API that redirects is misconfigured, and following
    would carry credentials elsewhere.
    """
    request = requests.Request(method, url, headers=dict(headers or {}), **kwargs)
    prepared = session.prepare_request(request)
    if exact_url:
        prepared.url = url
    settings = session.merge_environment_settings(prepared.url, {}, stream, None, None)
    try:
        response = session.send(prepared, timeout=timeout, allow_redirects=False, **settings)
    except requests.Timeout as exc:
        raise TransientError(f"{provider} did not answer in time", [str(exc)]) from exc
    except requests.ConnectionError as exc:
        raise TransientError(f"{provider} could not be reached", [str(exc)]) from exc
    if 200 <= response.status_code < 300:
        return response
    try:
        raise classify(response, provider, retry_after_headers, reasons)
    finally:
        response.close()


def classify(
    response: requests.Response,
    provider: str,
    retry_after_headers: Iterable[str] = ("Retry-After",),
    reasons: Callable[[requests.Response], list[str]] | None = None,
) -> TransientError | HardError:
    """Turn a non-2xx response into the error the task knows how to treat; ``status`` on the
    error keeps the HTTP status for providers that word some of them specially."""
    status = response.status_code
    found = _safe_reasons(response, reasons)
    subject = f"{provider} answered HTTP {status}"
    if status in RETRIABLE_STATUS:
        hint = next(
            (
                seconds
                for header in retry_after_headers
                if (seconds := retry_after_seconds(response.headers.get(header))) is not None
            ),
            None,
        )
        return TransientError(subject, found, retry_after=hint, status=status)
    return HardError(subject, found, status=status)


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
