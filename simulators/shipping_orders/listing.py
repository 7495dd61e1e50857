"""``POST /shipments/list``: filters, keyset paging and the opaque pagination tokens.

A token is base64 of JSON ``{"v": 1, "tenant", "filters", "after"|"before": [lastUpdatedAt ms,
id]}``. The filters are fixed by the first request (a window's missing ``startsAt`` resolved
then; a missing ``endsAt`` stays open, "now" at each page), so an order updated while a client
pages moves behind the cursor's position and is seen again later rather than skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulators.shipping_orders.errors import invalid_data

DAY_MS = 24 * 60 * 60 * 1000
MAX_LIMIT = 1000
MAX_IDS = 100
MAX_WINDOW_MS = 30 * DAY_MS
MAX_AGE_MS = 365 * DAY_MS
DEFAULT_WINDOW_MS = DAY_MS
WINDOW_FIELDS = ("lastUpdatedAt", "createdAt")

Key = tuple[int, str]  # (lastUpdatedAt ms, id): the sort order and the cursor


@dataclass(frozen=True)
class Listed:
    """What the listing reads of one order."""

    key: Key
    created_ms: int
    document: Mapping[str, Any]


@dataclass(frozen=True)
class ListRequest:
    filters: dict[str, Any]
    limit: int
    after: Key | None = None
    before: Key | None = None


# --------------------------------------------------------------------------------------------
# Reading the request


def parse_list_request(body: Mapping[str, Any], tenant: str, now_ms: int) -> ListRequest:
    """The filters and position of a list request; ApiError 400 INVALID_DATA when invalid.

    With ``paginationToken`` the token's filters apply and the body's other filters are ignored
    (``limit`` still counts)."""
    limit = _limit(body.get("limit", MAX_LIMIT))
    token = body.get("paginationToken")
    if token is not None:
        filters, after, before = decode_token(token, tenant)
        return ListRequest(filters, limit, after, before)
    return ListRequest(_filters(body, now_ms), limit)


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid_data("Invalid Data: limit must be a positive integer")
    if value > MAX_LIMIT:
        raise invalid_data(f"Invalid Data: limit cannot be greater than {MAX_LIMIT}")
    return value


def _filters(body: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for name in WINDOW_FIELDS:
        if body.get(name) is not None:
            filters[name] = _window(name, body[name], now_ms)
    if not filters:
        filters["createdAt"] = [now_ms - DEFAULT_WINDOW_MS, None]
    for name in ("orderExternalIds", "locationExternalIds"):
        if body.get(name) is not None:
            filters[name] = _string_list(name, body[name], MAX_IDS)
    if body.get("status") is not None:
        filters["status"] = _string_list("status", body["status"], None)
    if body.get("groupId") is not None:
        if not isinstance(body["groupId"], str):
            raise invalid_data("Invalid Data: groupId must be a string")
        filters["groupId"] = body["groupId"]
    pickup, delivery = body.get("pickupTime"), body.get("deliveryTime")
    if (pickup is None) != (delivery is None):
        raise invalid_data(
            "Invalid Data: pickupTime.startsAt and deliveryTime.endsAt must be given together"
        )
    if pickup is not None:
        filters["pickupFrom"] = _epoch(pickup, "pickupTime", "startsAt")
        filters["deliveryUntil"] = _epoch(delivery, "deliveryTime", "endsAt")
    return filters


def _epoch(window: Any, name: str, key: str) -> int:
    value = window.get(key) if isinstance(window, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid_data(f"Invalid Data: {name}.{key} must be epoch milliseconds")
    return value


def _window(name: str, window: Any, now_ms: int) -> list[int | None]:
    """``[startsAt, endsAt or None]``; startsAt is required, endsAt defaults to now."""
    start = _epoch(window, name, "startsAt")
    end: int | None = None
    if isinstance(window, Mapping) and window.get("endsAt") is not None:
        end = _epoch(window, name, "endsAt")
    effective_end = now_ms if end is None else end
    if start > effective_end:
        raise invalid_data(f"Invalid Data: {name}.startsAt cannot be after {name}.endsAt")
    if effective_end - start > MAX_WINDOW_MS:
        raise invalid_data(f"Invalid Data: {name} date range cannot be greater than 30 days")
    if start < now_ms - MAX_AGE_MS:
        # The real wording is unknown; the rule (dates within the last year) is public.
        raise invalid_data(f"Invalid Data: {name} date cannot be older than 1 year")
    return [start, end]


def _string_list(name: str, value: Any, most: int | None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_data(f"Invalid Data: {name} must be an array of strings")
    if most is not None and len(value) > most:
        raise invalid_data(f"Invalid Data: {name} cannot have more than {most} items")
    return list(value)


# --------------------------------------------------------------------------------------------
# Tokens


def encode_token(tenant: str, filters: Mapping[str, Any], direction: str, key: Key) -> str:
    raw = {"v": 1, "tenant": tenant, "filters": filters, direction: [key[0], key[1]]}
    text = json.dumps(raw, separators=(",", ":"), sort_keys=True)
    return base64.b64encode(text.encode()).decode("ascii")


def decode_token(token: Any, tenant: str) -> tuple[dict[str, Any], Key | None, Key | None]:
    """Filters, after, before of a token; 400 INVALID_DATA when it is not one of ours."""
    try:
        if not isinstance(token, str):
            raise ValueError("not a string")
        raw = json.loads(base64.b64decode(token.encode("ascii"), validate=True))
        if not isinstance(raw, dict) or raw.get("v") != 1 or raw.get("tenant") != tenant:
            raise ValueError("not a token of this tenant")
        filters = raw["filters"]
        _check_filters(filters)
        after, before = _key(raw.get("after")), _key(raw.get("before"))
        if (after is None) == (before is None):
            raise ValueError("no position")
        return filters, after, before
    except (ValueError, KeyError, UnicodeError, binascii.Error) as exc:
        raise invalid_data("Invalid Data: paginationToken is invalid") from exc


def _check_filters(filters: Any) -> None:
    """A decoded token's filters have the shapes :func:`_filters` gives them."""
    if not isinstance(filters, dict):
        raise ValueError("no filters")
    for name, value in filters.items():
        if name in WINDOW_FIELDS:
            ok = (
                isinstance(value, list)
                and len(value) == 2
                and isinstance(value[0], int)
                and (value[1] is None or isinstance(value[1], int))
            )
        elif name in ("orderExternalIds", "locationExternalIds", "status"):
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif name == "groupId":
            ok = isinstance(value, str)
        elif name in ("pickupFrom", "deliveryUntil"):
            ok = isinstance(value, int)
        else:
            ok = False
        if not ok:
            raise ValueError(f"bad filter {name}")
    if ("pickupFrom" in filters) != ("deliveryUntil" in filters):
        raise ValueError("pickupFrom without deliveryUntil")


