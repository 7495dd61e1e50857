"""Push finished answers to the hub, from the Redis outbox, until the hub takes them.

Each push is signed the way the hub checks it, and says which delivery it is:

* ``X-Hub-Store``: the store the message came for; ``X-Hub-Timestamp`` (unix seconds);
* ``X-Hub-Access-Token``: the token, or (``HUB_SIGN_ACCESS_TOKEN``) the hex HMAC-SHA1 of
  body + timestamp keyed by the token, as the classic hub verified;
* ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the token>``;
* ``X-Hub-Delivery-Id``: the same on every push of one answer (part), different for every other,
  so a hub can drop the repeats that at-least-once delivery makes unavoidable;
  ``X-Hub-Delivery-Part: <n>/<parts>``;
* Standard Webhooks' (``worker.hub.standard_webhooks``): ``webhook-id`` (the delivery id),
  ``webhook-timestamp`` (the same seconds) and, with ``HUB_PUSH_SECRET``, ``webhook-signature``.

An answer bigger than ``HUB_PUSH_MAX_BYTES`` goes out as several pushes, in order, each a valid
answer with the same ``message_id`` and its own ``part`` of ``parts`` (the messages spread over the
parts; parameters and notifications in the last, so the cursor arrives with the last shipment).

A push task carries the claim it was sent for (``worker.store.outbox``); anything but a 2xx (a
redirect included: it is never followed) is retried on the push policy (jittered back-off; after a
429, 502, 503 or 504 the hub's Retry-After honoured up to the cap) for
``HUB_PUSH_RETRY_FOR_SECONDS``, the next push scheduled in Redis; then the delivery is dead
(listed, replayable). A ``410 Gone`` makes it dead at once ("the hub said gone"). A push that
timed out may have reached a slow hub: the next one waits at least as long and gets twice the
time, so a hub slower than ``HUB_PUSH_TIMEOUT_SECONDS`` sees a few copies, not a copy per
second.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import redis
import requests

from worker.basics import logs
from worker.basics.patience import patiently
from worker.basics.settings import Settings
from worker.hub import standard_webhooks
from worker.integrations import registry
from worker.integrations.http import excerpt, pooled_session, retry_after_seconds
from worker.store import replication
from worker.store.outbox import Claimed, Outbox, TakenPush

log = logging.getLogger(__name__)
DELIVER_TASK = "shiphub.deliver"
PUSH_QUEUE = registry.HUB_QUEUE  # where push tasks go (``worker.integrations.routing``)
# Sends a claimed delivery's push task (its arguments: integration, message_id, claim), stamped
# with the claim's time and known by ``push_task_name`` in the broker. The Celery app
# (``worker.tasks.app.send_push``) gives it to what pushes (the scheduler, a handled message, a
# replay).
SendPush = Callable[[Claimed], None]
MAX_TIMEOUT_GROWTH = 8  # a slow hub's timeout grows to at most this many times the setting
# How long a push task waits for Redis to come back (a restart) before it gives the push up to
# its claim's reclaim time, a minute later.
PATIENCE_SECONDS = 20.0


def push_task_name(claimed: Claimed) -> str:
    """What a claim's push task is known by in the broker (its ``shiphub_message`` header): the
    scheduler asks whether a worker reserved it (``worker.pipeline.watchdog.in_broker``)."""
    return f"{claimed.integration}:{claimed.message_id}/push/{claimed.claim}"


def delivery_id(taken: TakenPush, part: int) -> str:
    """What one answer part is known by, ``X-Hub-Delivery-Id`` and ``webhook-id``:
    ``<the answer's delivery id>-<part>``, the same on every push of that part (retries, a
    replay of the dead delivery), different for every other part and every other answer."""
    return f"{taken.delivery_id}-{part}"


def signed_headers(
    body: bytes,
    s: Settings,
    timestamp: int | None = None,
    store: str | None = None,
    webhook_id: str | None = None,
) -> dict[str, str]:
    """The headers that sign one push: the classic hub's ``X-Hub-*``, and with ``webhook_id``
    Standard Webhooks' (a ``webhook-signature`` only with ``HUB_PUSH_SECRET``), all of one
    timestamp."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    token = s.hub_access_token.get_secret_value().encode() if s.hub_access_token else b""
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Store": store or s.hub_store,
        "X-Hub-Timestamp": ts,
        "X-Hub-Signature": "sha256="
        + hmac.new(token, ts.encode() + b"." + body, hashlib.sha256).hexdigest(),
    }
    if webhook_id is not None:
        headers |= {"webhook-id": webhook_id, "webhook-timestamp": ts}
        if keys := s.push_signing_keys:
            headers["webhook-signature"] = standard_webhooks.signature(keys, webhook_id, ts, body)
    if s.hub_sign_access_token:
        headers["X-Hub-Access-Token"] = hmac.new(
            token, body + ts.encode(), hashlib.sha1
        ).hexdigest()
    else:
        headers["X-Hub-Access-Token"] = token.decode()
    return headers


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def push_bodies(answer: dict[str, Any], max_bytes: int, ahead: int = 0) -> list[bytes]:
    """The answer as one push body, or as parts of at most ``max_bytes`` each (a single message
    bigger than that goes alone). The same answer always splits the same way. After ``ahead``
    parts stored ahead of it (``Attempts.add_part``), its own parts are numbered after those,
    and the last carries its parameters and notifications."""
    whole = _encode(answer)
    if not ahead and len(whole) <= max_bytes:
        return [whole]
    message_id = answer.get("message_id")
    tail = {
        "parameters": answer.get("parameters", []),
        "notifications": answer.get("notifications", []),
    }
    groups = message_groups(answer.get("messages", []), max_bytes, _envelope(message_id, tail))
    parts = ahead + len(groups)
    return [
        _encode(
            {
                "message_id": message_id,
                "part": number,
                "parts": parts,
                "messages": group,
                **(tail if number == parts else {"parameters": [], "notifications": []}),
            }
        )
        for number, group in enumerate(groups, start=ahead + 1)
    ]


