"""Inbound provider webhooks: what an integration declares, and how an event becomes a message.

An integration declares one webhook (``Integration.webhook``): the message its events become, a
``Verifier`` (the provider's signature over the raw body) and how to name an event. ``POST
/webhooks/<integration>`` (``endpoint.app``) verifies the signature before it reads anything,
then records and enqueues the event through the same intake as hub messages, under a message id
made from the event (``event_message_id``): a provider that sends an event twice meets the
first record and nothing runs twice. The handler's answer goes to the hub by push.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr

from worker.hub import message_id_problem
from worker.secret_settings import webhook_secret_problem

# The raw body and the request headers → None when the provider signed it, else what is wrong
# (never the signature or the secret themselves).
Verifier = Callable[[Mapping[str, str], bytes], str | None]
# A validated event → its identity, e.g. "<order>:<status>:<time>" (the de-duplication key).
EventKey = Callable[[Any], str]


@dataclass(frozen=True)
class WebhookSecret:
    """The secret a provider signs its events with: the variable it is set in, and how to read
    it now. ``problem()`` says what keeps events from being verified (not set, or unfit:
    ``webhook_secret_problem``), never its value; ``shiphub check`` says it too."""

    variable: str
    read: Callable[[], SecretStr | None]

    def problem(self) -> str | None:
        key = self.read()
        if key is None or not key.get_secret_value():
            return f"{self.variable} is not set: events cannot be verified, so none is taken"
        if problem := webhook_secret_problem(key.get_secret_value()):
            return f"{self.variable} {problem}: events cannot be verified, so none is taken"
        return None


@dataclass(frozen=True)
class Webhook:
    integration: str
    message: str  # what an event becomes, e.g. "shipping_orders:order:event"
    payload: type[BaseModel]
    verify: Verifier
    key: EventKey
    secret: WebhookSecret | None = None  # what ``verify`` checks signatures with, if a secret


def event_message_id(webhook: Webhook, key: str) -> str:
    """The message id of an event: ``webhook:<key>`` when that is a fit id, else a digest of
    the key (a provider's id may hold characters a message id cannot)."""
    readable = f"webhook:{key}"
    if message_id_problem(readable) is None:
        return readable
    return f"webhook:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def hex_hmac_sha256(header: str, secret: WebhookSecret) -> Verifier:
    """A verifier for ``header: hex(HMAC-SHA256(secret, raw body))``, compared in constant time.
    Without a fit secret configured every event is refused: an unsigned event could move any
    shipment."""

    def verify(headers: Mapping[str, str], body: bytes) -> str | None:
        if problem := secret.problem():
            return problem
        key = secret.read()
        assert key is not None  # problem() said it is set
        given = headers.get(header, "").strip().lower()
        if not given:
            return f"The {header} header is missing or empty"
        expected = hmac.new(key.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return f"The {header} signature does not match the body"
        return None

    return verify
