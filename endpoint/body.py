"""Reading and parsing a hub message body, with errors that say exactly what is wrong."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from pydantic import ValidationError

from worker.hub import HubMessage

CHUNK = 64 * 1024


class TooLarge(Exception):
    pass


class BadBody(Exception):
    """The request cannot be taken as a hub message; ``status`` is 406 (or 400 for headers)."""

    def __init__(self, status: int, subject: str, detail: str, message_id: str | None = None):
        super().__init__(detail)
        self.status = status
        self.subject = subject
        self.message_id = message_id


def read_body(limit: int) -> bytes:
    """Read at most ``limit`` bytes; chunked bodies included (a server may cut them silently
    at its own limit, so we count ourselves)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge(f"The body is {declared} bytes; the limit is {limit}")
    stream = request.stream
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(CHUNK, limit + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    if size > limit:
        raise TooLarge(f"The body is over the limit of {limit} bytes")
    return b"".join(parts)


def parse_message(raw: bytes) -> HubMessage:
    if not raw.strip():
        raise BadBody(406, "Invalid message", "The body is empty; expected a JSON hub message")
    try:
        data: Any = json.loads(raw)
    except UnicodeDecodeError:
        raise BadBody(406, "Invalid JSON", "The body is not UTF-8 text") from None
    except RecursionError:
        raise BadBody(406, "Invalid JSON", "The body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadBody(
            406,
            "Invalid JSON",
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    if not isinstance(data, dict):
        raise BadBody(
            406,
            "Invalid message",
            f"The body is a JSON {type(data).__name__}; expected an object with "
            "message_id, message and payload",
        )
    message_id = data.get("message_id") if isinstance(data.get("message_id"), str) else None
    missing = [k for k in ("message_id", "message", "payload") if k not in data]
    if missing:
        raise BadBody(
            406, "Invalid message", f"Missing {', '.join(missing)}", message_id=message_id
        )
    try:
        return HubMessage.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadBody(406, "Invalid message", problems, message_id=message_id) from None
