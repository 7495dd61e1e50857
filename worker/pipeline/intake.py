"""Record and enqueue in one step: the step between a validated message and a worker.

Used by the HTTP receiver and by scheduled polls alike. The message's broker message is built
first, in Python, exactly as Celery and kombu's Redis transport would have put it in Redis
(``worker.tasks.enqueue``); then one Lua script (``Messages.receive``) creates the record and pushes
that broker message onto the integration's queue, or finds the record already there. So:

* a message is never recorded without being queued, nor queued without being recorded: there is
  no window between the two for a crash or a broker outage to fall into, hence no "recorded but
  not yet published" state to repair;
* a new message costs one round trip to Redis, and so does a duplicate (the script returns the
  record it found, and counts the duplicate); in the receiver, messages arriving at the same
  time share one (``Together``);
* if Redis cannot be reached, nothing happened: the caller answers 503 and the hub sends the
  message again (``Unavailable``). There is no "accepted but not queued" answer any more.

The records and the broker must be the same Redis (they are: both ``REDIS_URL``). Retries,
replays and the watchdog's republishing still go through Celery (``worker.tasks.app.publish``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from worker.basics.json_text import canonical, compact
from worker.basics.sealing import Sealer
from worker.hub.messages import HubMessage
from worker.integrations.registry import Handler, Route
from worker.store import replication
from worker.store.bundle import Store
from worker.store.messages import Arrival, QueuedTask, Received
from worker.store.record import Record
from worker.store.schema import Arrived, searched_number

# Publish a recorded message's task through Celery, stamped with when it was queued
# (``worker.tasks.app.publish``): for replays, due retries and the watchdog, not for the intake. Its
# route may be a handler of this process, or the way to the workers that run its integration.
Publish = Callable[[Handler | Route, str, float], None]
# The broker message of a message's task, stamped with when it was queued
# (``worker.tasks.enqueue.Envelopes.build``).
Enqueue = Callable[[Handler, str, float], QueuedTask]


class Unavailable(Exception):
    """Redis cannot be reached: nothing was recorded or queued; the caller should answer 503
    and be retried."""


class Intake(StrEnum):
    """What became of a message offered: ``queued``: recorded and queued, in one step;
    ``duplicate``/``conflict``: already recorded (with this body, or another); ``refused``: not
    taken (the receiver's word: its reply says why), nothing recorded."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REFUSED = "refused"


@dataclass(frozen=True)
class Submission:
    """What ``submit`` did (never ``refused``); ``record`` is the record already there."""

    outcome: Intake
    record: Record | None


# Fingerprints are versioned: a record written before they were taken by value, without the
# parameters, holds a bare digest (``earlier_fingerprint``), still matched until it expires.
FINGERPRINT_VERSION = "2:"


def fingerprint(message: HubMessage) -> str:
    """Identity of a message: what it asks for (its type and payload), not the parameters it
    carries, and its numbers by value. A resend with rotated credentials or a newer cursor, or
    with a price written 29 where the first said 29.0, is the same message; the same id asking
    for something else is a conflict."""
    payload = {k: v for k, v in message.payload.items() if k != "parameters"}
    text = canonical({"message": message.message, "payload": by_value(payload)})
    return FINGERPRINT_VERSION + hashlib.sha256(text).hexdigest()


def earlier_fingerprint(message: HubMessage) -> str:
    """The fingerprint records were written with before ``FINGERPRINT_VERSION`` (JSON text of
    the payload, its parameters included): a resend of a message recorded then is matched by
    it, until ``RECORD_TTL_SECONDS`` after the upgrade has let every such record expire."""
    return hashlib.sha256(
        canonical({"message": message.message, "payload": message.payload})
    ).hexdigest()


# Values ``by_value`` leaves as they are: most of a payload, so it makes no call for them.
_AS_THEY_ARE = frozenset({str, int, bool, type(None)})


def by_value(value: Any) -> Any:
    """``value`` with every whole number written as an integer (29.0 as 29), so that two
    spellings of one number give one text."""
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _AS_THEY_ARE else by_value(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _AS_THEY_ARE else by_value(v) for v in value]
    if kind is float:
        return int(value) if value.is_integer() else value
    return value


def submit(
    db: Store,
    enqueue: Enqueue,
    handler: Handler,
    message: HubMessage,
    store: str,
    sealer: Sealer,
    together: Together | None = None,
) -> Submission:
    """Record and queue ``message`` in one round trip (on enough replicas before anyone is
    told), shared with the messages arriving at the same time through ``together``, or alone
    without it; or find it already recorded."""
    arrival = _arrival(enqueue, handler, message, store, sealer)
    try:
        received = (together or Together(db)).receive(arrival)
    except redis.RedisError as exc:
        raise Unavailable(f"Redis is unavailable: {exc.__class__.__name__}") from exc
    if received.outcome == Arrived.CREATED:
        return Submission(Intake.QUEUED, None)
    if received.outcome == Arrived.CONFLICT:
        return Submission(Intake.CONFLICT, received.record)
    return Submission(Intake.DUPLICATE, received.record)


def _arrival(
    enqueue: Enqueue, handler: Handler, message: HubMessage, store: str, sealer: Sealer
) -> Arrival:
    """The record's fields and the broker message of ``message``, stamped now."""
    body, parameters = message.without_parameters()
    fields = {
        "integration": handler.integration,
        "message_id": message.message_id,
        "message": message.message,
        "service": handler.service,
        "store": store,
        "body": compact(body),
    }
    if parameters:  # credentials: stored sealed while the record lives (worker.basics.sealing)
        fields["parameters"] = sealed_parameters(sealer, parameters)
    now = time.time()
    envelope = enqueue(handler, message.message_id, now)
    return Arrival(
        handler.integration,
        message.message_id,
        fingerprint(message),
        fields,
        envelope,
        now,
        also=earlier_fingerprint(message),
        number=searched_number(message.payload),
    )


def sealed_parameters(sealer: Sealer, parameters: list[Any]) -> str:
    """The parameters a message carries, as its record keeps them: JSON text, sealed (once per
    message: every hub message carries its account's parameters)."""
    return sealer.seal(compact(parameters))


class Together:
    """Messages that arrive at the same time share one round trip to Redis (group commit).

    The first message to arrive while no round trip is under way sends at once, alone: a
    lone message waits for nothing. Those that arrive while a round trip is under way queue
    up, and when it is back, the first of them sends all that queued (up to ``most``) in the
    next one: one run of the accept script, each message recorded and queued in one step as
    if it had come alone (``Messages.receive_all``). So the busier the receiver,
    the more messages each round trip carries, and no message waits longer than the round
    trip before its own.

    With ``REDIS_MIN_REPLICAS_ACKED``, one ``WAIT`` after the round trip covers every message
    in it (``replication.confirm``: the replication stream is in order).

    A round trip that fails, or whose messages do not reach enough replicas in time, fails
    every message in it (each caller answers 503, and the hub sends again): none was told it
    was taken. One process, many greenlets or threads; under gunicorn's gevent worker the
    locks and events here are gevent's (monkey-patched).
    """

    def __init__(self, db: Store, most: int = 64) -> None:
        self._db = db
        self._most = most
        self._lock = threading.Lock()
        self._queued: list[_Waiting] = []
        self._under_way = False

    def receive(self, arrival: Arrival) -> Received:
        waiting = _Waiting(arrival)
        with self._lock:
            self._queued.append(waiting)
            send_now = not self._under_way
            self._under_way = True
        if not send_now:
            waiting.ready.wait()
        if waiting.result is None:  # not sent yet: this one sends the next round trip
            self._send()
        return waiting.outcome()

    def _send(self) -> None:
        with self._lock:
            batch, self._queued = self._queued[: self._most], self._queued[self._most :]
        try:
            received = self._db.messages.receive_all([w.arrival for w in batch])
            replication.confirm(self._db.redis)  # once for all: one mark covers them all
        except BaseException as exc:
            for w in batch:
                w.finish(_for_each(exc))
            raise
        else:
            for w, r in zip(batch, received, strict=True):
                w.finish(r)
        finally:
            with self._lock:
                following = self._queued[0] if self._queued else None
                self._under_way = following is not None
            if following is not None:
                following.ready.set()  # it sends the next round trip, with all queued by then


def _for_each(exc: BaseException) -> Exception:
    """What a message in a failed round trip raises: a Redis error of its own (so each caller
    answers 503, as if its message had failed alone), or the unexpected error itself."""
    if isinstance(exc, redis.RedisError):
        return type(exc)(*exc.args)
    if isinstance(exc, Exception):
        return exc
    return redis.ConnectionError("the round trip carrying this message was cut off")


class _Waiting:
    """One message in ``Together``: set ``ready`` when its round trip is back, or when it is
    its turn to send one (``result`` still None)."""

    def __init__(self, arrival: Arrival) -> None:
        self.arrival = arrival
        self.ready = threading.Event()
        self.result: Received | Exception | None = None

    def finish(self, result: Received | Exception) -> None:
        self.result = result
        self.ready.set()

    def outcome(self) -> Received:
        if isinstance(self.result, Exception):
            raise self.result
        assert self.result is not None
        return self.result
