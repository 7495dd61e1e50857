"""Requests to one Shipping Order API account (transport only): JSON over the process's pooled
session, ``x-api-key`` and ``tenantId`` on every request, errors classified by the type the API
names in its body (``PLACE_ORDER_FAILED`` is retried though it is a 422), not by HTTP code."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from pydantic import SecretStr

from worker.basics.errors import HardError, TransientError
from worker.integrations import http as provider_http
from worker.integrations.shipping_orders.settings import PROVIDER

_session = provider_http.pooled_session()

# The seed's error table, by severity. Types not listed are hard (the table's default), and a
# body without a type falls back on the HTTP code (5xx and 429 retried).
TRANSIENT_TYPES = frozenset(
    {"INTERNAL_SERVER_ERROR", "PLACE_ORDER_FAILED", "TOO_MANY_REQUESTS", "UNMAPPED_ERROR"}
)
AUTH_REFUSED = "The Shipping Order API refused the credentials"


@dataclass(frozen=True)
class Account:
    api_key: SecretStr
    tenant_id: str


class ShippingOrdersClient:
    def __init__(
        self,
        base_url: str,
        account: Account,
        timeout: tuple[float, float],
        session: requests.Session = _session,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.timeout = timeout
        self.session = session

    def create(self, order: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/shipments", order)

    def get(self, number: str) -> dict[str, Any]:
        return self._json("GET", f"/shipments/{_segment(number)}")

    def find(self, number: str) -> dict[str, Any] | None:
        """The order under ``number``, or None when the API holds none (404 ``NOT_FOUND``)."""
        try:
            return self.get(number)
        except HardError as exc:
            if exc.status == 404:
                return None
            raise

    def edit(self, number: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("PUT", f"/shipments/{_segment(number)}", changes)

    def cancel(self, number: str) -> dict[str, Any]:
        return self._json("DELETE", f"/shipments/{_segment(number)}")

    def retry(self, number: str) -> dict[str, Any]:
        return self._json("POST", f"/shipments/{_segment(number)}/retry")

    def history(self, number: str) -> list[dict[str, Any]]:
        """The status history entries of one order, oldest first as the API lists them."""
        answer = self._json("GET", f"/shipments/{_segment(number)}/status-history")
        entries: list[dict[str, Any]] = []
        for block in answer if isinstance(answer, list) else [answer]:
            if isinstance(block, Mapping):
                entries += [e for e in block.get("orderStatus") or [] if isinstance(e, Mapping)]
        return entries

    def orders(self, filters: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every order of a list query, following ``paginationToken.next`` to the end."""
        token: str | None = None
        while True:
            body = {**filters, **({"paginationToken": token} if token else {})}
            page = self._json("POST", "/shipments/list", body)
            if not isinstance(page, Mapping) or not isinstance(page.get("data"), list):
                raise TransientError(
                    f"{PROVIDER} answered a list without its data",
                    [provider_http.excerpt(str(page))],
                )
            yield from (order for order in page["data"] if isinstance(order, Mapping))
            paging = page.get("paginationToken")
            token = paging.get("next") if isinstance(paging, Mapping) else None
            if not token:
                return

    def _json(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        headers = {
            "x-api-key": self.account.api_key.get_secret_value(),
            "tenantId": self.account.tenant_id,
            "Accept": "application/json",
        }
        try:
            response = provider_http.call(
                self.session,
                PROVIDER,
                method,
                self.base_url + path,
                headers=headers,
                json=body,
                timeout=self.timeout,
                reasons=error_reasons,
                error_type=error_type,
                transient_types=TRANSIENT_TYPES,
            )
        except HardError as exc:
            if exc.status in (401, 403):
                raise HardError(
                    AUTH_REFUSED,
                    [
                        f"{PROVIDER} answered HTTP {exc.status} to {method} {path}: check "
                        "api_key and tenant_id",
                        *exc.reasons,
                    ],
                    status=exc.status,
                    code=exc.code,
                ) from None
            raise
        return provider_http.json_body(response, PROVIDER, f"{method} {path}")


def _segment(number: str) -> str:
    """An order id as one path segment (a '/' in a shipment number must not make a path)."""
    return quote(number, safe="")


def _error_body(response: requests.Response) -> Mapping[str, Any]:
    body = response.json()
    return body if isinstance(body, Mapping) else {}


def error_type(response: requests.Response) -> str | None:
    """The API's error type (``{"type": "PLACE_ORDER_FAILED", ...}``)."""
    kind = _error_body(response).get("type")
    return kind.strip().upper() if isinstance(kind, str) and kind.strip() else None


def error_reasons(response: requests.Response) -> list[str]:
    """The API's words: its message, then each of ``errors[]`` that says more, with the
    delivery provider's name and code when the error is theirs."""
    body = _error_body(response)
    message = body.get("message")
    reasons = [str(message)] if message else []
    for item in body.get("errors") or []:
        if not isinstance(item, Mapping):
            continue
        words = str(item.get("message") or item.get("type") or "")
        if not words or (words == message and not item.get("provider")):
            continue
        who = f"{item['provider']}: " if item.get("provider") else ""
        code = f" ({item['type']}, {item['code']})" if item.get("provider") else ""
        reasons.append(f"{who}{words}{code}")
    return reasons
