"""Settings of the Shipping Order API simulator: the dataclass, its JSON and its environment."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators.kit import InvalidRequest, non_negative_number
from simulators.shipping_orders.errors import ERROR_SPELLINGS, OrchestrationError
from simulators.shipping_orders.lifecycle import SCENARIOS
from simulators.shipping_orders.orchestration import PROVIDERS, STRATEGIES, Rules, with_coordinates
from simulators.shipping_orders.shapes import SHAPES

ENV_PREFIX = "SHIPPING_ORDERS_SIM_"
DEFAULT_TENANT = "demo-tenant"
DEFAULT_LOCATION_ID = "store-1"
DEFAULT_ADDRESS: dict[str, Any] = {
    "street1": "345 Harrison Avenue",
    "street2": "",
    "city": "Boston",
    "state": "MA",
    "postalCode": "02118",
    "countryCode": "US",
    "latitude": 42.3452369,
    "longitude": -71.0639399,
}
DEFAULT_CONTACT: dict[str, Any] = {"name": "Store One", "phone": "+1 617-555-0100"}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Location:
    """A pickup location of a tenant: where orders start and how their provider is chosen."""

    external_id: str
    name: str = "Store One"
    address: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ADDRESS))
    contact: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CONTACT))
    rules: Rules = field(default_factory=Rules)

    def to_json(self, tenant_id: str) -> dict[str, Any]:
        return {
            "tenantId": tenant_id,
            "locationExternalId": self.external_id,
            "name": self.name,
            "address": dict(self.address),
            "contact": dict(self.contact),
            "rules": self.rules.to_json(),
        }


def default_locations() -> dict[str, Location]:
    return {DEFAULT_LOCATION_ID: Location(DEFAULT_LOCATION_ID)}


@dataclass
class SimulatorConfig:
    """Start-up settings; all but ``base_path`` can change at run time (``POST /_sim/config``,
    locations through ``POST /_sim/locations``)."""

    accounts: dict[str, str] = field(default_factory=lambda: {"demo-so-key": DEFAULT_TENANT})
    base_path: str = ""
    # tenant -> locationExternalId -> Location; a tenant without any gets store-1.
    locations: dict[str, dict[str, Location]] = field(
        default_factory=lambda: {DEFAULT_TENANT: default_locations()}
    )
    step_seconds: float = 5.0
    webhook_url: str | None = None
    webhook_secret: str | None = None
    error_spelling: str = "seed"
    # The order objects answered and sent by webhook: the seed's samples or the vendor's real
    # shapes (``shapes``); vendor also answers a create REQUEST_RECEIVED and dispatches later.
    shape: str = "seed"
    rate_limit_per_second: int | None = None
    scenario: str = "delivered"
    # Webhook retry policy (the real one is unknown): one try, then one per delay listed.
    webhook_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0)
    webhook_timeout_seconds: float = 5.0
    # Injectable clock (tests freeze time with it); naive datetimes are taken as UTC.
    clock: Callable[[], datetime] = utc_now

    def copy(self) -> SimulatorConfig:
        clone = copy.copy(self)
        clone.accounts = dict(self.accounts)
        clone.locations = copy.deepcopy(self.locations)
        return clone

    def ensure_locations(self) -> None:
        """Give every tenant of ``accounts`` the default location when it has none."""
        for tenant in self.accounts.values():
            if not self.locations.get(tenant):
                self.locations[tenant] = default_locations()

    def report(self) -> dict[str, Any]:
        return {
            "tenants": sorted(set(self.accounts.values())),
            "base_path": self.base_path,
            "step_seconds": self.step_seconds,
            "webhook_url": self.webhook_url,
            "webhook_secret_set": self.webhook_secret is not None,
            "error_spelling": self.error_spelling,
            "shape": self.shape,
            "rate_limit_per_second": self.rate_limit_per_second,
            "scenario": self.scenario,
            "webhook_retry_delays": list(self.webhook_retry_delays),
            "webhook_timeout_seconds": self.webhook_timeout_seconds,
        }


# --------------------------------------------------------------------------------------------
# Run-time changes (POST /_sim/config)

CHANGEABLE = (
    "accounts",
    "step_seconds",
    "webhook_url",
    "webhook_secret",
    "error_spelling",
    "shape",
    "rate_limit_per_second",
    "scenario",
    "webhook_retry_delays",
    "webhook_timeout_seconds",
)


def config_changes_from_json(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a ``POST /_sim/config`` body changes (``locations`` is the caller's)."""
    unknown = set(payload) - {*CHANGEABLE, "locations"}
    if unknown:
        raise InvalidRequest(
            f"unknown or fixed settings: {sorted(unknown)}; "
            f"changeable: {[*CHANGEABLE, 'locations']}"
        )
    changes: dict[str, Any] = {}
    if "accounts" in payload:
        changes["accounts"] = _accounts(payload["accounts"])
    if "step_seconds" in payload:
        changes["step_seconds"] = non_negative_number(payload, "step_seconds")
    if "webhook_timeout_seconds" in payload:
        timeout = non_negative_number(payload, "webhook_timeout_seconds")
        if timeout == 0:
            raise InvalidRequest("webhook_timeout_seconds must be > 0")
        changes["webhook_timeout_seconds"] = timeout
    for key in ("webhook_url", "webhook_secret"):
        if key in payload:
            changes[key] = _optional_text(payload, key)
    url = changes.get("webhook_url")
    if url is not None and not url.startswith(("http://", "https://")):
        raise InvalidRequest("webhook_url must be an http(s) URL or null")
    if "error_spelling" in payload:
        changes["error_spelling"] = _one_of(payload, "error_spelling", ERROR_SPELLINGS)
    if "shape" in payload:
        changes["shape"] = _one_of(payload, "shape", SHAPES)
    if "scenario" in payload:
        changes["scenario"] = _one_of(payload, "scenario", SCENARIOS)
    if "rate_limit_per_second" in payload:
        limit = payload["rate_limit_per_second"]
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidRequest("rate_limit_per_second must be an integer >= 1 or null")
        changes["rate_limit_per_second"] = limit
    if "webhook_retry_delays" in payload:
        delays = payload["webhook_retry_delays"]
        if not isinstance(delays, list):
            raise InvalidRequest("webhook_retry_delays must be a list of numbers >= 0")
        changes["webhook_retry_delays"] = tuple(
            non_negative_number({"delay": d}, "delay") for d in delays
        )
    return changes


