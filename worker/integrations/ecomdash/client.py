"""Requests to ecomdash (transport only): ``POST {url}/Shipments/submitTrackingInfo`` with the
gateway's key (``Ocp-Apim-Subscription-Key``) and the customer's (``ecd-subscription-key``).

Errors say which key is wrong, never its value: the gateway (Azure API Management) answers 401
``{"statusCode": 401, "message": ...}`` for its own key, missing or invalid; ecomdash answers
403 ``{"Message": ...}`` for the customer's. 429 (with ``Retry-After`` for the rate, without
it for too many calls at once) and 5xx are retried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from pydantic import SecretStr

from worker.basics.errors import HardError
from worker.integrations import http as provider_http
from worker.integrations.ecomdash.mapping import SubmitAnswer
from worker.integrations.ecomdash.settings import PROVIDER

_session = provider_http.pooled_session()

SUBMIT_PATH = "/Shipments/submitTrackingInfo"
GATEWAY_KEY_HEADER = "Ocp-Apim-Subscription-Key"
ECD_KEY_HEADER = "ecd-subscription-key"
GATEWAY_REFUSED = "ecomdash's API gateway refused the subscription key"
ACCOUNT_REFUSED = "ecomdash refused the ecd-subscription-key"


@dataclass(frozen=True)
class Keys:
    subscription: SecretStr  # Ocp-Apim-Subscription-Key: the API gateway's
    ecd: SecretStr  # ecd-subscription-key: the ecomdash customer's


class EcomdashClient:
    def __init__(
        self,
        base_url: str,
        keys: Keys,
        timeout: tuple[float, float],
        session: requests.Session = _session,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.keys = keys
        self.timeout = timeout
        self.session = session

    def submit_tracking(self, records: Sequence[Mapping[str, Any]]) -> SubmitAnswer:
        """Send a batch of tracking records; ecomdash's answer, one result per record."""
        headers = {
            GATEWAY_KEY_HEADER: self.keys.subscription.get_secret_value(),
            ECD_KEY_HEADER: self.keys.ecd.get_secret_value(),
            "Accept": "application/json",
        }
        try:
            response = provider_http.call(
                self.session,
                PROVIDER,
                "POST",
                self.base_url + SUBMIT_PATH,
                headers=headers,
                json=list(records),
                timeout=self.timeout,
                reasons=error_reasons,
            )
        except HardError as exc:
            raise refused_key(exc) or exc from None
        # Unreadable: the records may have been taken; retried, the next call says how they stand.
        return provider_http.json_body(response, PROVIDER, "submitTrackingInfo", SubmitAnswer)


def refused_key(exc: HardError) -> HardError | None:
    """A 401 (the gateway's key) or 403 (the customer's) as an error naming the key to check."""
    if exc.status == 401:
        return HardError(
            GATEWAY_REFUSED,
            [
                f"{PROVIDER}'s API gateway answered HTTP 401: check subscription_key "
                f"(ECOMDASH_SUBSCRIPTION_KEY, sent as {GATEWAY_KEY_HEADER}); its value is not "
                "shown",
                *exc.reasons,
            ],
            status=401,
        )
    if exc.status == 403:
        return HardError(
            ACCOUNT_REFUSED,
            [
                f"{PROVIDER} answered HTTP 403: check ecd_key (ECOMDASH_ECD_KEY, sent as "
                f"{ECD_KEY_HEADER}: the ecomdash account's integration key, valid and with a "
                "current subscription); its value is not shown",
                *exc.reasons,
            ],
            status=403,
        )
    return None


def error_reasons(response: requests.Response) -> list[str]:
    """ecomdash's ``{"Message": ...}`` or the gateway's ``{"statusCode", "message"}``."""
    body = response.json()
    if not isinstance(body, Mapping):
        return []
    words = body.get("Message") or body.get("message")
    return [str(words)] if words else []