def message_groups(messages: list[Any], max_bytes: int, envelope: int) -> list[list[Any]]:
    """Messages in order, grouped so that each group in a body of ``envelope`` bytes stays
    within ``max_bytes`` (a message bigger than that alone); always at least one group."""
    groups: list[list[Any]] = [[]]
    size = envelope
    for message in messages:
        grows = len(_encode(message)) + (1 if groups[-1] else 0)
        if groups[-1] and size + grows > max_bytes:
            groups.append([])
            size, grows = envelope, grows - 1
        groups[-1].append(message)
        size += grows
    return groups


def _envelope(message_id: Any, tail: dict[str, Any] | None = None) -> int:
    """The size of a part's body with no messages."""
    empty = {"parameters": [], "notifications": []}
    return len(
        _encode(
            {
                "message_id": message_id,
                "part": 99999,
                "parts": 99999,
                "messages": [],
                **(tail or empty),
            }
        )
    )


def parts_ahead(message_id: str, messages: list[Any], max_bytes: int) -> list[str]:
    """Messages of an answer stored ahead of its end, as the JSON arrays of the push parts they
    will go out in (``Attempts.add_part``)."""
    if not messages:
        return []
    groups = message_groups(messages, max_bytes, _envelope(message_id))
    return [_encode(group).decode() for group in groups]


def part_ahead_body(message_id: str, number: int, parts: int, messages: str) -> bytes:
    """The push body of a part stored ahead, around its stored JSON array, without parsing it."""
    head = _encode({"message_id": message_id, "part": number, "parts": parts})[:-1]
    return head + b',"messages":' + messages.encode() + b',"parameters":[],"notifications":[]}'


