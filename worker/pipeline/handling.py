"""Handle one recorded message: run its handler under a lease and a deadline, classify what went
wrong, store the answer.

Outcomes (``Handled.outcome``):

* ``succeeded``, or ``failed`` (a ``HardError``, or error notifications in the answer): the answer
  is stored and pushed, one error notification per reason;
* ``retrying``: a ``TransientError``, the deadline, or anything unexpected (a Redis error
  included): the next attempt is scheduled in Redis on the handler retry policy; ``dead`` once
  its time budget (or attempt limit) is spent: listed, replayable, one error notification pushed;
* ``waiting``: a poll of the same store is running, its integration runs as many messages as
  its ``<NAME>_MAX_CONCURRENCY`` allows, or its handler must wait for a provider's pace
  (``WaitUntil``): the message is published again when it may go, holding no thread meanwhile,
  and that attempt does not count as a failed one;
* ``busy``, ``finished``, ``missing``, ``early``, ``stale``: nothing for this copy to do (another
  worker holds it, it is done, gone, a stray copy of a retry not due yet, or this attempt lost
  its lease and its writes were refused).

Every write after ``begin`` is fenced by the lease (``worker.store.attempts``); the lease and a
poll's per-store lock are renewed while the attempt runs, until its deadline
(``worker.store.leases``).

What an attempt observes (its handler's time, its provider calls; ``worker.basics.metrics``) is
written with its outcome: in the transaction that stores the answer, or with a retry's reason in one
pipelined write after the retry is scheduled.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeVar

import redis
from pydantic import ValidationError

from worker.basics import logs, metrics
from worker.basics.deadline import Deadline, DeadlineExceeded
from worker.basics.errors import HardError, ProviderError, TransientError, WaitUntil
from worker.basics.metrics import MessageOutcome, RetryReason
from worker.basics.patience import patiently
from worker.basics.sealing import sealer
from worker.basics.settings import Settings
from worker.hub.messages import Answer, HubMessage, Level, fold_parameters, qualify
from worker.integrations.http import NoAnswer, Unreachable
from worker.integrations.job import Job
from worker.integrations.registry import Handler, Integration
from worker.pipeline import delivery
from worker.store import leases, replication
from worker.store.attempts import Begun
from worker.store.bundle import Store
from worker.store.outbox import Outbox
from worker.store.pacing import Share, TooLong
from worker.store.schema import (
    WATCH,
    Keep,
    Start,
    Write,
    lease_key,
    member,
    service_lock_key,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class Outcome(StrEnum):
    """What one attempt came to (each is described at the top of this module)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    RETRYING = "retrying"
    WAITING = "waiting"
    BUSY = "busy"
    FINISHED = "finished"
    MISSING = "missing"
    EARLY = "early"
    STALE = "stale"


# The outcomes that finish a message: its answer is stored (the record's final status).
FinalOutcome = Literal[Outcome.SUCCEEDED, Outcome.FAILED, Outcome.DEAD]


@dataclass(frozen=True)
class Handled:
    outcome: Outcome
    detail: str = ""
    next_at: float | None = None  # for retrying and waiting: when it is published again


def parameters_for(
    integration: Integration, store: str, carried: list[Any], db: Store
) -> dict[str, Any]:
    """Environment configuration, then the stored cursor, then what the message carries."""
    return {
        **integration.config(),
        **db.memory.cursor(integration.name, store),
        **fold_parameters(carried, integration.name),
    }


def handle(
    integration: Integration,
    handler: Handler,
    message_id: str,
    db: Store,
    outbox: Outbox,
    s: Settings,
    *,
    send_push: delivery.SendPush,
) -> Handled:
    """Run one attempt at one message; its answer's push is sent with ``send_push``. An
    integration with a concurrency limit runs it only in a free slot: else it is deferred."""
    if integration.max_concurrency is None:
        return _handle(integration, handler, message_id, db, outbox, s, send_push)
    share = Share(
        db.redis,
        integration.name,
        integration.max_concurrency,
        ttl_seconds=s.task_time_limit_seconds + db.timing.lease_seconds,
    )
    token = uuid.uuid4().hex
    back_in = share.take(token, message_id)
    if back_in is not None:
        at = time.time() + back_in
        db.attempts.defer(integration.name, message_id, at)
        why = f"{integration.max_concurrency_variable}: its messages running now fill the limit"
        return Handled(Outcome.WAITING, why, at)
    try:
        return _handle(integration, handler, message_id, db, outbox, s, send_push)
    finally:
        share.release(token)