def _key(value: Any) -> Key | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or not isinstance(value[1], str)
    ):
        raise ValueError("bad position")
    return value[0], value[1]


# --------------------------------------------------------------------------------------------
# Running the query


def matches(filters: Mapping[str, Any], order: Listed, now_ms: int) -> bool:
    doc = order.document
    for name, moment in (("lastUpdatedAt", order.key[0]), ("createdAt", order.created_ms)):
        if name in filters:
            start, end = filters[name]
            if not start <= moment <= (now_ms if end is None else end):
                return False
    for name, field in (
        ("orderExternalIds", "orderExternalId"),
        ("locationExternalIds", "locationExternalId"),
        ("status", "status"),
    ):
        if name in filters and doc.get(field) not in filters[name]:
            return False
    if "groupId" in filters and doc.get("groupId") != filters["groupId"]:
        return False
    if "pickupFrom" in filters:
        pickup = _time(doc.get("pickupTime"), "startsAt")
        delivery = _time(doc.get("deliveryTime"), "endsAt")
        if pickup is None or delivery is None:
            return False
        if pickup < filters["pickupFrom"] or delivery > filters["deliveryUntil"]:
            return False
    return True


def _time(window: Any, key: str) -> int | None:
    value = window.get(key) if isinstance(window, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_list(
    request: ListRequest,
    tenant: str,
    orders: Iterable[Listed],
    now_ms: int,
    render: Callable[[Listed], dict[str, Any]] = lambda o: dict(o.document),
) -> dict[str, Any]:
    """``{"data": [...], "paginationToken": {"next", "previous"}}`` sorted by (lastUpdatedAt,
    id), each order as ``render`` writes it. ``next`` is null when nothing follows the page,
    ``previous`` when nothing precedes it (an empty page has no ``previous``)."""
    found: Sequence[Listed] = sorted(
        (o for o in orders if matches(request.filters, o, now_ms)), key=lambda o: o.key
    )
    if request.before is not None:
        before = request.before
        page = [o for o in found if o.key < before][-request.limit :]
    else:
        after = request.after
        page = [o for o in found if after is None or o.key > after][: request.limit]
    next_token = previous_token = None
    if page:
        first, last = page[0].key, page[-1].key
        if any(o.key > last for o in found):
            next_token = encode_token(tenant, request.filters, "after", last)
        if any(o.key < first for o in found):
            previous_token = encode_token(tenant, request.filters, "before", first)
    return {
        "data": [render(o) for o in page],
        "paginationToken": {"next": next_token, "previous": previous_token},
    }