@lru_cache(maxsize=1)
def _session() -> requests.Session:
    return pooled_session()


class PushOutcome(StrEnum):
    """What one push task did (``Pushed``)."""

    DELIVERED = "delivered"
    RETRYING = "retrying"
    DEAD = "dead"
    STALE = "stale"


@dataclass(frozen=True)
class Pushed:
    """What one push task did: ``delivered``; ``retrying`` (next push at ``next_at``); ``dead``;
    or ``stale``: its claim was not (or no longer) the current one, so it pushed nothing or its
    outcome was refused."""

    outcome: PushOutcome
    error: str = ""
    next_at: float | None = None


# The hub's answers that mean "busy: come back later", whose Retry-After (seconds or an HTTP
# date) the next push waits for, up to the back-off's cap; on any other failure it means
# nothing and the back-off alone applies.
BUSY_STATUSES = frozenset({429, 502, 503, 504})
GONE_STATUS = 410  # the hub will never take this answer: the delivery is dead at once
GONE = "the hub said gone"


@dataclass(frozen=True)
class _Failure:
    error: str
    retry_after: float | None = None
    timed_out: bool = False
    gone: bool = False  # no retry: dead now


def deliver(outbox: Outbox, integration: str, message_id: str, claim: str, s: Settings) -> Pushed:
    """Push one answer (the parts not yet delivered, in order) under ``claim``, and record what
    happened."""
    longest = _timeout(s, MAX_TIMEOUT_GROWTH)  # if this pusher dies, a new claim comes after it
    name = f"push of {integration}/{message_id}"
    taken = patiently(
        lambda: outbox.take(integration, message_id, claim, longest), PATIENCE_SECONDS, name
    )
    if taken is None or not s.hub_push_url:
        return Pushed(PushOutcome.STALE)
    logs.bind(service=taken.service, attempt=taken.attempts + 1)  # this push's number
    bodies = push_bodies(
        taken.answer or {"message_id": message_id}, s.hub_push_max_bytes, taken.parts_ahead
    )
    parts = taken.parts_ahead + len(bodies)
    timeout = _timeout(s, taken.timeouts)
    for number in range(taken.part, parts + 1):
        try:
            if number <= taken.parts_ahead:
                stored = patiently(
                    lambda n=number: outbox.part_ahead(integration, message_id, n),
                    PATIENCE_SECONDS,
                    name,
                )
                body = part_ahead_body(message_id, number, parts, stored)
            else:
                body = bodies[number - taken.parts_ahead - 1]
            failure = _push(body, taken, (number, parts), s, timeout)
        except redis.RedisError:
            raise  # nothing can be recorded: the claim comes back when Redis does
        except Exception as exc:
            # Whatever went wrong (a header the HTTP client cannot encode, a part gone), it is
            # a failed push: counted, on the back-off, dead after the budget; never a push left
            # pending with no attempt and no error, taken again and again.
            log.exception("push of %s/%s raised", integration, message_id)
            failure = _Failure(_unexpected(exc))
        if failure is not None:
            return _failed(outbox, integration, message_id, claim, taken, failure, timeout, s)
        if number < parts and not patiently(
            lambda n=number: outbox.part_delivered(integration, message_id, claim, n, longest),
            PATIENCE_SECONDS,
            name,
        ):
            return Pushed(PushOutcome.STALE)
    if not patiently(
        lambda: outbox.delivered(integration, message_id, claim), PATIENCE_SECONDS, name
    ):
        log.warning("push of %s/%s landed after its claim was superseded", integration, message_id)
    replication.replicated(outbox.redis, name)  # else a failover may push it again (same id)
    return Pushed(PushOutcome.DELIVERED)


def _timeout(s: Settings, timeouts_in_a_row: int) -> float:
    return s.hub_push_timeout_seconds * min(2**timeouts_in_a_row, MAX_TIMEOUT_GROWTH)


