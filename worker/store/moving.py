"""Shipments on the move: each shipment whose last canonical status (``worker.hub.status``) is
in transit or out for delivery (``MOVING_STATUSES``), with its last news. An operator asks which
of them have had no news for ``STALE_SHIPMENT_DAYS``: they stopped moving (``/ops/stale``, the
``shiphub_stale_shipments`` gauge).

Written from the answers themselves, whatever the provider: every ``shipment:update`` an answer
(or a part of it stored ahead) carries is noted in the transaction that stores it (``note``):
a moving status puts the shipment in the indexes (``moving_key``: one of every integration and
one per integration, scored by the time of its news) with its news in a small hash
(``shipment_key``); any other status (delivered, returned, an exception...) takes it out.

Bounded: a hash expires ``MOVING_KEPT_SECONDS`` after its news, and index entries that old are
pruned when read (``prune``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from worker.hub.status import canonical
from worker.store.schema import (
    MOVING_KEPT_SECONDS,
    MOVING_STATUSES,
    ShipmentField,
    moving_key,
    shipment_key,
    split_state_member,
    state_member,
)

S = ShipmentField
UPDATE = "shipment:update"


@dataclass(frozen=True)
class News:
    """What one ``shipment:update`` told of a shipment."""

    number: str
    status: str
    provider_status: str
    carrier: str
    tracking: str
    at: float

    @property
    def moving(self) -> bool:
        return canonical(self.status) in MOVING_STATUSES


@dataclass(frozen=True)
class MovingShipment:
    """A shipment on the move, as listed: its last news and when it came."""

    integration: str
    store: str
    number: str
    status: str
    provider_status: str
    carrier: str
    tracking: str
    news_at: float
    message_id: str


def news_in(messages: Iterable[Any], now: float) -> list[News]:
    """The last news of each shipment the messages tell of (``shipment:update``), in order."""
    found: dict[str, News] = {}
    for message in messages:
        if not isinstance(message, Mapping) or message.get("message") != UPDATE:
            continue
        payload = message.get("payload")
        shipment = payload.get("shipment") if isinstance(payload, Mapping) else None
        if not isinstance(shipment, Mapping) or not shipment.get("number"):
            continue
        number = str(shipment["number"])
        found.pop(number, None)
        found[number] = News(
            number=number,
            status=str(shipment.get("status") or ""),
            provider_status=str(shipment.get("provider_status") or ""),
            carrier=str(shipment.get("carrier") or shipment.get("provider") or ""),
            tracking=str(shipment.get("tracking") or ""),
            at=_news_time(shipment.get("status_at"), now),
        )
    return list(found.values())


def news_in_parts(parts: Iterable[str], now: float) -> list[News]:
    """``news_in`` for parts of an answer stored ahead (JSON arrays of messages); a part that
    tells of no shipment update is not parsed."""
    messages: list[Any] = []
    for part in parts:
        if UPDATE in part:
            messages.extend(json.loads(part))
    return news_in(messages, now)


def _news_time(status_at: Any, now: float) -> float:
    """The provider's time of the status (ISO 8601 with an offset), else now; never later
    than now (a provider's clock ahead of ours)."""
    if isinstance(status_at, str):
        try:
            moment = datetime.fromisoformat(status_at.replace("Z", "+00:00"))
        except ValueError:
            return now
        if moment.tzinfo is not None:
            return min(moment.timestamp(), now)
    return now


def note(
    pipe: redis.client.Pipeline,
    integration: str,
    store: str,
    news: Iterable[News],
    message_id: str,
) -> None:
    """Queue on ``pipe`` (the answer's own transaction) what ``news`` changes: a moving
    shipment's news kept and indexed; any other status takes it out."""
    for told in news:
        who = state_member(integration, store, told.number)
        key = shipment_key(integration, store, told.number)
        indexes = (moving_key(), moving_key(integration))
        if not told.moving:
            for index in indexes:
                pipe.zrem(index, who)
            pipe.delete(key)
            continue
        pipe.hset(
            key,
            mapping={
                S.INTEGRATION: integration,
                S.STORE: store,
                S.NUMBER: told.number,
                S.STATUS: told.status,
                S.PROVIDER_STATUS: told.provider_status,
                S.CARRIER: told.carrier,
                S.TRACKING: told.tracking,
                S.NEWS_AT: repr(told.at),
                S.MESSAGE_ID: message_id,
            },
        )
        pipe.expireat(key, int(told.at + MOVING_KEPT_SECONDS) + 1)
        for index in indexes:
            pipe.zadd(index, {who: told.at})


class Moving:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def prune(self, integrations: Iterable[str], now: float | None = None) -> None:
        """Drop index entries whose news is older than ``MOVING_KEPT_SECONDS`` (their hashes
        have expired): one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            _prune(pipe, integrations, now)
            pipe.execute()

    def counts(
        self, integrations: Iterable[str], before: float, now: float | None = None
    ) -> dict[str, int]:
        """How many shipments of each integration have had no news since ``before``, pruned
        first (``prune``): one round trip, a ZCOUNT each."""
        names = list(integrations)
        with self.redis.pipeline(transaction=False) as pipe:
            _prune(pipe, names, now)
            for integration in names:
                pipe.zcount(moving_key(integration), "-inf", f"({before}")
            found = pipe.execute()[len(names) + 1 :]
        return dict(zip(names, (int(n) for n in found), strict=True))

    def stale(
        self, before: float, integration: str = "", offset: int = 0, limit: int = 50
    ) -> tuple[list[MovingShipment], int]:
        """A page of the shipments (of ``integration``; "": of any) with no news since
        ``before``, the longest silent first, and how many there are in all: two round trips."""
        index = moving_key(integration)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(index, "-inf", f"({before}", offset, limit, withscores=True)
            pipe.zcount(index, "-inf", f"({before}")
            rows, total = pipe.execute()
        with self.redis.pipeline(transaction=False) as pipe:
            for who, _ in rows:
                pipe.hgetall(shipment_key(*split_state_member(who)))
            found = pipe.execute()
        return [_listed(who, at, f) for (who, at), f in zip(rows, found, strict=True)], int(total)


def _prune(pipe: redis.client.Pipeline, integrations: Iterable[str], now: float | None) -> None:
    before = (time.time() if now is None else now) - MOVING_KEPT_SECONDS
    for integration in ("", *integrations):
        pipe.zremrangebyscore(moving_key(integration), "-inf", f"({before}")


def _listed(who: str, at: float, kept: Mapping[str, str]) -> MovingShipment:
    integration, store, number = split_state_member(who)
    return MovingShipment(
        integration=integration,
        store=store,
        number=number,
        status=kept.get(S.STATUS, ""),
        provider_status=kept.get(S.PROVIDER_STATUS, ""),
        carrier=kept.get(S.CARRIER, ""),
        tracking=kept.get(S.TRACKING, ""),
        news_at=float(at),
        message_id=kept.get(S.MESSAGE_ID, ""),
    )