def _handle(
    integration: Integration,
    handler: Handler,
    message_id: str,
    db: Store,
    outbox: Outbox,
    s: Settings,
    send_push: delivery.SendPush,
) -> Handled:
    attempt = _Attempt(integration, handler, message_id, db, outbox, s, send_push)
    if not integration.services[handler.service].exclusive:
        return attempt.run()
    peek = db.messages.get(integration.name, message_id)
    if peek is None or peek.finished:
        return attempt.run()  # nothing to do; begin() says why
    lock, token = service_lock_key(integration.name, handler.service, peek.store), uuid.uuid4().hex
    if not db.locks.try_lock(lock, token):
        at = time.time() + min(db.locks.lock_left(lock), 5.0) + 0.5
        db.attempts.defer(integration.name, message_id, at)
        return Handled(Outcome.WAITING, "another poll of this store is running", at)
    try:
        with attempt.keeper.hold(
            lock, token, until=attempt.deadline.ends + leases.WRITE_GRACE_SECONDS
        ):
            return attempt.run()
    finally:
        db.locks.release(lock, token)


class PartRefused(Exception):
    """A part of the answer could not be stored: the lease is lost or the message finished
    (another holder runs it); the attempt stops there."""


class _Attempt:
    def __init__(
        self,
        integration: Integration,
        handler: Handler,
        message_id: str,
        db: Store,
        outbox: Outbox,
        s: Settings,
        send_push: delivery.SendPush,
    ) -> None:
        self.integration, self.handler, self.message_id = integration, handler, message_id
        self.db, self.outbox, self.s = db, outbox, s
        self.send_push = send_push
        self.sealer = sealer(s.shiphub_secret_key)
        self.deadline = Deadline(s.task_time_limit_seconds)
        self.keeper = leases.keeper(db.redis, db.timing.lease_seconds)
        self.lease = uuid.uuid4().hex
        self.name = f"{integration.name}/{message_id}"
        self.watched: list[Keep] = []
        self.observed = metrics.Tally()

    def run(self) -> Handled:
        begun = self.db.attempts.begin(self.integration.name, self.message_id, self.lease)
        if begun.outcome != Start.STARTED:
            log.info("%s: %s, nothing to do", self.name, begun.outcome)
            return Handled(Outcome(begun.outcome))
        logs.bind(attempt=begun.attempt)
        with (
            self.keeper.hold(
                lease_key(self.integration.name, self.message_id),
                self.lease,
                until=self.deadline.ends + leases.WRITE_GRACE_SECONDS,
                watch=(WATCH, member(self.integration.name, self.message_id)),
                deadline=self.deadline,
            ) as held,
            self.deadline.running(),
        ):
            try:
                answer, kept = self._timed_handler(begun)
            except WaitUntil as exc:
                held.ending = True  # the outcome's write releases the lease: not a loss
                return self._wait(exc)
            except HardError as exc:
                held.ending = True
                return self._finish(Outcome.FAILED, _error_answer(self.message_id, exc), str(exc))
            except Exception as exc:  # transient, the deadline, Redis, or a bug
                held.ending = True
                return self._retry_or_die(begun, exc)
            held.ending = True
            status = Outcome.FAILED if answer.failed else Outcome.SUCCEEDED
            return self._finish(status, answer, None, kept)

    def _timed_handler(self, begun: Begun) -> tuple[Answer, list[Keep]]:
        """Run the handler, its time and its provider calls gathered in ``observed``."""
        started = time.monotonic()
        try:
            with metrics.attempt(self.integration.name, self.observed):
                return self._run_handler(begun)
        finally:
            self.observed.observe(
                metrics.HANDLER_SECONDS,
                (self.integration.name, self.handler.service),
                time.monotonic() - started,
            )

    def _run_handler(self, begun: Begun) -> tuple[Answer, list[Keep]]:
        # Validated on receipt (under the rules of its day); only its payload is checked again.
        message = HubMessage.model_construct(**json.loads(begun.body))
        carried = json.loads(self.sealer.open(begun.parameters)) if begun.parameters else []
        try:
            payload = self.handler.payload.model_validate(message.payload)
        except ValidationError as exc:  # validated on receipt; only a schema change gets here
            raise HardError("Invalid payload", [str(exc)]) from exc
        job = Job(
            integration=self.integration.name,
            message_id=self.message_id,
            message=message.message,
            payload=payload,
            parameters=parameters_for(self.integration, begun.store, carried, self.db),
            store=begun.store,
            attempt=begun.attempt,
            db=self.db,
            run=begun.replays,
            part_store=self._store_part,
            lease_token=self.lease,
        )
        self.watched = job.watched
        return self.handler.handle(job), job.kept

    def _store_part(self, messages: list[Any], kept: list[Keep]) -> None:
        """``Job.send_ahead``: the messages as push-sized parts, stored under this lease."""
        parts = delivery.parts_ahead(self.message_id, messages, self.s.hub_push_max_bytes)
        written = self._patiently(
            lambda: self.db.attempts.add_part(
                self.integration.name, self.message_id, parts, lease_token=self.lease, keep=kept
            )
        )
        if written != Write.WRITTEN:
            raise PartRefused(f"{self.name}: a part of its answer was refused ({written})")

    def _wait(self, wait: WaitUntil) -> Handled:
        """The handler may not go on before ``wait.at``: the attempt ends, not counted as a
        failed one, and the message comes back then."""
        written = self._patiently(
            lambda: self.db.attempts.wait_until(
                self.integration.name, self.message_id, wait.at, self.lease
            )
        )
        self._write_observed()
        if not written:
            log.warning("%s: lost its lease; its wait was refused (%s)", self.name, wait.why)
            return Handled(Outcome.STALE, wait.why)
        log.info("%s: waits %.1f s for %s", self.name, wait.at - time.time(), wait.why)
        return Handled(Outcome.WAITING, wait.why, wait.at)

    def _retry_or_die(self, begun: Begun, exc: Exception) -> Handled:
        error = _describe(exc)
        if isinstance(exc, redis.RedisError):
            log.warning("%s: Redis failed under the handler (%s); retrying it", self.name, error)
        elif not isinstance(exc, ProviderError | PartRefused):
            log.exception("%s: unexpected error", self.name)
        now = time.time()
        policy = self.s.handler_retries
        next_at = policy.next_attempt_at(
            begun.attempt,
            begun.retry_since,
            now,
            getattr(exc, "retry_after", None),
            getattr(exc, "not_before", None),
        )
        if next_at is None:
            spent = now - begun.retry_since
            log.warning(
                "%s dead after %d attempts over %.0fs: %s", self.name, begun.attempt, spent, error
            )
            answer = _error_answer(self.message_id, exc, attempts=begun.attempt, spent=spent)
            return self._finish(Outcome.DEAD, answer, error)
        scheduled = self._patiently(
            lambda: self.db.attempts.mark_retrying(
                self.integration.name, self.message_id, error, next_at, self.lease
            )
        )
        if not scheduled:
            log.warning("%s: lost its lease; its retry was refused (%s)", self.name, error)
            self._write_observed()
            return Handled(Outcome.STALE, error)
        self._write_observed(retry_reason(exc))
        return Handled(Outcome.RETRYING, error, next_at)

    def _finish(
        self,
        status: FinalOutcome,
        answer: Answer,
        error: str | None,
        kept: list[Keep] | None = None,
    ) -> Handled:
        integration = self.integration.name
        if error is None and status != Outcome.SUCCEEDED:  # failed by its answer's notifications
            error = _summary(answer)
        cursor = {p.name.removeprefix(f"{integration}."): p.value for p in answer.parameters}
        hub_answer = answer.model_copy(
            update={
                "parameters": [
                    p.model_copy(update={"name": qualify(integration, p.name)})
                    for p in answer.parameters
                ]
            }
        )
        written = self._patiently(
            lambda: self.db.attempts.finish(
                integration,
                self.message_id,
                status,
                hub_answer.model_dump(mode="json"),
                error=error,
                cursor=cursor if status == Outcome.SUCCEEDED else {},
                keep=kept if status == Outcome.SUCCEEDED and kept else [],
                expect=self.watched if status == Outcome.SUCCEEDED else [],
                push=bool(self.s.hub_push_url),
                lease_token=self.lease,
                observed=self.observed,
            )
        )
        if written == Write.STALE:
            log.warning("%s: lost its lease; its %s answer was refused", self.name, status)
            self._write_observed()
            return Handled(Outcome.STALE, error or "")
        if written == Write.CONFLICT:
            return self._run_again()
        if written != Write.WRITTEN:
            self._write_observed()
            return Handled(Outcome(written))
        # Pushed now once replicas have the answer; else by the scheduler, once they have it.
        if self.s.hub_push_url and replication.replicated(self.db.redis, self.name):
            delivery.push_soon(self.outbox, integration, self.message_id, self.send_push)
        return Handled(status, _summary(answer) if error is None else error)

    def _run_again(self) -> Handled:
        """What the handler decided on changed under it: run it again now (a retry that is
        due at once), on what is there now."""
        why = "what it read changed before its answer was stored (another message came first)"
        log.info("%s: %s; running it again", self.name, why)
        at = time.time()
        if not self._patiently(
            lambda: self.db.attempts.mark_retrying(
                self.integration.name, self.message_id, why, at, self.lease
            )
        ):
            self._write_observed()
            return Handled(Outcome.STALE, why)
        self._write_observed(RetryReason.CONFLICT)
        return Handled(Outcome.RETRYING, why, at)

    def _write_observed(self, retry: RetryReason | None = None) -> None:
        """Write what this attempt observed when no transaction of ours took it (a retry, with
        its reason; a refused write): one pipelined round trip. Numbers only: a Redis error
        here is logged, never the attempt's."""
        integration = self.integration.name
        try:
            with self.db.redis.pipeline() as pipe:
                if retry is not None:
                    service = self.handler.service
                    metrics.increment(
                        pipe, metrics.MESSAGES, integration, service, MessageOutcome.RETRYING
                    )
                    metrics.increment(pipe, metrics.RETRIES, integration, retry)
                self.observed.write(pipe)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("%s: its metrics were not written (%r)", self.name, exc)

    def _patiently(self, write: Callable[[], T]) -> T:
        """A write after a Redis error under the handler: Redis may be restarting, so try again
        for as long as the lease would last rather than leave the message to the watchdog."""
        return patiently(write, self.db.timing.lease_seconds, self.name)


