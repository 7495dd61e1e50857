"""Order documents: checking what clients send, building the stored order, dispatch fields."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from simulators.shipping_orders.errors import invalid_data, validation_error
from simulators.shipping_orders.lifecycle import SCENARIOS
from simulators.shipping_orders.orchestration import (
    HOUR_MS,
    MINUTE_MS,
    Estimate,
    Shipment,
    order_weight_lb,
    proposed_providers,
)

TRACKING_URL = "https://tracking.shipping-orders.sim"
ADDRESS_REQUIRED = ("street1", "city", "postalCode", "countryCode")
MAX_ID_LENGTH = 100
MAX_ITEMS = 100
SCENARIO_ATTRIBUTE = "simScenario"  # orderAttributes.simScenario picks an order's lifecycle

# Fields the service sets; a client sending them is ignored (never echoed, never edited).
SERVER_FIELDS = frozenset(
    {
        "id",
        "tenantId",
        "brandExternalId",
        "currencyCode",
        "pickupContact",
        "pickupAddress",
        "status",
        "referenceLinks",
        "provider",
        "trackingId",
        "estimatedPickupTime",
        "estimatedDeliveryTime",
        "attachments",
        "vehicle",
        "amount",
        "label",
        "fee",
        "actualDeliveryTime",
        "actualPickupTime",
        "returnRequest",
        "proposedProviders",
        "createdAt",
        "lastUpdatedAt",
        # the same fields as the vendor's order objects name them (``shapes``)
        "orderId",
        "storeExternalId",
        "trackingNumber",
        "trackingUrl",
        "receivedAtEpoch",
        "estimatedPickupTimeStarts",
        "estimatedPickupTimeEnds",
        "estimatedDeliveryTimeStarts",
        "estimatedDeliveryTimeEnds",
    }
)
PACKAGE_DEFAULTS = ("temperatureControl", "barcode")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# --------------------------------------------------------------------------------------------
# Checks (400 answers)


def check_new_order(body: Any) -> None:
    """400 VALIDATION_ERROR naming the first field that is missing or malformed."""
    if not isinstance(body, Mapping):
        raise validation_error("body", "Invalid Data: the request body must be a JSON object")
    for name in ("locationExternalId", "orderExternalId"):
        if not _text(body.get(name)):
            raise validation_error(name, f"Invalid Data: {name} is a required field")
    if len(body["orderExternalId"]) > MAX_ID_LENGTH:
        raise validation_error(
            "orderExternalId",
            f"Invalid Data: orderExternalId cannot be longer than {MAX_ID_LENGTH} characters",
        )
    check_delivery_address(body.get("deliveryAddress"))
    check_delivery_contact(body.get("deliveryContact"))
    if body.get("orderValue") is not None and not (
        _is_number(body["orderValue"]) and body["orderValue"] >= 0
    ):
        raise validation_error("orderValue", "Invalid Data: orderValue must be a number >= 0")
    check_common_fields(body)


def check_edit(body: Any) -> None:
    """The checks of an edit (only the fields sent); orderValue is 400 INVALID_DATA there."""
    if not isinstance(body, Mapping):
        raise validation_error("body", "Invalid Data: the request body must be a JSON object")
    if "orderValue" in body and not (_is_number(body["orderValue"]) and body["orderValue"] >= 0):
        raise invalid_data("Invalid data: The value for the orderValue field is invalid")
    if "deliveryAddress" in body:
        check_delivery_address(body["deliveryAddress"])
    if "deliveryContact" in body:
        check_delivery_contact(body["deliveryContact"])
    if "locationExternalId" in body and not _text(body["locationExternalId"]):
        raise validation_error(
            "locationExternalId", "Invalid Data: locationExternalId must be a non-empty string"
        )
    check_common_fields(body)


def check_delivery_address(address: Any) -> None:
    if not isinstance(address, Mapping):
        raise validation_error(
            "deliveryAddress",
            "Invalid Data: Delivery Address not provided (deliveryAddress is a required field)",
        )
    for name in ADDRESS_REQUIRED:
        if not _text(address.get(name)):
            raise validation_error(
                f"deliveryAddress.{name}",
                f"Invalid Data: deliveryAddress.{name} is a required field",
            )


def check_delivery_contact(contact: Any) -> None:
    if not isinstance(contact, Mapping) or not _text(contact.get("name")):
        raise validation_error(
            "deliveryContact.name", "Invalid Data: deliveryContact.name is a required field"
        )


def check_common_fields(body: Mapping[str, Any]) -> None:
    """Shapes shared by create and edit: package, itemList, time windows, orderAttributes."""
    if body.get("package") is not None and not isinstance(body["package"], Mapping):
        raise validation_error("package", "Invalid Data: package must be an object")
    items = body.get("itemList")
    if items is not None and (not isinstance(items, list) or len(items) > MAX_ITEMS):
        raise validation_error(
            "itemList", f"Invalid Data: itemList must be an array of at most {MAX_ITEMS}"
        )
    for name in ("pickupTime", "deliveryTime"):
        window = body.get(name)
        if window is None:
            continue
        if not isinstance(window, Mapping) or not all(
            value is None or (isinstance(value, int) and not isinstance(value, bool))
            for value in window.values()
        ):
            raise validation_error(
                name, f"Invalid Data: {name} must be a TimeWindow of epoch milliseconds"
            )
    attributes = body.get("orderAttributes")
    if attributes is not None and not isinstance(attributes, Mapping):
        raise validation_error("orderAttributes", "Invalid Data: orderAttributes must be an object")
    scenario = (attributes or {}).get(SCENARIO_ATTRIBUTE)
    if scenario is not None and scenario not in SCENARIOS:
        raise validation_error(
            f"orderAttributes.{SCENARIO_ATTRIBUTE}",
            f"Invalid Data: orderAttributes.{SCENARIO_ATTRIBUTE} must be one of {list(SCENARIOS)}",
        )


def scenario_of(document: Mapping[str, Any], default: str) -> str:
    attributes = document.get("orderAttributes")
    if isinstance(attributes, Mapping) and attributes.get(SCENARIO_ATTRIBUTE) in SCENARIOS:
        return str(attributes[SCENARIO_ATTRIBUTE])
    return default


# --------------------------------------------------------------------------------------------
# The stored document


def shipment_of(document: Mapping[str, Any], pickup_address: Mapping[str, Any]) -> Shipment:
    pickup_time = document.get("pickupTime")
    requested = pickup_time.get("startsAt") if isinstance(pickup_time, Mapping) else None
    value = document.get("orderValue")
    return Shipment(
        pickup_address=pickup_address,
        delivery_address=document["deliveryAddress"],
        weight_lb=order_weight_lb(document),
        order_value=float(value) if _is_number(value) else 0.0,
        requested_pickup_at=requested if isinstance(requested, int) else None,
    )


def new_document(
    body: Mapping[str, Any],
    *,
    order_id: str,
    tenant: str,
    delivery_address: dict[str, Any],
    pickup_address: Mapping[str, Any],
    pickup_contact: Mapping[str, Any],
    barcode: str,
) -> dict[str, Any]:
    """The stored order before dispatch: the posted fields echoed, the service's added."""
    doc: dict[str, Any] = {"id": order_id}
    doc.update({k: copy.deepcopy(v) for k, v in body.items() if k not in SERVER_FIELDS})
    doc["deliveryAddress"] = delivery_address
    for name, default in (
        ("orderValue", None),
        ("groupId", None),
        ("package", None),
        ("itemList", []),
        ("pickupTime", None),
        ("deliveryTime", None),
        ("orderAttributes", {}),
    ):
        if doc.get(name) is None:
            doc[name] = default
    if isinstance(doc["package"], dict):
        doc["package"].setdefault("temperatureControl", "none")
        doc["package"].setdefault("barcode", barcode)
    doc.update(
        {
            "tenantId": tenant,
            "brandExternalId": tenant,
            "currencyCode": "USD",
            "pickupContact": dict(pickup_contact),
            "pickupAddress": dict(pickup_address),
            "status": "REQUEST_RECEIVED",
            "referenceLinks": {"trackingUrl": None, "qrcodeLink": None},
            "provider": None,
            "trackingId": None,
            "estimatedPickupTime": {"startsAt": None, "endsAt": None},
            "estimatedDeliveryTime": {"startsAt": None, "endsAt": None},
            "attachments": None,
            "vehicle": None,
            "amount": None,
            "label": None,
            "fee": None,
            "actualDeliveryTime": None,
            "actualPickupTime": None,
            "returnRequest": None,
            "proposedProviders": [],
            "createdAt": None,
            "lastUpdatedAt": None,
        }
    )
    return doc


