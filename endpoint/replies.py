"""Every JSON reply the receiver gives, in the hub's shape."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify
from pydantic import ValidationError

from worker.hub.messages import Level
from worker.store.record import Record
from worker.store.schema import MessageStatus

RETRY_AFTER_SECONDS = 5


def _notification(level: Level, subject: str, description: str) -> dict[str, str]:
    return {"level": level, "subject": subject, "description": description}


def _reply(status: int, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def error(
    status: int, subject: str, description: str, *, message_id: str | None = None
) -> Response:
    body: dict[str, Any] = {}
    if message_id is not None:
        body["message_id"] = message_id
    body["notifications"] = [_notification(Level.ERROR, subject, description)]
    return _reply(status, body)


def unavailable(description: str, *, message_id: str | None = None) -> Response:
    response = error(
        503, "Service unavailable", f"{description}; retry later", message_id=message_id
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def invalid_payload(message_id: str, exc: ValidationError) -> Response:
    """One error notification per failing field: its path in the message, and why."""
    notifications = []
    for problem in exc.errors(include_url=False):
        path = ".".join(["payload", *map(str, problem["loc"])])
        notifications.append(
            _notification(Level.ERROR, f"Invalid {path}", f"{path}: {problem['msg']}")
        )
    return _reply(422, {"message_id": message_id, "notifications": notifications})


# The reply to a new message but for its message_id, as Flask's jsonify writes it (compact,
# ASCII): what every accepted message gets, written once.
_QUEUED_AFTER_ID = json.dumps(
    {
        "status": "queued",
        "notifications": [
            _notification(Level.INFO, "Message queued", "The message was recorded and queued")
        ],
    },
    separators=(",", ":"),
)[1:]


def queued(message_id: str, record: Record | None, *, duplicate: bool) -> Response:
    if not duplicate or record is None:
        text = f'{{"message_id":{json.dumps(message_id)},{_QUEUED_AFTER_ID}\n'
        return Response(text, 200, mimetype="application/json")
    view = record.view()
    return _reply(
        200,
        {
            "message_id": message_id,
            "status": record.status,
            "notifications": [
                _notification(
                    Level.INFO,
                    "Duplicate message",
                    f"This message_id was already received; it is {record.status} and was not "
                    "queued again",
                )
            ],
            "record": view,
        },
    )


def accepted(message_id: str, what: str) -> Response:
    """A replay reset the record, but the broker did not take its publish: the watchdog
    publishes it shortly. (A new message is never answered this way: it is recorded and queued
    in one step, or neither, and then the answer is 503.)"""
    return _reply(
        200,
        {
            "message_id": message_id,
            "status": "accepted",
            "notifications": [
                _notification(
                    Level.INFO,
                    "Message accepted",
                    f"The message was recorded; the queue did not take it yet, so it will be "
                    f"{what} within about a minute. Sending it again is safe.",
                )
            ],
        },
    )


def finished(record: Record, ahead: list[Any]) -> Response:
    """The classic answer: 200 on success; 500 when the provider refused or retries ran out.
    ``ahead``: the messages of parts stored ahead of the answer's end, first."""
    answer = record.answer or {"message_id": record.message_id}
    body = {
        "message_id": record.message_id,
        "messages": [*ahead, *answer.get("messages", [])],
        "parameters": answer.get("parameters", []),
        "notifications": answer.get("notifications", []),
    }
    return _reply(200 if record.status == MessageStatus.SUCCEEDED else 500, body)


def still_running(record: Record, *, pushed: bool, busy: bool = False) -> Response:
    """202: the wait ran out (or, ``busy``, too many requests were waiting to wait at all)."""
    later = (
        "the answer will be pushed to the hub"
        if pushed
        else f"see GET /messages/{record.integration}/{record.message_id}"
    )
    why = "Too many requests are waiting; not waiting" if busy else "The wait ran out"
    return _reply(
        202,
        {
            "message_id": record.message_id,
            "status": record.status,
            "notifications": [_notification(Level.INFO, "Still processing", f"{why}; {later}")],
            "record": record.view(),
        },
    )
