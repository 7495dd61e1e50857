"""What every route of the receiver shares: the process's wiring, and who may come in."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from flask import current_app, request

from worker.basics.settings import Settings
from worker.pipeline.delivery import SendPush
from worker.pipeline.intake import Publish
from worker.store.bundle import Store
from worker.store.outbox import Outbox

TOKEN_HEADERS = ("X-Hub-Token", "X-Augury-Token")
# The same headers as WSGI names them: read straight from the environment, in this order.
_TOKEN_ENVIRON = tuple("HTTP_" + h.upper().replace("-", "_") for h in TOKEN_HEADERS)
EXTENSION = "shiphub"


@dataclass(frozen=True)
class Wiring:
    settings: Settings
    db: Store
    outbox: Outbox
    publish: Publish
    send_push: SendPush


def wiring() -> Wiring:
    """The receiver's wiring, from a blueprint's route (set by ``create_app``)."""
    return current_app.extensions[EXTENSION]


def token_ok(s: Settings) -> bool:
    """The request carries the endpoint token (or none is required: insecure development)."""
    if s.endpoint_key is None:
        return True
    key = s.endpoint_key.get_secret_value().encode()
    environ = request.environ
    given = next((environ[h] for h in _TOKEN_ENVIRON if h in environ), None)
    return given is not None and hmac.compare_digest(given.encode(), key)
