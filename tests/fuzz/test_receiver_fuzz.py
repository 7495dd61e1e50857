"""Property-based fuzzing of the receiver from its own OpenAPI document (schemathesis).

Every operation of ``GET /openapi.json`` gets generated requests that fit the document
(positive) and mutated ones that do not (negative), with the token, against the real receiver on
the real Redis. Every response must be documented (status, content type, headers, body schema)
and none may be a 5xx. Afterwards, nothing malformed may have been recorded: each record in Redis
must hold a message its route's service takes, with a payload its model validates.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import settings
from schemathesis import GenerationMode

from endpoint.openapi import document, envelope, signature_header
from tests.fuzz.conftest import ENDPOINT_KEY, Receiver, sign
from worker.integrations import registry
from worker.integrations.registry import WEBHOOK_SERVICE, Integration
from worker.store.schema import RECORD_PREFIX

# Fuzzing-phase requests per operation (the examples and coverage phases add their own cases).
# 23 operations: about 5,000 requests in all, under a minute on the 2-core machine.
MAX_EXAMPLES = 100
SEED = 20261123
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "ignored_auth",
]


@dataclass
class Traffic:
    """What was sent and answered, for the checks that follow the fuzzing."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    # (integration, message_id) -> the services of the routes that took it (one, or it is a bug)
    taken: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())


TRAFFIC = Traffic()
# The integrations fuzzed: those the document is built for, when the tests are collected.
FUZZED = tuple(registry.load().values())


class Deferred:
    """A WSGI application that is the receiver once the ``receiver`` fixture has built it: the
    schema is loaded when the tests are collected, before any Redis runs."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "the receiver fixture sets the app"
        return self.app(environ, start_response)


RECEIVER = Deferred()


def _schema() -> Any:
    """The document of the built-in integrations (it needs no Redis), its requests sent to the
    real receiver in process."""
    loaded = schemathesis.openapi.from_dict(document())
    loaded.app = RECEIVER
    loaded.config.generation.update(
        modes=list(GenerationMode),
        max_examples=MAX_EXAMPLES,
        database="none",
    )
    # A fixed seed, from which each operation derives its own: reproducible runs, and each
    # operation's own message ids (with one shared sequence, the first service of an
    # integration took every id, and its siblings only ever got 409 conflicts).
    loaded.config.seed = SEED
    loaded.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    loaded.config.checks.update(included_check_names=CHECKS)
    return loaded


schema = _schema()


@schema.parametrize()
@settings(database=None)
def test_every_request_is_answered_as_documented(case: Any, receiver: Receiver) -> None:
    headers = {"X-Hub-Token": ENDPOINT_KEY}
    kwargs: dict[str, Any] = {}
    if case.path.startswith("/webhooks/"):
        kwargs = _signed(case, headers)
    RECEIVER.app = receiver.app
    response = case.call_and_validate(headers=headers, **kwargs)
    TRAFFIC.statuses[(f"{case.method} {case.path}", response.status_code)] += 1
    _note_taken(case, response)


def _signed(case: Any, headers: dict[str, str]) -> dict[str, Any]:
    """Sign three webhook bodies in four as the provider would, so that events get past the
    signature to the parsing and the intake; the fourth keeps the generated signature (401).
    The body is serialized here, and sent as these very bytes."""
    hook = registry.integrations()[case.path.split("/")[2]].inbound
    header = signature_header(hook) if hook is not None else None
    sent = case.as_transport_kwargs()
    if header is None or not ("data" in sent or "json" in sent):
        return {}
    raw = sent["data"] if "data" in sent else json.dumps(sent["json"])
    raw = raw.encode() if isinstance(raw, str) else raw
    if not isinstance(raw, bytes) or zlib.crc32(raw) % 4 == 0:
        return {}
    headers[header] = sign(raw)
    return {"data": raw}


def _note_taken(case: Any, response: Any) -> None:
    """Remember which route took which message: a 200 of a hub service (queued, a duplicate, or
    the answer of a request that waited), a 202 (it waited and the answer is not there yet), or
    a webhook's 200."""
    parts = case.path.strip("/").split("/")
    if response.status_code not in (200, 202) or case.method != "POST" or parts[-1] == "replay":
        return
    integration, service = (parts[1], WEBHOOK_SERVICE) if parts[0] == "webhooks" else parts
    TRAFFIC.taken.setdefault((integration, response.json()["message_id"]), set()).add(service)


def test_nothing_malformed_was_recorded(receiver: Receiver) -> None:
    """Every record holds a body its route's service takes: the message type is one of the
    service's, the envelope validates as a hub message and the payload as its model; every
    record is one a route said it took, under that route's service; and every route took some."""
    assert TRAFFIC.sent > 0, "run with test_every_request_is_answered_as_documented before it"
    print(f"\nrequests sent: {TRAFFIC.sent}")
    for (label, status), count in sorted(TRAFFIC.statuses.items()):
        print(f"  {label:60} {status}  x{count}")
    redis = receiver.db.redis
    keys = list(redis.scan_iter(f"{RECORD_PREFIX}*"))
    assert keys, "the fuzzing recorded nothing: it never reached intake"
    for key in keys:
        fields = redis.hgetall(key)
        _check_record(key, fields)
    recorded = {
        (f["integration"], f["message_id"]): {f["service"]} for f in map(redis.hgetall, keys)
    }
    assert recorded == TRAFFIC.taken
    routes = {(i.name, s) for i in FUZZED for s in _routes(i)}
    reached = {(integration, service) for (integration, _), (service,) in recorded.items()}
    assert routes <= reached, f"no message got through {sorted(routes - reached)}"


def _routes(integration: Integration) -> list[str]:
    """The services an integration takes messages on: its hub services and its webhook."""
    webhook = [WEBHOOK_SERVICE] if integration.inbound is not None else []
    return [*integration.hub_services(), *webhook]


def _check_record(key: str, fields: dict[str, str]) -> None:
    integration = registry.integrations()[fields["integration"]]
    service = integration.services[fields["service"]]
    handler = service.handlers.get(fields["message"])
    assert handler is not None, f"{key}: {fields['message']} is not taken by {service.name}"
    # The documented envelope: HubMessage's own checks, this message type, the payload model.
    message = envelope(handler).model_validate_json(fields["body"])
    assert (message.message_id, message.message) == (fields["message_id"], fields["message"])
    assert key == f"{RECORD_PREFIX}{integration.name}:{message.message_id}"