def _failed(
    outbox: Outbox,
    integration: str,
    message_id: str,
    claim: str,
    taken: TakenPush,
    failure: _Failure,
    timeout: float,
    s: Settings,
) -> Pushed:
    attempt = taken.attempts + 1
    now = time.time()
    # A push that timed out may have reached the hub: wait at least as long as it waited.
    at_least = timeout if failure.timed_out else failure.retry_after
    policy = s.push_retries
    next_at = None if failure.gone else policy.next_attempt_at(attempt, taken.since, now, at_least)
    recorded = patiently(
        lambda: outbox.failed(
            integration, message_id, claim, failure.error, next_at, timed_out=failure.timed_out
        ),
        PATIENCE_SECONDS,
        f"push of {integration}/{message_id}",
    )
    outcome = PushOutcome(recorded)
    if outcome == PushOutcome.DEAD:
        log.error(
            "push of %s/%s dead after %d attempts: %s",
            integration,
            message_id,
            attempt,
            failure.error,
        )
    elif outcome == PushOutcome.RETRYING:
        log.warning(
            "push of %s/%s failed (%s); next in %.1fs",
            integration,
            message_id,
            failure.error,
            (next_at or now) - now,
        )
    else:
        log.warning(
            "push of %s/%s: outcome refused, its claim was superseded", integration, message_id
        )
    return Pushed(outcome, failure.error, next_at)


def _push(
    body: bytes, taken: TakenPush, part: tuple[int, int], s: Settings, timeout: float
) -> _Failure | None:
    """POST one body; None on a 2xx, else what went wrong (never the token)."""
    assert s.hub_push_url
    webhook_id = delivery_id(taken, part[0])
    headers = {
        **signed_headers(body, s, store=taken.store or None, webhook_id=webhook_id),
        "X-Hub-Delivery-Id": webhook_id,
        "X-Hub-Delivery-Part": f"{part[0]}/{part[1]}",
    }
    try:
        response = _session().post(
            s.hub_push_url,
            data=body,
            headers=headers,
            timeout=(2.0, timeout),
            allow_redirects=False,
        )
    except requests.ReadTimeout:
        return _Failure(f"the hub did not answer within {timeout:g} s", timed_out=True)
    except requests.RequestException as exc:
        return _Failure(f"{exc.__class__.__name__}: could not reach the hub")
    status = response.status_code
    if 200 <= status < 300:
        return None
    said = f"hub answered HTTP {status}: {excerpt(response.text)}"
    if status == GONE_STATUS:
        return _Failure(f"{GONE} ({said})", gone=True)
    if status in BUSY_STATUSES:
        return _Failure(said, retry_after_seconds(response.headers.get("Retry-After")))
    return _Failure(said)


def _unexpected(exc: Exception) -> str:
    """A failure no push should meet, as the record says it: its kind and words, any secret of
    this process blanked out."""
    said = logs.Redactor(logs.known_secrets()).redact(excerpt(str(exc)))
    return f"{exc.__class__.__name__} while pushing: {said}" if said else exc.__class__.__name__


def push_soon(outbox: Outbox, integration: str, message_id: str, send_push: SendPush) -> None:
    """Claim a due delivery and send its push task now, rather than at the next scheduler tick.
    Failing here is harmless: the scheduler claims due deliveries by itself."""
    try:
        claimed = outbox.claim_one(integration, message_id)
    except Exception as exc:
        log.warning("could not claim the push of %s/%s now (%r)", integration, message_id, exc)
        return
    if claimed is None:
        return
    try:
        send_push(claimed)
    except Exception as exc:
        log.warning("could not send the push of %s/%s (%r)", integration, message_id, exc)
        with contextlib.suppress(Exception):  # else its claim comes back by itself, later
            patiently(
                lambda: outbox.make_due(integration, message_id, time.time()),
                PATIENCE_SECONDS,
                f"push of {integration}/{message_id}",
            )
