"""Push finished answers to the hub, from the Redis outbox, until the hub takes them.

Each push is signed the way the hub checks it:

* ``X-Hub-Store``, ``X-Hub-Timestamp`` (unix seconds);
* ``X-Hub-Access-Token``: the token, or (``HUB_SIGN_ACCESS_TOKEN``) the hex HMAC-SHA1 of
  body + timestamp keyed by the token, as the classic hub verified;
* ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the token>``.

Anything but a 2xx is retried with back-off; after ``HUB_PUSH_MAX_ATTEMPTS`` the delivery is dead
(listed, replayable). A lease keeps two pushers off one answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from functools import lru_cache

import requests

from worker.provider_http import excerpt, pooled_session
from worker.records import PREFIX, Records, member
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


def push_delay(attempts: int, s: Settings) -> float:
    """1, 2, 4 ... seconds, capped: short enough for a hub that was briefly away."""
    return float(min(s.hub_push_retry_max_seconds, 2 ** max(0, attempts - 1)))


def deliver(records: Records, integration: str, message_id: str, s: Settings) -> float | None:
    """Push one answer if it is due. Returns the delay before the next try, or None when done."""
    record = records.get(integration, message_id)
    if record is None or record.fields.get("delivery") != "pending" or not s.hub_push_url:
        return None
    due = records.delivery_due_at(integration, message_id)
    if due is None:
        return None
    if due > time.time() + 0.5:
        return due - time.time()  # a retry is already scheduled for later
    lease_key = f"{PREFIX}pushing:{member(integration, message_id)}"
    token = uuid.uuid4().hex
    if not records.redis.set(lease_key, token, nx=True, ex=int(s.hub_push_timeout_seconds) + 5):
        return None  # another pusher has it right now
    try:
        body = json.dumps(record.answer, separators=(",", ":")).encode()
        error = _push(body, s)
        if error is None:
            records.delivered(integration, message_id)
            return None
        attempts = int(record.fields.get("delivery_attempts", 0)) + 1
        if attempts >= s.hub_push_max_attempts:
            log.error(
                "push of %s/%s dead after %d attempts: %s", integration, message_id, attempts, error
            )
            records.delivery_failed(integration, message_id, error, None)
            return None
        delay = push_delay(attempts, s)
        records.delivery_failed(integration, message_id, error, time.time() + delay)
        log.warning(
            "push of %s/%s failed (%s); next try in %.0fs", integration, message_id, error, delay
        )
        return delay
    finally:
        records.release(lease_key, token)


def _push(body: bytes, s: Settings) -> str | None:
    """POST the answer; None on a 2xx, else what went wrong (never the token)."""
    assert s.hub_push_url
    try:
        response = _session().post(
            s.hub_push_url,
            data=body,
            headers=signed_headers(body, s),
            timeout=(2.0, s.hub_push_timeout_seconds),
        )
    except requests.RequestException as exc:
        return f"{exc.__class__.__name__}: could not reach the hub"
    if 200 <= response.status_code < 300:
        return None
    return f"hub answered HTTP {response.status_code}: {excerpt(response.text)}"


def kick(integration: str, message_id: str, countdown: float | None = None) -> None:
    """Ask a worker to push now (or after ``countdown``). Losing this is harmless: the watchdog
    finds due outbox entries."""
    from worker.app import app

    try:
        app.send_task(DELIVER_TASK, args=[integration, message_id], countdown=countdown)
    except Exception as exc:
        log.warning(
            "could not enqueue push of %s/%s (%r); the watchdog will", integration, message_id, exc
        )
