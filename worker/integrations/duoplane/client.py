"""Requests to one Duoplane API user (transport only): JSON over the process's pooled session,
HTTP Basic auth (user = API key, password = API password), paced by Duoplane's leaky bucket.

Duoplane counts requests per API user in a leaky bucket (40, draining 2 per second) and answers
429 when it is full; requests made while limited lengthen the wait. Every request here first
takes room in the API user's bucket (``Job.pace``), shared by every worker process (named by a
digest of the URL and API key, never the key itself), and every answer's
``Duoplane-Retry-After-Seconds`` is honoured: a positive value holds the bucket that long. A
read answered 429 is waited out (the header's seconds plus a margin) and sent again, a few times
within the attempt; a create answered 429 was not made, and the attempt ends with a
TransientError carrying the wait.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from pydantic import SecretStr

from worker.basics.errors import HardError, TransientError
from worker.integrations import http as provider_http
from worker.integrations.duoplane.settings import PROVIDER
from worker.integrations.job import Pace

_session = provider_http.pooled_session()

RETRY_AFTER_HEADER = "Duoplane-Retry-After-Seconds"
AUTH_REFUSED = "Duoplane refused the credentials"
MAX_PAGES = 2000  # 500,000 shipments: an API that ignores ``page`` must not page forever


@dataclass(frozen=True)
class Account:
    api_key: str
    password: SecretStr

    def digest(self, base_url: str) -> str:
        """Names this API user's bucket: the key is a credential and never appears in Redis."""
        return hashlib.sha256(f"{base_url}\n{self.api_key}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Pacing:
    bucket: Pace
    margin_seconds: float = 0.25
    rate_limited_retries: int = 3


class DuoplaneClient:
    def __init__(
        self,
        base_url: str,
        account: Account,
        timeout: tuple[float, float],
        pacing: Pacing,
        session: requests.Session = _session,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.timeout = timeout
        self.pacing = pacing
        self.session = session

    def shipment_pages(
        self, search: Mapping[str, str], per_page: int, first: int = 1
    ) -> Iterator[list[dict[str, Any]]]:
        """``GET /shipments.json`` page after page (``page=first,first+1,...``) until a short
        page: the answer is a bare JSON array."""
        params = {f"search[{name}]": value for name, value in search.items()}
        for page in range(first, MAX_PAGES + 1):
            answer = self._json(
                "GET", "/shipments.json", params={**params, "per_page": per_page, "page": page}
            )
            if not isinstance(answer, list):
                raise TransientError(
                    f"{PROVIDER} answered a shipment list that is not a list",
                    [provider_http.excerpt(str(answer))],
                )
            rows = [row for row in answer if isinstance(row, Mapping)]
            yield rows
            if len(answer) < per_page:
                return
        raise TransientError(
            f"{PROVIDER} kept answering full pages",
            [f"{MAX_PAGES} pages of {per_page} shipments read; the list was not finished"],
        )

    def make_room(self) -> None:
        """Wait for room in the bucket for one request, now: the create that follows
        (``room_made=True``) goes out at once, without a wait between its guard's mark and
        the moment it is sent."""
        self.pacing.bucket.take(PROVIDER)

    def create_shipment(
        self, purchase_order_id: int, body: Mapping[str, Any], *, room_made: bool = False
    ) -> dict[str, Any]:
        """``POST /purchase_orders/{id}/shipments.json``: the created shipment (a bare object,
        or wrapped in ``{"shipment": ...}``). With ``room_made``, ``make_room`` just made
        room for it in the bucket."""
        path = f"/purchase_orders/{purchase_order_id}/shipments.json"
        answer = self._json("POST", path, body, room_made=room_made)
        if isinstance(answer, Mapping) and isinstance(answer.get("shipment"), Mapping):
            answer = answer["shipment"]
        return dict(answer) if isinstance(answer, Mapping) else {}

    # -- transport --------------------------------------------------------------------------

    def _json(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        room_made: bool = False,
    ) -> Any:
        response = self._paced(method, path, body, params, room_made=room_made)
        return provider_http.json_body(response, PROVIDER, f"{method} {path}")

    def _paced(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
        *,
        room_made: bool = False,
    ) -> requests.Response:
        """One request through the bucket (``room_made``: room was just made for its first
        sending); a read answered 429 is waited out and resent."""
        resends = self.pacing.rate_limited_retries if method == "GET" else 0
        while True:
            if not room_made:
                self.pacing.bucket.take(PROVIDER)
            room_made = False
            try:
                response = self._send(method, path, body, params)
            except TransientError as exc:
                if exc.status != 429:
                    raise
                wait = (exc.retry_after or 1.0) + self.pacing.margin_seconds
                self.pacing.bucket.hold(wait)
                if resends <= 0:
                    raise TransientError(
                        f"{PROVIDER} is limiting this API user's requests",
                        [*exc.reasons, f"{RETRY_AFTER_HEADER}: retried after {wait:g} s"],
                        retry_after=wait,
                        status=429,
                    ) from None
                resends -= 1
                continue
            self._honour(response)
            return response

    def _honour(self, response: requests.Response) -> None:
        """A positive Duoplane-Retry-After-Seconds on a success: Duoplane's bucket is full, so
        nobody sends before it has drained that long."""
        seconds = provider_http.retry_after_seconds(response.headers.get(RETRY_AFTER_HEADER))
        if seconds:
            self.pacing.bucket.hold(seconds)

    def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
    ) -> requests.Response:
        try:
            return provider_http.call(
                self.session,
                PROVIDER,
                method,
                self.base_url + path,
                headers={"Accept": "application/json"},
                auth=(self.account.api_key, self.account.password.get_secret_value()),
                json=body,
                params=params,
                timeout=self.timeout,
                reasons=error_reasons,
                retry_after_headers=(RETRY_AFTER_HEADER, "Retry-After"),
            )
        except HardError as exc:
            if exc.status in (401, 403):
                raise HardError(
                    AUTH_REFUSED,
                    [
                        f"{PROVIDER} answered HTTP {exc.status} to {method} {path}: check "
                        "api_key and password",
                        *exc.reasons,
                    ],
                    status=exc.status,
                ) from None
            raise


def error_reasons(response: requests.Response) -> list[str]:
    """Duoplane's words: ``{"errors": {"field": ["message", ...]}}``, ``{"errors": [...]}``,
    ``{"error": "..."}`` or ``{"message": "..."}``; a body of another shape gives none (the
    caller then quotes an excerpt of it)."""
    body = response.json()
    if not isinstance(body, Mapping):
        return [str(m) for m in body] if isinstance(body, list) else []
    errors = body.get("errors")
    reasons: list[str] = []
    if isinstance(errors, Mapping):
        for field, messages in errors.items():
            listed = messages if isinstance(messages, list) else [messages]
            reasons += [_field_message(str(field), str(m)) for m in listed if m not in (None, "")]
    elif isinstance(errors, list):
        reasons += [_item_message(item) for item in errors if item not in (None, "")]
    elif isinstance(errors, str):
        reasons.append(errors)
    for key in ("error", "message"):
        if isinstance(body.get(key), str) and body[key]:
            reasons.append(body[key])
    return reasons


def _field_message(field: str, message: str) -> str:
    return message if field in ("base", "") else f"{field} {message}"


def _item_message(item: Any) -> str:
    if isinstance(item, Mapping):
        words = item.get("message") or item.get("detail") or item.get("title") or str(item)
        field = item.get("field") or item.get("attribute")
        return _field_message(str(field), str(words)) if field else str(words)
    return str(item)
