"""Push finished answers to the hub, from the Redis outbox, until the hub takes them.

Each push is signed the way the hub checks it:

* ``X-Hub-Store``, ``X-Hub-Timestamp`` (unix seconds);
* ``X-Hub-Access-Token``: the token, or (``HUB_SIGN_ACCESS_TOKEN``) the hex HMAC-SHA1 of
  body + timestamp keyed by the token, as the classic hub verified;
* ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the token>``.

A push task carries the claim it was sent for (``worker.outbox``); anything but a 2xx is retried
on the push policy (jittered back-off, the hub's Retry-After honoured up to the cap) for
``HUB_PUSH_RETRY_FOR_SECONDS``, the next push scheduled in Redis; then the delivery is dead
(listed, replayable).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import requests

from worker.outbox import Outbox
from worker.provider_http import excerpt, pooled_session, retry_after_seconds
from worker.settings import Settings

log = logging.getLogger(__name__)
DELIVER_TASK = "shiphub.deliver"


def signed_headers(body: bytes, s: Settings, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    token = s.hub_access_token.get_secret_value().encode() if s.hub_access_token else b""
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Store": s.hub_store,
        "X-Hub-Timestamp": ts,
        "X-Hub-Signature": "sha256="
        + hmac.new(token, ts.encode() + b"." + body, hashlib.sha256).hexdigest(),
    }
    if s.hub_sign_access_token:
        headers["X-Hub-Access-Token"] = hmac.new(
            token, body + ts.encode(), hashlib.sha1
        ).hexdigest()
    else:
        headers["X-Hub-Access-Token"] = token.decode()
    return headers


@lru_cache(maxsize=1)
def _session() -> requests.Session:
    return pooled_session()


@dataclass(frozen=True)
class Pushed:
    """What one push task did: ``delivered``; ``retrying`` (next push at ``next_at``); ``dead``;
    or ``stale``: its claim was not (or no longer) the current one, so it pushed nothing or its
    outcome was refused."""

    outcome: Literal["delivered", "retrying", "dead", "stale"]
    error: str = ""
    next_at: float | None = None


def deliver(outbox: Outbox, integration: str, message_id: str, claim: str, s: Settings) -> Pushed:
    """Push one answer under ``claim`` and record what happened."""
    taken = outbox.take(integration, message_id, claim, s.hub_push_timeout_seconds)
    if taken is None or not s.hub_push_url:
        return Pushed("stale")
    body = json.dumps(taken.answer, separators=(",", ":")).encode()
    error, retry_after = _push(body, s)
    if error is None:
        if not outbox.delivered(integration, message_id, claim):
            log.warning(
                "push of %s/%s landed after its claim was superseded", integration, message_id
            )
        return Pushed("delivered")
    attempt = taken.attempts + 1
    next_at = s.push_retries.next_attempt_at(attempt, taken.since, time.time(), retry_after)
    outcome = outbox.failed(integration, message_id, claim, error, next_at)
    if outcome == "dead":
        log.error(
            "push of %s/%s dead after %d attempts: %s", integration, message_id, attempt, error
        )
    elif outcome == "retrying":
        log.warning(
            "push of %s/%s failed (%s); next in %.1fs",
            integration,
            message_id,
            error,
            (next_at or 0) - time.time(),
        )
    else:
        log.warning(
            "push of %s/%s: outcome refused, its claim was superseded", integration, message_id
        )
    return Pushed(outcome, error, next_at)


def _push(body: bytes, s: Settings) -> tuple[str | None, float | None]:
    """POST the answer; (None, None) on a 2xx, else what went wrong (never the token) and the
    hub's Retry-After, if it gave one."""
    assert s.hub_push_url
    try:
        response = _session().post(
            s.hub_push_url,
            data=body,
            headers=signed_headers(body, s),
            timeout=(2.0, s.hub_push_timeout_seconds),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return f"{exc.__class__.__name__}: could not reach the hub", None
    if 200 <= response.status_code < 300:
        return None, None
    hint = retry_after_seconds(response.headers.get("Retry-After"))
    return f"hub answered HTTP {response.status_code}: {excerpt(response.text)}", hint


def push_soon(outbox: Outbox, integration: str, message_id: str) -> None:
    """Claim a due delivery and send its push task now, rather than at the next scheduler tick.
    Failing here is harmless: the scheduler claims due deliveries by itself."""
    from worker.app import send_push

    try:
        claim = outbox.claim(integration, message_id)
    except Exception as exc:
        log.warning("could not claim the push of %s/%s now (%r)", integration, message_id, exc)
        return
    if claim is None:
        return
    try:
        send_push(integration, message_id, claim)
    except Exception as exc:
        log.warning("could not send the push of %s/%s (%r)", integration, message_id, exc)
        with contextlib.suppress(Exception):
            outbox.make_due(integration, message_id, time.time())