def retry_reason(exc: BaseException) -> RetryReason:
    """Why a retry was scheduled, in a small closed set an operator can alert on."""
    if isinstance(exc, DeadlineExceeded):
        return RetryReason.DEADLINE
    if isinstance(exc, redis.RedisError):
        return RetryReason.REDIS
    if not isinstance(exc, TransientError):
        return RetryReason.UNEXPECTED
    if isinstance(exc, TooLong) or exc.status == 429:
        return RetryReason.RATE_LIMITED
    if exc.status is not None and exc.status >= 500:
        return RetryReason.PROVIDER_5XX
    if isinstance(exc, NoAnswer):
        return RetryReason.TIMEOUT
    if isinstance(exc, Unreachable):
        return RetryReason.CONNECTION
    return RetryReason.PROVIDER_TRANSIENT


def _error_answer(
    message_id: str, exc: BaseException, attempts: int | None = None, spent: float = 0.0
) -> Answer:
    answer = Answer(message_id=message_id)
    if isinstance(exc, HardError):
        for reason in exc.reasons:
            answer.notify(Level.ERROR, exc.subject, reason)
        return answer
    subject = f"Gave up after {attempts} attempts over {spent:.0f} s" if attempts else "Failed"
    answer.notify(Level.ERROR, subject, _describe(exc))
    return answer


def _summary(answer: Answer) -> str:
    errors = [n.description for n in answer.notifications if n.level == Level.ERROR]
    return "; ".join(errors)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProviderError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"
