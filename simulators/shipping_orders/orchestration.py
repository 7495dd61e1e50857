"""Orchestration: "geocoding", the simulated delivery providers' estimates and the choice.

Everything here is deterministic (same order, same clock: same answer) and free of state.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulators.shipping_orders.errors import OrchestrationError

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
STRATEGIES = ("cheapest", "fastest", "preferred")


@dataclass(frozen=True)
class Provider:
    """A simulated delivery provider and its price/time model.

    price = base + per_km * distance + per_lb * weight + per_value * orderValue (2 decimals);
    pickup at max(now + pickup_minutes, requested pickupTime.startsAt); delivery at pickup +
    transit_minutes + transit_minutes_per_km * distance.
    """

    name: str
    id: str
    service_id: str
    service_type: str
    carrier: str  # how the provider names itself in its own error items
    base: float
    per_km: float
    per_lb: float
    per_value: float
    pickup_minutes: float
    transit_minutes: float
    transit_minutes_per_km: float
    same_state_only: bool = False
    max_weight_lb: float | None = None
    countries: frozenset[str] | None = None  # None: anywhere
    cancel_error: tuple[str, str] = ("NON_CANCELABLE_DELIVERY", "Delivery is already picked up")

    def tracking_id(self, serial: int) -> str:
        if self.name == "UPS":
            return f"1ZSIM001{serial:010d}"  # 18 characters, as UPS numbers are
        if self.name == "FedEx":
            return f"{770_000_000_000 + serial}"  # 12 digits
        if self.name == "DoorDash":
            return f"dd_{serial:014x}"
        return f"RD{serial:010d}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "displayName": self.name,
            "serviceId": self.service_id,
            "serviceType": self.service_type,
        }


PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        Provider(
            "UPS",
            "ups",
            "ground",
            "Ground",
            "UPS Shipping",
            base=7.5,
            per_km=0.012,
            per_lb=0.45,
            per_value=0.0,
            pickup_minutes=240,
            transit_minutes=1440,
            transit_minutes_per_km=1.0,
            cancel_error=(
                "NON_CANCELABLE_DELIVERY",
                "No shipment found within the allowed void period",
            ),
        ),
        Provider(
            "FedEx",
            "fedex",
            "express",
            "Express",
            "FedEx Shipping",
            base=15.0,
            per_km=0.02,
            per_lb=0.6,
            per_value=0.0,
            pickup_minutes=120,
            transit_minutes=960,
            transit_minutes_per_km=0.1,
            cancel_error=(
                "NON_CANCELABLE_DELIVERY",
                "Shipment has already been tendered to FedEx",
            ),
        ),
        Provider(
            "DoorDash",
            "doordash",
            "delivery",
            "Delivery",
            "DoorDash",
            base=5.99,
            per_km=0.75,
            per_lb=0.0,
            per_value=0.01,
            pickup_minutes=20,
            transit_minutes=30,
            transit_minutes_per_km=2.0,
            same_state_only=True,
            countries=frozenset({"US", "CA"}),
        ),
        Provider(
            "Roadie",
            "roadie",
            "same-day",
            "Same Day",
            "Roadie",
            base=8.5,
            per_km=0.3,
            per_lb=0.15,
            per_value=0.0,
            pickup_minutes=60,
            transit_minutes=180,
            transit_minutes_per_km=0.8,
            max_weight_lb=50.0,
            countries=frozenset({"US"}),
        ),
    )
}


@dataclass
class Rules:
    """A location's orchestration rules (which providers, how to pick one)."""

    strategy: str = "cheapest"
    preferred_provider: str | None = None
    price_cap: float | None = None
    providers: list[str] = field(default_factory=lambda: list(PROVIDERS))

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "preferred_provider": self.preferred_provider,
            "price_cap": self.price_cap,
            "providers": list(self.providers),
        }


@dataclass(frozen=True)
class Estimate:
    provider: Provider
    price: float
    pickup_at: int  # epoch ms
    delivery_at: int  # epoch ms