def apply_dispatch(
    doc: dict[str, Any],
    chosen: Estimate,
    received: Sequence[Estimate],
    tracking_id: str | None,
) -> None:
    """Write the chosen provider's offer into ``doc`` (a new ``tracking_id`` when given)."""
    provider = chosen.provider
    doc["provider"] = provider.to_json()
    if tracking_id is not None:
        doc["trackingId"] = tracking_id
    doc["estimatedPickupTime"] = {
        "startsAt": chosen.pickup_at,
        "endsAt": chosen.pickup_at + 30 * MINUTE_MS,
    }
    doc["estimatedDeliveryTime"] = {
        "startsAt": max(chosen.pickup_at, chosen.delivery_at - HOUR_MS),
        "endsAt": chosen.delivery_at,
    }
    doc["amount"] = chosen.price
    doc["fee"] = chosen.price
    doc["referenceLinks"] = {
        "trackingUrl": f"{TRACKING_URL}/{provider.id}/{doc['trackingId']}",
        "qrcodeLink": None,
    }
    doc["proposedProviders"] = proposed_providers(received)


def edit_changes(doc: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an edit that differ from the stored order (server fields ignored).

    A package re-sent without the service's defaults (temperatureControl, barcode) or an address
    re-sent without the coordinates the service added does not count as a change."""
    changes: dict[str, Any] = {}
    for name, value in body.items():
        if name in SERVER_FIELDS or name == "orderExternalId":
            continue
        new = copy.deepcopy(value)
        old = doc.get(name)
        if name == "package" and isinstance(new, dict) and isinstance(old, Mapping):
            for key in PACKAGE_DEFAULTS:
                if key in old:
                    new.setdefault(key, old[key])
        if name == "deliveryAddress" and isinstance(new, dict) and isinstance(old, Mapping):
            bare_old = {k: v for k, v in old.items() if k not in ("latitude", "longitude")}
            if "latitude" not in new and "longitude" not in new and new == bare_old:
                continue
        if new != old:
            changes[name] = new
    return changes
