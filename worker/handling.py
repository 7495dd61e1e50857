"""Handle one recorded message: run its handler, classify what went wrong, store the answer.

Outcomes:

* the handler returns an answer → ``succeeded`` (or ``failed`` if it holds error notifications);
* ``HardError`` → ``failed``, one error notification per reason, no retry;
* ``TransientError`` or anything unexpected → retried with bounded, jittered exponential back-off;
  when attempts run out → ``dead``: listed, replayable, one error notification pushed.

Answer, outbox entry, cursor and status are committed in one transaction (``Records.finish``).
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError

from worker.errors import HardError, ProviderError
from worker.hub import Answer, HubMessage, fold_parameters, qualify
from worker.job import Job
from worker.records import Keep, Record, Records, service_lock_key
from worker.registry import Handler, Integration
from worker.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryLater:
    """The handler should run again after ``delay`` seconds."""

    delay: float
    error: str


def backoff(attempt: int, s: Settings, retry_after: float | None = None) -> float:
    """Exponential back-off, jittered to a random 50-100 % of each step, at least the provider's
    Retry-After, never above ``retry_max_seconds`` (below the broker's visibility timeout)."""
    exponential = min(s.retry_max_seconds, s.retry_base_seconds * 2 ** max(0, attempt - 1))
    delay = exponential * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, s.retry_max_seconds)


def parameters_for(
    integration: Integration, record: Record, message: HubMessage, records: Records
) -> dict[str, Any]:
    """Environment configuration, then the stored cursor, then what the message carries."""
    return {
        **integration.config(),
        **records.cursor(integration.name, record.store),
        **fold_parameters(message.raw_parameters(), integration.name),
    }


def handle(
    integration: Integration, handler: Handler, message_id: str, records: Records, s: Settings
) -> RetryLater | None:
    """Run the handler for one message. Returns ``RetryLater`` when the task must retry."""
    if not integration.services[handler.service].exclusive:
        return _handle(integration, handler, message_id, records, s)
    peek = records.get(integration.name, message_id)
    if peek is None or peek.finished:
        return _handle(integration, handler, message_id, records, s)  # nothing to do
    lock, token = service_lock_key(integration.name, handler.service, peek.store), uuid.uuid4().hex
    if not records.try_lock(lock, token):
        return RetryLater(min(records.lock_left(lock), 5.0) + 0.5, "waiting for another poll")
    try:
        return _handle(integration, handler, message_id, records, s)
    finally:
        records.release(lock, token)


def _handle(
    integration: Integration, handler: Handler, message_id: str, records: Records, s: Settings
) -> RetryLater | None:
    lease = uuid.uuid4().hex
    outcome, attempt = records.begin(integration.name, message_id, lease)
    if outcome == "busy":
        # Another worker holds the lease: alive (then we will find it finished), or dead (then
        # its lease runs out shortly). Come back when it would have.
        wait = records.lease_left(integration.name, message_id) + 0.5
        return RetryLater(wait, "another worker is handling it")
    if outcome != "started":
        log.info("%s %s/%s: nothing to do", outcome, integration.name, message_id)
        return None
    record = records.get(integration.name, message_id)
    assert record is not None  # begin() just saw it
    message = HubMessage.model_validate(record.body)
    try:
        answer, kept = _run(integration, handler, message, record, attempt, records)
    except HardError as exc:
        _finish(records, record, "failed", _error_answer(message_id, exc), str(exc), s, lease)
        return None
    except Exception as exc:  # transient, a time limit, or a bug: retried, then dead
        error = _describe(exc)
        if attempt >= s.task_max_attempts:
            log.warning(
                "%s/%s dead after %d attempts: %s", integration.name, message_id, attempt, error
            )
            answer = _error_answer(message_id, exc, attempts=attempt)
            _finish(records, record, "dead", answer, error, s, lease)
            return None
        if not isinstance(exc, ProviderError | SoftTimeLimitExceeded):
            log.exception("%s/%s: unexpected error", integration.name, message_id)
        delay = backoff(attempt, s, getattr(exc, "retry_after", None))
        records.mark_retrying(integration.name, message_id, error, delay, lease)
        return RetryLater(delay, error)
    status = "failed" if answer.failed else "succeeded"
    _finish(records, record, status, answer, None, s, lease, kept)
    return None


def _run(
    integration: Integration,
    handler: Handler,
    message: HubMessage,
    record: Record,
    attempt: int,
    records: Records,
) -> tuple[Answer, list[Keep]]:
    try:
        payload = handler.payload.model_validate(message.payload)
    except ValidationError as exc:  # validated on receipt; only a schema change gets here
        raise HardError("Invalid payload", [str(exc)]) from exc
    job = Job(
        integration=integration.name,
        message_id=message.message_id,
        message=message.message,
        payload=payload,
        parameters=parameters_for(integration, record, message, records),
        store=record.store,
        attempt=attempt,
        records=records,
    )
    return handler.handle(job), job.kept


def _finish(
    records: Records,
    record: Record,
    status: str,
    answer: Answer,
    error: str | None,
    s: Settings,
    lease: str,
    kept: list[Keep] | None = None,
) -> None:
    cursor = {p.name.removeprefix(f"{record.integration}."): p.value for p in answer.parameters}
    hub_answer = answer.model_copy(
        update={
            "parameters": [
                p.model_copy(update={"name": qualify(record.integration, p.name)})
                for p in answer.parameters
            ]
        }
    )
    finished = records.finish(
        record.integration,
        record.message_id,
        status,  # type: ignore[arg-type]
        hub_answer.model_dump(mode="json"),
        error=error,
        cursor=cursor if status == "succeeded" else {},
        keep=kept if status == "succeeded" and kept else [],
        push=bool(s.hub_push_url),
        lease_token=lease,
    )
    if finished and s.hub_push_url:
        from worker.delivery import kick

        kick(record.integration, record.message_id)


def _error_answer(message_id: str, exc: BaseException, attempts: int | None = None) -> Answer:
    answer = Answer(message_id=message_id)
    if isinstance(exc, HardError):
        for reason in exc.reasons:
            answer.notify("error", exc.subject, reason)
        return answer
    subject = f"Gave up after {attempts} attempts" if attempts else "Failed"
    answer.notify("error", subject, _describe(exc))
    return answer


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return "The handler ran out of time"
    if isinstance(exc, ProviderError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"
