"""Requests to Spectrum (transport only): JSON over the process's pooled session, the token in
the ``SPECTRUM_API_TOKEN`` header (underscores, as Spectrum names it; requests and urllib3 send
the name as written), errors sorted by what Spectrum means by them:

* 409 ``Unable to find recipeSetReadableId(s): X.``: nothing in the order was updated
  (``UnknownRecipeSets``); a 404 with that body means the same (Spectrum's newer sibling
  endpoint answers 404 for it);
* 403: throttling or a bad token, Spectrum does not say which (``Forbidden``): the handler
  decides how often to try again;
* 500 (and 502/503/504, timeouts): retried (``TransientError``, from ``provider_http``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from worker.basics.errors import HardError
from worker.integrations import http as provider_http
from worker.integrations.spectrum.settings import API_URL_VARIABLE, PROVIDER

_session = provider_http.pooled_session()

TOKEN_HEADER = "SPECTRUM_API_TOKEN"
SHIP_NOTIFICATION = "/api/order/ship-notification"
_UNKNOWN = re.compile(r"Unable to find recipeSetReadableId\(s\):\s*(?P<ids>.*)", re.IGNORECASE)


class ShipNotificationStatus(BaseModel):
    """Spectrum's ``ShipNotificationStatus``: ``{purchaseOrderNumber, status, details}``."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    purchaseOrderNumber: str | None = None
    status: str | None = None
    details: str | None = None

    @property
    def ok(self) -> bool:
        return (self.status or "OK").strip().upper() == "OK"


class Forbidden(HardError):
    """HTTP 403: throttled, or the token is wrong."""


class UnknownRecipeSets(HardError):
    """409 (or 404) ``Unable to find recipeSetReadableId(s)``: nothing in the order was
    updated. ``ids`` are the ones Spectrum named, ``details`` its own words."""

    def __init__(self, ids: list[str], details: str, status: int) -> None:
        super().__init__(f"{PROVIDER} answered HTTP {status}", [details], status=status)
        self.ids = ids
        self.details = details


class SpectrumClient:
    def __init__(
        self,
        base_url: str,
        token: SecretStr,
        timeout: tuple[float, float],
        session: requests.Session = _session,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = session

    def ship_notification(self, body: Mapping[str, Any]) -> ShipNotificationStatus:
        """POST one ship notification; Spectrum's status when it took it (HTTP 200)."""
        headers = {
            TOKEN_HEADER: self.token.get_secret_value(),
            "Accept": "application/json",
        }
        try:
            response = provider_http.call(
                self.session,
                PROVIDER,
                "POST",
                self.base_url + SHIP_NOTIFICATION,
                headers=headers,
                json=dict(body),
                timeout=self.timeout,
                reasons=error_reasons,
            )
        except HardError as exc:
            raise _meaning(exc) from None
        return accepted(response)


def accepted(response: requests.Response) -> ShipNotificationStatus:
    """A 200 means "accepted and all line items updated" (the seed); a 200 body that says
    ``status: "Error"`` is taken at its word (a HardError with its details). A 200 body that is
    not the documented JSON is still an acceptance: trying again could not make it better."""
    try:
        status = ShipNotificationStatus.model_validate(response.json())
    except (ValueError, ValidationError):
        return ShipNotificationStatus(details=provider_http.excerpt(response.text) or None)
    if not status.ok:
        raise HardError(
            f"{PROVIDER} answered HTTP {response.status_code} with status {status.status}",
            [status.details or "no details"],
            status=response.status_code,
        )
    return status


def _meaning(exc: HardError) -> HardError:
    """What a refusal means, by its status and Spectrum's words (its ``details``, or an
    excerpt of a body without them)."""
    if exc.status == 403:
        return Forbidden(exc.subject, exc.reasons, status=403)
    for details in exc.reasons if exc.status in (404, 409) else []:
        if (ids := unknown_ids(details)) is not None:
            return UnknownRecipeSets(ids, details, exc.status or 409)
    if exc.status == 404:
        return HardError(
            exc.subject,
            [
                *exc.reasons,
                f"POST {SHIP_NOTIFICATION} is not there: check {API_URL_VARIABLE} (the "
                "environment's base URL, such as https://api.spectrumcustomizer.com)",
            ],
            status=404,
        )
    return exc


def unknown_ids(details: str) -> list[str] | None:
    """The ids of ``Unable to find recipeSetReadableId(s): A, B.`` (None for other words)."""
    found = _UNKNOWN.search(details)
    if found is None:
        return None
    listed = found.group("ids").strip().removesuffix(".")
    return [i for i in re.split(r"[\s,;]+", listed) if i]


def error_reasons(response: requests.Response) -> list[str]:
    """Spectrum's words: ``details`` of ``{purchaseOrderNumber, status: "Error", details}``."""
    body = response.json()
    details = body.get("details") if isinstance(body, Mapping) else None
    return [str(details)] if details else []
