"""Settings of the Spectrum simulator: the dataclass, its JSON and its environment."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulators.kit import InvalidRequest, non_negative_number

ENV_PREFIX = "SPECTRUM_SIM_"
DEFAULT_TOKEN = "demo-spectrum-token"
# Purchase orders known at start (and after a reset): PO -> its recipe sets.
DEFAULT_ORDERS: dict[str, tuple[str, ...]] = {
    "R805661123": ("ABCD1234", "EFGH5678"),
    "HA-US-DEV00011101": ("ABCD1234", "MUEMVK2U"),  # the seed's sample order
}
UNKNOWN_STATUSES = (409, 404)


@dataclass
class SimulatorConfig:
    """Start-up settings; all can change at run time (``POST /_sim/config``)."""

    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)
    # Spectrum answers 403 past ~100 requests per 60 s per endpoint (sliding window here).
    rate_limit: int = 100
    rate_window_seconds: float = 60.0
    # 409 as the seed documents; 404 as Spectrum's newer sibling endpoint answers.
    unknown_status: int = 409
    orders: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_ORDERS))

    def report(self) -> dict[str, Any]:
        return {
            "tokens": len(self.tokens),  # how many, never which
            "rate_limit": self.rate_limit,
            "rate_window_seconds": self.rate_window_seconds,
            "unknown_status": self.unknown_status,
            "orders": {po: list(ids) for po, ids in self.orders.items()},
        }


CHANGEABLE = ("tokens", "rate_limit", "rate_window_seconds", "unknown_status", "orders")


def config_changes_from_json(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a ``POST /_sim/config`` body changes; InvalidRequest when one is wrong."""
    unknown = set(payload) - set(CHANGEABLE)
    if unknown:
        raise InvalidRequest(f"unknown settings: {sorted(unknown)}; changeable: {list(CHANGEABLE)}")
    changes: dict[str, Any] = {}
    if "tokens" in payload:
        tokens = payload["tokens"]
        if (
            not isinstance(tokens, list)
            or not tokens
            or not all(isinstance(t, str) and t for t in tokens)
        ):
            raise InvalidRequest("tokens must be a non-empty list of strings")
        changes["tokens"] = tuple(tokens)
    if "rate_limit" in payload:
        limit = payload["rate_limit"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidRequest("rate_limit must be an integer >= 1")
        changes["rate_limit"] = limit
    if "rate_window_seconds" in payload:
        window = non_negative_number(payload, "rate_window_seconds")
        if window == 0:
            raise InvalidRequest("rate_window_seconds must be > 0")
        changes["rate_window_seconds"] = window
    if "unknown_status" in payload:
        if payload["unknown_status"] not in UNKNOWN_STATUSES:
            raise InvalidRequest(f"unknown_status must be one of {list(UNKNOWN_STATUSES)}")
        changes["unknown_status"] = int(payload["unknown_status"])
    if "orders" in payload:
        changes["orders"] = orders_from_json(payload["orders"])
    return changes


def orders_from_json(value: Any) -> dict[str, tuple[str, ...]]:
    """``{"<purchase order>": ["<recipeSetReadableId>", ...], ...}``."""
    if not isinstance(value, Mapping):
        raise InvalidRequest("orders must be an object {purchaseOrderNumber: [recipe set ids]}")
    return {po: recipe_set_ids(po, ids) for po, ids in value.items()}


def recipe_set_ids(po: Any, ids: Any) -> tuple[str, ...]:
    if not isinstance(po, str) or not po:
        raise InvalidRequest("a purchaseOrderNumber must be a non-empty string")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise InvalidRequest(f"the recipe sets of {po} must be a list of non-empty strings")
    return tuple(dict.fromkeys(ids))


def config_from_env(environ: Mapping[str, str]) -> SimulatorConfig:
    """Defaults overridden by ``SPECTRUM_SIM_*``: TOKENS (comma-separated), RATE_LIMIT,
    RATE_WINDOW_SECONDS, UNKNOWN_STATUS (409|404), ORDERS (JSON ``{po: [ids]}``, replacing the
    default orders). ValueError when one is malformed."""

    def env(name: str) -> str | None:
        return environ.get(ENV_PREFIX + name) or None

    payload: dict[str, Any] = {}
    try:
        if raw := env("TOKENS"):
            payload["tokens"] = [t.strip() for t in raw.split(",") if t.strip()]
        if raw := env("RATE_LIMIT"):
            payload["rate_limit"] = int(raw)
        if raw := env("RATE_WINDOW_SECONDS"):
            payload["rate_window_seconds"] = float(raw)
        if raw := env("UNKNOWN_STATUS"):
            payload["unknown_status"] = int(raw)
        if raw := env("ORDERS"):
            payload["orders"] = json.loads(raw)
        config = SimulatorConfig()
        for key, value in config_changes_from_json(payload).items():
            setattr(config, key, value)
    except (InvalidRequest, ValueError) as exc:
        raise ValueError(f"{ENV_PREFIX}*: {exc}") from exc
    return config