@dataclass(frozen=True)
class Shipment:
    """What orchestration needs to know about an order."""

    pickup_address: Mapping[str, Any]
    delivery_address: Mapping[str, Any]
    weight_lb: float
    order_value: float
    requested_pickup_at: int | None  # pickupTime.startsAt


# --------------------------------------------------------------------------------------------
# "Geocoding"

_POSTAL_CODES = {
    "US": r"\d{5}(-\d{4})?",
    "CA": r"[ABCEGHJ-NPRSTVXY]\d[A-Z] ?\d[A-Z]\d",
    "GB": r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}",
    "DE": r"\d{5}",
    "FR": r"\d{5}",
    "ES": r"\d{5}",
    "IT": r"\d{5}",
    "NL": r"\d{4} ?[A-Z]{2}",
    "AU": r"\d{4}",
}
_ANY_POSTAL_CODE = r"[A-Z0-9][A-Z0-9 -]{1,9}"
# A US ZIP's first digit names a region; its centre here. Other countries: a capital-ish point.
_US_REGIONS = {
    "0": (42.36, -71.06),
    "1": (40.75, -73.99),
    "2": (38.90, -77.04),
    "3": (33.75, -84.39),
    "4": (39.77, -86.16),
    "5": (44.98, -93.27),
    "6": (41.88, -87.63),
    "7": (32.78, -96.80),
    "8": (39.74, -104.99),
    "9": (34.05, -118.24),
}
_COUNTRY_CENTRES = {
    "CA": (43.65, -79.38),
    "GB": (51.51, -0.13),
    "DE": (52.52, 13.40),
    "FR": (48.86, 2.35),
    "ES": (40.42, -3.70),
    "IT": (41.90, 12.50),
    "NL": (52.37, 4.90),
    "AU": (-33.87, 151.21),
}


def plausible_postal_code(postal_code: str, country_code: str) -> bool:
    pattern = _POSTAL_CODES.get(country_code.upper(), _ANY_POSTAL_CODE)
    return re.fullmatch(pattern, postal_code.strip().upper()) is not None


def geocode(address: Mapping[str, Any]) -> tuple[float, float]:
    """Latitude and longitude of ``address``; OrchestrationError GEOCODING_FAILED when the
    country code is not two letters, the postal code is implausible for the country, or street1
    contains "UNKNOWN". The point is a region centre (US: by the ZIP's first digit) moved by a
    small offset hashed from the address, so it is stable and roughly right."""
    country = str(address.get("countryCode") or "").upper()
    postal = str(address.get("postalCode") or "")
    street = str(address.get("street1") or "")
    if (
        not re.fullmatch(r"[A-Z]{2}", country)
        or not plausible_postal_code(postal, country)
        or "UNKNOWN" in street.upper()
    ):
        raise OrchestrationError("GEOCODING_FAILED", f"{street}, {postal} {country}")
    digest = hashlib.sha256(f"{country}|{postal}|{street.upper()}".encode()).digest()
    jitter_lat = (digest[0] / 255 - 0.5) * 0.3
    jitter_lng = (digest[1] / 255 - 0.5) * 0.4
    if country == "US":
        lat, lng = _US_REGIONS[postal.strip()[0]]
    elif country in _COUNTRY_CENTRES:
        lat, lng = _COUNTRY_CENTRES[country]
    else:
        lat = digest[2] / 255 * 110 - 50
        lng = digest[3] / 255 * 360 - 180
    return round(lat + jitter_lat, 7), round(lng + jitter_lng, 7)


