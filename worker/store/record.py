"""A message's record as read (``Record``), how long things may take (``Timing``), and the two
steps every fenced write shares: the fence itself and keeping the state indexes in step."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from worker.store.schema import (
    FINISHED,
    LISTED_STATES,
    MessageStatus,
    RecordField,
    Write,
    state_keys,
    state_member,
)

F = RecordField


@dataclass(frozen=True)
class Timing:
    """How long things may take before someone looks at them; derived from the settings."""

    queued_deadline_seconds: float = 60.0  # a published message not started by then is checked
    lease_seconds: float = 30.0
    record_ttl_seconds: int = 7 * 24 * 3600
    memory_ttl_seconds: int = 180 * 24 * 3600


@dataclass(frozen=True)
class Record:
    integration: str
    message_id: str
    fields: dict[str, str]

    @property
    def status(self) -> MessageStatus:
        return MessageStatus(self.fields.get(F.STATUS, MessageStatus.QUEUED))

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.fields[F.BODY])

    @property
    def answer(self) -> dict[str, Any] | None:
        raw = self.fields.get(F.ANSWER)
        return json.loads(raw) if raw else None

    @property
    def store(self) -> str:
        return self.fields.get(F.STORE, "default")

    @property
    def queued_at(self) -> float:
        return float(self.fields.get(F.QUEUED_AT) or 0)

    def view(self) -> dict[str, Any]:
        """The operator's and the hub's view: no body, no secrets."""
        f = self.fields
        view: dict[str, Any] = {
            "integration": self.integration,
            "message_id": self.message_id,
            "message": f.get(F.MESSAGE),
            "service": f.get(F.SERVICE),
            "status": self.status.value,
            "attempts": int(f.get(F.ATTEMPTS, 0)),
            "replays": int(f.get(F.REPLAYS, 0)),
            "received_at": _iso(f.get(F.RECEIVED_AT)),
            "started_at": _iso(f.get(F.STARTED_AT)),
            "finished_at": _iso(f.get(F.FINISHED_AT)),
            # a retry's, or a queued message's waiting for its pace, batch or slot
            "next_attempt_at": _iso(f.get(F.NEXT_ATTEMPT_AT))
            if self.status in (MessageStatus.RETRYING, MessageStatus.QUEUED)
            else None,
            "last_error": f.get(F.LAST_ERROR) or None,
            "earlier_error": f.get(F.EARLIER_ERROR) or None,
            "answer": self.answer,
        }
        if F.DELIVERY in f:
            view["delivery"] = {
                "status": f[F.DELIVERY],
                "attempts": int(f.get(F.DELIVERY_ATTEMPTS, 0)),
                "last_error": f.get(F.DELIVERY_ERROR) or None,
                "next_attempt_at": _iso(f.get(F.NEXT_PUSH_AT))
                if f[F.DELIVERY] == "pending"
                else None,
                "delivered_at": _iso(f.get(F.DELIVERED_AT)),
            }
        return view


def _iso(epoch: str | None) -> str | None:
    if not epoch:
        return None
    return datetime.fromtimestamp(float(epoch), UTC).isoformat(timespec="milliseconds")


def fenced(
    pipe: redis.client.Pipeline, status: str | None, lease: str, lease_token: str
) -> Write | None:
    """Why a handler's write must not be applied (the record is gone, the message finished, the
    lease is another holder's), read in a watched transaction; None: it may."""
    if status is None:
        return Write.MISSING
    if status in FINISHED:
        return Write.FINISHED
    if pipe.get(lease) != lease_token:
        return Write.STALE
    return None


def list_in_state(
    pipe: redis.client.Pipeline,
    status: str,
    integration: str,
    store: str,
    message_id: str,
    at: float | None,
) -> None:
    """Queue the index writes of a message entering ``status`` (``at``) or leaving it (None)."""
    if status not in LISTED_STATES:
        return
    entry = state_member(integration, store, message_id)
    for key in state_keys(status, integration, store):
        if at is None:
            pipe.zrem(key, entry)
        else:
            pipe.zadd(key, {entry: at})
