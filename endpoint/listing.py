"""Finding what failed: messages in a state an operator looks for (failed, dead, retrying), by
integration and store, newest first, a page at a time.

One reading of the query for ``GET /messages`` and the operations page (``/ops/failed``): each
page reads the states' indexes in Redis (``Listings.in_states``), never every record, so it costs
the same after months of history. A page ends with ``next_cursor``, an opaque text naming where
the next page starts (null on the last page).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from werkzeug.datastructures import MultiDict

from worker.hub.messages import store_problem
from worker.integrations import registry
from worker.store.bundle import Store
from worker.store.listings import InState, Position
from worker.store.schema import LISTED_STATES, MessageStatus

DEFAULT_STATES: tuple[MessageStatus, ...] = (MessageStatus.FAILED, MessageStatus.DEAD)
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 2000


class BadQuery(Exception):
    """A query that names no listing: its status code, subject and what is wrong."""

    def __init__(self, status: int, subject: str, description: str) -> None:
        super().__init__(description)
        self.status, self.subject = status, subject


@dataclass(frozen=True)
class Query:
    statuses: tuple[str, ...]
    integration: str | None
    store: str | None
    limit: int
    after: Position | None


def query_of(args: MultiDict[str, str]) -> Query:
    """``parse_query`` of a request's query string (``GET /messages``, ``/ops/failed``)."""
    return parse_query(
        args.getlist("status"),
        args.get("integration"),
        args.get("store"),
        args.get("limit"),
        args.get("cursor"),
    )


def parse_query(
    status: Iterable[str],
    integration: str | None,
    store: str | None,
    limit: str | None,
    cursor: str | None,
) -> Query:
    """A listing's query from its parameters as given (``status`` may be repeated, each a comma
    separated list; an empty parameter means the default); raises ``BadQuery`` naming the one
    that is wrong."""
    return Query(
        statuses=_statuses(status),
        integration=_integration(integration or None),
        store=_store(store or None),
        limit=_limit(limit or None),
        after=decode_cursor(cursor) if cursor else None,
    )


def _statuses(given: Iterable[str]) -> tuple[str, ...]:
    values = [v for v in given if v]
    if not values:
        return DEFAULT_STATES
    found: list[str] = []
    for value in values:
        for part in value.split(","):
            if part not in LISTED_STATES:
                raise BadQuery(
                    400,
                    "Invalid status",
                    f"status {part!r} is not one of {', '.join(LISTED_STATES)} (comma separated)",
                )
            found.append(part)
    return tuple(dict.fromkeys(found))


def _integration(name: str | None) -> str | None:
    if name is not None and name not in registry.integrations():
        known = ", ".join(registry.integrations()) or "none"
        raise BadQuery(404, "Unknown integration", f"No integration {name!r}; known: {known}")
    return name


def _store(name: str | None) -> str | None:
    if name is not None and (problem := store_problem(name)):
        raise BadQuery(400, "Invalid store", f"store {problem}")
    return name


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise BadQuery(400, "Invalid limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def encode_cursor(position: Position) -> str:
    raw = json.dumps([repr(position.at), position.entry], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Position:
    """A page's ``next_cursor`` back into where the next page starts."""
    bad = BadQuery(400, "Invalid cursor", "cursor is not a next_cursor this listing gave")
    if len(text) > MAX_CURSOR_LENGTH:
        raise bad
    try:
        at, entry = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        score = float(at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    if not isinstance(at, str) or not isinstance(entry, str) or not math.isfinite(score):
        raise bad
    return Position(score, entry)


def page(db: Store, query: Query) -> tuple[list[InState], str | None]:
    """One page of the listing, and the cursor of the next (None: none follows)."""
    found, following = db.listings.in_states(
        query.statuses,
        integration=query.integration,
        store=query.store,
        limit=query.limit,
        after=query.after,
    )
    return found, encode_cursor(following) if following is not None else None


def row(listed: InState) -> dict[str, Any]:
    """A listed message as ``GET /messages`` gives it: its record's view without its answer,
    with its store and when it entered its state."""
    view = listed.record.view()
    return {
        "integration": listed.record.integration,
        "message_id": listed.record.message_id,
        "store": listed.store,
        "status": listed.status,
        "since": iso(listed.since),
        "message": view["message"],
        "service": view["service"],
        "attempts": view["attempts"],
        "replays": view["replays"],
        "received_at": view["received_at"],
        "finished_at": view["finished_at"],
        "next_attempt_at": view["next_attempt_at"],
        "last_error": view["last_error"],
    }


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