def _accounts(value: Any) -> dict[str, str]:
    if (
        not isinstance(value, Mapping)
        or not value
        or not all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items())
    ):
        raise InvalidRequest("accounts must be a non-empty object {api_key: tenant_id}")
    return dict(value)


def _optional_text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{key} must be a string or null")
    return value


def _one_of(payload: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = payload.get(key)
    if value not in allowed:
        raise InvalidRequest(f"{key} must be one of {list(allowed)}")
    return str(value)


# --------------------------------------------------------------------------------------------
# Locations (POST /_sim/locations, SHIPPING_ORDERS_SIM_LOCATIONS)


def location_from_json(payload: Mapping[str, Any], config: SimulatorConfig) -> tuple[str, Location]:
    """The tenant and the location a control request adds or changes.

    ``{"tenantId"?, "locationExternalId", "name"?, "address"?, "contact"?, "rules"?}``: an
    existing location keeps what the request leaves out (``rules`` merge key by key); a new one
    starts from store-1's address and contact and the default rules. ``tenantId`` defaults to
    the first account's tenant.
    """
    tenant = payload.get("tenantId") or next(iter(config.accounts.values()), DEFAULT_TENANT)
    external_id = payload.get("locationExternalId")
    if not isinstance(tenant, str) or not isinstance(external_id, str) or not external_id:
        raise InvalidRequest("locationExternalId (and tenantId, if given) must be strings")
    current = config.locations.get(tenant, {}).get(external_id)
    location = copy.deepcopy(current) if current else Location(external_id)
    if "name" in payload:
        if not isinstance(payload["name"], str):
            raise InvalidRequest("name must be a string")
        location.name = payload["name"]
    if "address" in payload:
        location.address = _pickup_address(payload["address"])
    if "contact" in payload:
        contact = payload["contact"]
        if not isinstance(contact, Mapping) or not isinstance(contact.get("name"), str):
            raise InvalidRequest("contact must be an object with a name")
        location.contact = dict(contact)
    if "rules" in payload:
        location.rules = rules_from_json(payload["rules"], location.rules)
    return tenant, location


def _pickup_address(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidRequest("address must be an object")
    missing = [k for k in ("street1", "city", "postalCode", "countryCode") if not value.get(k)]
    if missing:
        raise InvalidRequest(f"address needs {missing}")
    try:
        return with_coordinates(value)
    except OrchestrationError as exc:
        raise InvalidRequest(f"address cannot be geocoded: {exc.detail}") from exc


def rules_from_json(value: Any, current: Rules) -> Rules:
    if not isinstance(value, Mapping):
        raise InvalidRequest("rules must be an object")
    unknown = set(value) - {"strategy", "preferred_provider", "price_cap", "providers"}
    if unknown:
        raise InvalidRequest(f"unknown rules: {sorted(unknown)}")
    rules = copy.deepcopy(current)
    if "strategy" in value:
        rules.strategy = _one_of(value, "strategy", STRATEGIES)
    if "preferred_provider" in value:
        preferred = value["preferred_provider"]
        if preferred is not None and preferred not in PROVIDERS:
            raise InvalidRequest(f"preferred_provider must be one of {list(PROVIDERS)} or null")
        rules.preferred_provider = preferred
    if "price_cap" in value:
        cap = value["price_cap"]
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int | float)):
            raise InvalidRequest("price_cap must be a number or null")
        rules.price_cap = None if cap is None else float(cap)
    if "providers" in value:
        names = value["providers"]
        if not isinstance(names, list) or any(name not in PROVIDERS for name in names):
            raise InvalidRequest(f"providers must be a list of {list(PROVIDERS)}")
        rules.providers = list(names)
    return rules