def with_coordinates(address: Mapping[str, Any]) -> dict[str, Any]:
    """``address`` checked by :func:`geocode`, with latitude/longitude added unless it has both."""
    lat, lng = geocode(address)
    located = dict(address)
    if not (_is_number(located.get("latitude")) and _is_number(located.get("longitude"))):
        located["latitude"], located["longitude"] = lat, lng
    return located


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def distance_km(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    lat1, lng1 = math.radians(a["latitude"]), math.radians(a["longitude"])
    lat2, lng2 = math.radians(b["latitude"]), math.radians(b["longitude"])
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


# --------------------------------------------------------------------------------------------
# Weight

_TO_LB = {"lb": 1.0, "lbs": 1.0, "pound": 1.0, "kg": 2.20462, "g": 0.00220462, "oz": 0.0625}


def _weight_lb(weight: Any) -> float | None:
    if not isinstance(weight, Mapping) or not _is_number(weight.get("value")):
        return None
    factor = _TO_LB.get(str(weight.get("unit") or "lb").lower(), 1.0)
    return float(weight["value"]) * factor


def order_weight_lb(order: Mapping[str, Any]) -> float:
    """The package's weight, else the items' (weight x quantity), else 1 lb."""
    package = order.get("package")
    if isinstance(package, Mapping):
        found = _weight_lb(package.get("weight"))
        if found is not None:
            return found
    total = 0.0
    for item in order.get("itemList") or []:
        if isinstance(item, Mapping):
            quantity = item.get("quantity", 1)
            total += (_weight_lb(item.get("weight")) or 0.0) * (
                quantity if _is_number(quantity) else 1
            )
    return total or 1.0


# --------------------------------------------------------------------------------------------
# Estimates and the choice


def estimate(provider: Provider, shipment: Shipment, now_ms: int) -> Estimate | None:
    """The provider's offer for ``shipment``, or None when it does not serve it."""
    pickup, delivery = shipment.pickup_address, shipment.delivery_address
    country = str(delivery.get("countryCode") or "").upper()
    if provider.countries is not None and country not in provider.countries:
        return None
    if provider.same_state_only and (
        country != str(pickup.get("countryCode") or "").upper()
        or str(delivery.get("state") or "").upper() != str(pickup.get("state") or "").upper()
    ):
        return None
    if provider.max_weight_lb is not None and shipment.weight_lb > provider.max_weight_lb:
        return None
    km = distance_km(pickup, delivery)
    price = (
        provider.base
        + provider.per_km * km
        + provider.per_lb * shipment.weight_lb
        + provider.per_value * shipment.order_value
    )
    pickup_at = now_ms + int(provider.pickup_minutes * MINUTE_MS)
    if shipment.requested_pickup_at is not None:
        pickup_at = max(pickup_at, shipment.requested_pickup_at)
    transit = provider.transit_minutes + provider.transit_minutes_per_km * km
    return Estimate(provider, round(price, 2), pickup_at, pickup_at + int(transit * MINUTE_MS))


def orchestrate(rules: Rules, shipment: Shipment, now_ms: int) -> tuple[Estimate, list[Estimate]]:
    """The chosen estimate and every estimate received (the proposed providers).

    No provider assigned: NO_PROVIDER_ASSIGNED; none left after the price cap: NO_PROVIDER_MATCHED.
    cheapest: lowest price (then earliest delivery); fastest: earliest delivery (then price);
    preferred: the preferred provider's estimate when it gave one within the cap, else cheapest.
    """
    if not rules.providers:
        raise OrchestrationError("NO_PROVIDER_ASSIGNED")
    received = [
        found
        for name in rules.providers
        if name in PROVIDERS and (found := estimate(PROVIDERS[name], shipment, now_ms))
    ]
    eligible = [e for e in received if rules.price_cap is None or e.price <= rules.price_cap]
    if not eligible:
        raise OrchestrationError("NO_PROVIDER_MATCHED")
    return choose(rules, eligible), received


def choose(rules: Rules, eligible: Sequence[Estimate]) -> Estimate:
    def cheapest(e: Estimate) -> tuple[float, int, str]:
        return (e.price, e.delivery_at, e.provider.name)

    if rules.strategy == "fastest":
        return min(eligible, key=lambda e: (e.delivery_at, e.price, e.provider.name))
    if rules.strategy == "preferred":
        for found in eligible:
            if found.provider.name == rules.preferred_provider:
                return found
    return min(eligible, key=cheapest)


def proposed_providers(received: Sequence[Estimate]) -> list[dict[str, Any]]:
    """``proposedProviders`` as the seed's samples show it."""
    return [
        {"name": e.provider.name, "services": [{"id": e.provider.service_id}]} for e in received
    ]
