"""Signed XML requests to one Dotcom account (transport only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import requests
from pydantic import SecretStr

from worker.basics.errors import HardError
from worker.integrations import http as provider_http
from worker.integrations.dotcom.documents import (
    ChunkReader,
    HeldOrder,
    OrderError,
    Release,
    UnexpectedAnswer,
    parse_held_orders,
    parse_order_errors,
    parse_shipments,
)
from worker.integrations.dotcom.settings import PROVIDER

log = logging.getLogger(__name__)

AUTH_REFUSED = "Dotcom rejected the API key or signature"

_session = provider_http.pooled_session()

# ---------------------------------------------------------------------------------------------
# Signing, dates and the polling window


def signature(url: str, password: str) -> str:
    """Base64 of HMAC-MD5 over the full request URL as sent, keyed by the account password."""
    digest = hmac.new(password.encode("utf-8"), url.encode("utf-8"), hashlib.md5).digest()
    return base64.b64encode(digest).decode("ascii")


def authorization(api_key: str, password: str, url: str) -> str:
    """The ``Authorization`` header value: ``<api_key>:<signature>``."""
    return f"{api_key}:{signature(url, password)}"


# ---------------------------------------------------------------------------------------------
# The client


@dataclass(frozen=True)
class Credentials:
    api_key: str
    password: SecretStr


class DotcomClient:
    """Signed XML requests to one Dotcom account over the process's pooled session."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        timeout: tuple[float, float],
        session: requests.Session = _session,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self.session = session

    def send_orders(self, document: bytes) -> list[OrderError]:
        """POST /order; Dotcom's business errors (HTTP 200) are returned, not raised."""
        with self._send("POST", f"{self.base_url}/order", body=document) as response:
            _refuse_html(response)
            return parse_order_errors(response.content)

    def held_orders(self, order_number: str) -> list[HeldOrder]:
        """``GET /order/{order-number}``: what Dotcom holds under that number (its specification's
        order status route). No order is an empty list (or a 404: the answer for an unknown
        number is not documented)."""
        url = f"{self.base_url}/order/{quote(order_number, safe='')}"
        try:
            with self._send("GET", url) as response:
                _refuse_html(response)
                return parse_held_orders(response.content)
        except HardError as exc:
            if exc.status == 404:
                return []
            raise

    def shipments(self, url: str) -> Iterator[Release]:
        """GET a shipments URL (from ``shipments_url``) and stream its releases."""
        with self._send("GET", url, stream=True) as response:
            _refuse_html(response)
            yield from parse_shipments(
                ChunkReader(provider_http.body_chunks(response, f"{PROVIDER}'s shipments answer"))
            )

    def _send(
        self, method: str, url: str, *, body: bytes | None = None, stream: bool = False
    ) -> requests.Response:
        """Send exactly ``url`` (the bytes signed are the bytes on the wire); 401 is a hard
        error saying what to check, the rest is classified as for every provider."""
        headers = {
            "Authorization": authorization(
                self.credentials.api_key, self.credentials.password.get_secret_value(), url
            ),
            "Accept": "application/xml",
        }
        if body is not None:
            headers["Content-Type"] = "application/xml; charset=utf-8"
        try:
            return provider_http.call(
                self.session,
                PROVIDER,
                method,
                url,
                exact_url=True,
                stream=stream,
                headers=headers,
                data=body,
                timeout=self.timeout,
                reasons=_error_page_reasons,
            )
        except HardError as exc:
            if exc.status != 401:
                raise
            raise HardError(
                AUTH_REFUSED,
                [
                    f"{PROVIDER} answered HTTP 401 to {method} {url.split('?')[0]}: check "
                    "api_key and password (the request signature is made with the password)"
                ],
            ) from None


def _error_page_reasons(response: requests.Response) -> list[str]:
    """An IIS/WCF error page reduced to its words (never with a header of the request: the
    ``Authorization`` value, should a debug page repeat it)."""
    text = re.sub(r"<[^>]+>", " ", provider_http.text_of(response, PROVIDER))
    text = provider_http.scrubbed(text, provider_http.sent_headers(response))
    return [provider_http.excerpt(text)] if text.strip() else []


def _refuse_html(response: requests.Response) -> None:
    """A 200 with an HTML page (an ASP.NET error page) is not an answer."""
    if "html" in response.headers.get("Content-Type", "").lower():
        reason = _error_page_reasons(response)
        raise UnexpectedAnswer(
            f"an HTML page (HTTP {response.status_code}) instead of XML",
            reason[0] if reason else "",
        )
