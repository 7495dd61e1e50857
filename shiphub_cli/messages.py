"""Hub messages as the command line makes them: read from a file (or stdin), or built for a poll.

Only what the command line itself needs is checked here (a JSON object with a ``message`` to
route it by); everything else is the receiver's to judge, which names each problem (406, 422).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import IO, Any

import click


def read_message(source: IO[str], name: str) -> dict[str, Any]:
    """The message in ``source``; a file that is not one is a usage error naming the problem."""
    try:
        text = source.read()
    except UnicodeDecodeError:
        raise click.BadParameter(f"{name} is not UTF-8 text", param_hint="FILE") from None
    if not text.strip():
        raise click.BadParameter(f"{name} is empty", param_hint="FILE")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"{name} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            param_hint="FILE",
        ) from None
    if not isinstance(body, dict):
        raise click.BadParameter(
            f"{name} holds a JSON {type(body).__name__}, not a hub message (an object with "
            '"message_id", "message" and "payload")',
            param_hint="FILE",
        )
    message = body.get("message")
    if not isinstance(message, str) or not message:
        raise click.BadParameter(
            f'{name} has no "message" (the message type, such as "shipment:ready")',
            param_hint="FILE",
        )
    return body


def new_message_id() -> str:
    """A fresh id in the hub's style (24 hex digits)."""
    return uuid.uuid4().hex[:24]


def poll_message(integration: str, service: str, message: str) -> dict[str, Any]:
    """A poll run now: the service's message with no parameters (the handler continues from the
    stored cursor, as a scheduled tick does) and an id of its own, ``manual-...``, that never
    meets a scheduled tick's ``scheduled-...`` id."""
    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return {
        "message_id": f"manual-{integration}-{service}-{now}-{uuid.uuid4().hex[:6]}",
        "message": message,
        "payload": {},
    }
