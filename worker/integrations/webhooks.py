"""Inbound provider webhooks: what an integration declares, and how an event becomes a message.

An integration declares one webhook (``Integration.webhook``): the message its events become, a
``Verifier`` (the provider's signature over the raw body) and how to name an event. ``POST
/webhooks/<integration>`` (``endpoint.app``) verifies the signature before it reads anything,
then records and enqueues the event through the same intake as hub messages, under a message id
made from the event (``event_message_id``): a provider that sends an event twice meets the
first record and nothing runs twice. The handler's answer goes to the hub by push.

Each store has its own provider account, so its own webhook secret (``StoreSecrets``): an event
is verified with the secret of the store it is posted for, and only that one, so that an event
of one store cannot be posted again for another. Message ids starting with ``webhook:`` are
events' own: the receiver refuses them in hub messages (``reserved_id_problem``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr

from worker.basics.secret_settings import webhook_secret_problem
from worker.hub.messages import message_id_problem, store_problem

# Every event's message id starts so; no hub message may take one (it would stand in for the
# event, which would then be dropped as its duplicate).
WEBHOOK_PREFIX = "webhook:"
# The request headers, the raw body, the store the event is posted for (``?store=``, else
# HUB_STORE) and HUB_STORE → None when the provider signed it with that store's secret, else
# what is wrong (never the signature or the secret themselves).
Verifier = Callable[[Mapping[str, str], bytes, str, str], str | None]
# A validated event → its identity, e.g. "<order>:<status>:<time>" (the de-duplication key).
EventKey = Callable[[Any], str]


@dataclass(frozen=True)
class Webhook:
    integration: str
    message: str  # what an event becomes, e.g. "shipping_orders:order:event"
    payload: type[BaseModel]
    verify: Verifier
    key: EventKey
    secret: WebhookSecret | None = None  # what ``verify`` checks signatures with, if secrets


def event_message_id(store: str, key: str) -> str:
    """The message id of an event posted for ``store``: ``webhook:<store>:<key>`` when that is a
    fit id, else with a digest of the key (a provider's id may hold characters a message id
    cannot). The store is part of it: two stores are two provider accounts, whose events may
    have the same key, and one store's event must not pass for a repeat of the other's."""
    readable = f"{WEBHOOK_PREFIX}{store}:{key}"
    if message_id_problem(readable) is None:
        return readable
    return f"{WEBHOOK_PREFIX}{store}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def reserved_id_problem(message_id: str) -> str | None:
    """What keeps a hub message from taking ``message_id``: the ids of providers' events."""
    if message_id.startswith(WEBHOOK_PREFIX):
        return (
            f"starts with {WEBHOOK_PREFIX!r}, which is reserved for providers' webhook events "
            "(a hub message under such an id would stand in for an event yet to come)"
        )
    return None


@dataclass(frozen=True)
class StoreSecrets:
    """A provider's webhook secrets: each store's own (``<PROVIDER>_WEBHOOK_SECRETS``, a JSON
    object of store -> secret, one provider account per store), and ``<PROVIDER>_WEBHOOK_SECRET``,
    the secret of HUB_STORE when the object does not name it (a single-store deployment)."""

    per_store: Mapping[str, SecretStr]
    single: SecretStr | None
    variable: str  # <PROVIDER>_WEBHOOK_SECRET; the object's is this with an S

    def of(self, store: str, hub_store: str) -> SecretStr | None:
        """The one secret that verifies ``store``'s events (None: none is set)."""
        if store in self.per_store:
            return self.per_store[store]
        return self.single if store == hub_store else None

    def missing(self, store: str, hub_store: str) -> str:
        """Why ``store`` has no secret, naming the variables that would give it one."""
        where = f"{self.variable}S names no store {store!r}"
        if store == hub_store:
            where = f"{where}, and {self.variable} (HUB_STORE's) is not set"
        return (
            f"No webhook secret for store {store!r}: {where}; events for it cannot be verified, "
            "so none is taken"
        )


def parse_store_secrets(text: str) -> dict[str, SecretStr]:
    """``<PROVIDER>_WEBHOOK_SECRETS``: a JSON object of store -> secret. ValueError saying what
    is wrong (never a secret): not such an object, a store that is not fit to be one, a secret
    that is not text or is unfit (``webhook_secret_problem``: blank, padded, too short...), or one
    secret for two stores (an event of either could then be posted for the other)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"is not a JSON object of store -> secret: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"is not a JSON object of store -> secret, but a {type(data).__name__}")
    owners: dict[str, str] = {}
    for store, secret in data.items():
        if problem := store_problem(store):
            raise ValueError(f"store {store!r} {problem}")
        if not isinstance(secret, str):
            raise ValueError(f"store {store!r}'s secret is not text")
        if problem := webhook_secret_problem(secret):
            raise ValueError(f"store {store!r}'s secret {problem}")
        if secret in owners:
            raise ValueError(
                f"stores {owners[secret]!r} and {store!r} have the same secret: an event of one "
                "could be posted for the other; give each store its own provider account"
            )
        owners[secret] = store
    return {store: SecretStr(secret) for store, secret in data.items()}


@dataclass(frozen=True)
class WebhookSecret:
    """The secrets a provider signs its events with, for ``shiphub check``: the variable of
    HUB_STORE's (the per-store object's is the same with an S), and how to read them now.
    ``problem()`` says what keeps every event from being verified (no secret set for any store),
    never a value; an unfit secret stops the process at start-up (``parse_store_secrets``)."""

    variable: str
    read: Callable[[], StoreSecrets]

    def problem(self) -> str | None:
        known = self.read()
        if known.single is None and not known.per_store:
            return (
                f"neither {self.variable} nor {self.variable}S is set: events cannot be "
                "verified, so none is taken"
            )
        return None

    def stores(self, hub_store: str) -> list[str]:
        """The stores whose events can be verified."""
        known = self.read()
        single = (
            [hub_store] if known.single is not None and hub_store not in known.per_store else []
        )
        return sorted([*known.per_store, *single])


def hex_hmac_sha256(header: str, secrets: Callable[[], StoreSecrets]) -> Verifier:
    """A verifier for ``header: hex(HMAC-SHA256(secret, raw body))``, compared in constant time,
    with the secret of the store the event is posted for. Without that store's secret the event
    is refused: an unsigned event could move any shipment, and another store's secret would let
    one store's events be posted again for another."""

    def verify(headers: Mapping[str, str], body: bytes, store: str, hub_store: str) -> str | None:
        known = secrets()
        key = known.of(store, hub_store)
        if key is None or not key.get_secret_value():
            return known.missing(store, hub_store)
        given = headers.get(header, "").strip().lower()
        if not given:
            return f"The {header} header is missing or empty"
        expected = hmac.new(key.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return (
                f"The {header} signature does not match the body under store {store!r}'s "
                "webhook secret (an event is verified with the secret of the store it is "
                "posted for, and only that one)"
            )
        return None

    return verify