# --------------------------------------------------------------------------------------------
# Environment


def parse_accounts(spec: str) -> dict[str, str]:
    """``"key:tenant,key2:tenant2"`` -> ``{"key": "tenant", "key2": "tenant2"}``."""
    accounts: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in spec.split(","))):
        api_key, separator, tenant = pair.partition(":")
        if not separator or not api_key or not tenant:
            raise ValueError(f"{ENV_PREFIX}ACCOUNTS entry {pair!r} is not key:tenant")
        accounts[api_key] = tenant
    return accounts


def config_from_env(environ: Mapping[str, str]) -> SimulatorConfig:
    """Defaults overridden by ``SHIPPING_ORDERS_SIM_*``: ACCOUNTS (``key:tenant,...``),
    BASE_PATH, LOCATIONS (a JSON list of ``/_sim/locations`` objects, applied on top of the
    default store-1), STEP_SECONDS, WEBHOOK_URL, WEBHOOK_SECRET, ERROR_SPELLING (seed|vendor),
    SHAPE (seed|vendor), RATE_LIMIT_PER_SECOND, SCENARIO, WEBHOOK_RETRY_DELAYS (``0.5,1,2``),
    WEBHOOK_TIMEOUT_SECONDS. ValueError when one is malformed."""

    def env(name: str) -> str | None:
        return environ.get(ENV_PREFIX + name) or None

    config = SimulatorConfig()
    if accounts := env("ACCOUNTS"):
        config.accounts = parse_accounts(accounts)
    if base_path := env("BASE_PATH"):
        config.base_path = base_path
    payload: dict[str, Any] = {}
    for name, key in (
        ("STEP_SECONDS", "step_seconds"),
        ("WEBHOOK_TIMEOUT_SECONDS", "webhook_timeout_seconds"),
    ):
        if raw := env(name):
            payload[key] = float(raw)
    for name, key in (
        ("WEBHOOK_URL", "webhook_url"),
        ("WEBHOOK_SECRET", "webhook_secret"),
        ("ERROR_SPELLING", "error_spelling"),
        ("SHAPE", "shape"),
        ("SCENARIO", "scenario"),
    ):
        if raw := env(name):
            payload[key] = raw
    if raw := env("RATE_LIMIT_PER_SECOND"):
        payload["rate_limit_per_second"] = int(raw)
    if raw := env("WEBHOOK_RETRY_DELAYS"):
        payload["webhook_retry_delays"] = [float(d) for d in raw.split(",") if d.strip()]
    try:
        for key, value in config_changes_from_json(payload).items():
            setattr(config, key, value)
        config.ensure_locations()
        if raw := env("LOCATIONS"):
            entries = json.loads(raw)
            if not isinstance(entries, list):
                raise InvalidRequest("must be a JSON list of location objects")
            for entry in entries:
                if not isinstance(entry, Mapping):
                    raise InvalidRequest("each location must be a JSON object")
                tenant, location = location_from_json(entry, config)
                config.locations.setdefault(tenant, {})[location.external_id] = location
    except (InvalidRequest, json.JSONDecodeError) as exc:
        raise ValueError(f"{ENV_PREFIX}*: {exc}") from exc
    return config
