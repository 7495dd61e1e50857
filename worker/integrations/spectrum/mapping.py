"""Pure functions between the hub's ``shipment:confirm`` and Spectrum's ship notification.

A hub shipment becomes ``{purchaseOrderNumber, lineItems: [{recipeSetReadableId,
shipmentTracking, serialNumbers?}]}``:

* ``purchaseOrderNumber``: the shipment's ``purchase_order_number``, else its ``order_number``
  (the hub's order number is the purchase order Spectrum knows, unless the hub says otherwise);
* one line item per ``items[].spectrum_recipe_set_id`` (two hub items of one recipe set are one
  line item: Spectrum updates per recipe set), their ``serial_numbers`` together, in order;
* ``shipmentTracking``: every tracking number of the shipment (``tracking``,
  ``tracking_numbers``, ``cartons[].tracking_number``), joined by commas, the same for every
  line item: the hub does not say which carton holds which item, and Spectrum takes several
  numbers in one string, comma-separated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field, model_validator

from worker.hub.messages import HubModel, ShippedItem, ShippedShipment
from worker.integrations.kit import listing

# What Spectrum's recipeSetReadableIds look like (the seed's "ABCD1234", "MUEMVK2U"). Not
# enforced: an id of another shape is sent as it is, and only named if Spectrum refuses it.
RECIPE_SET_ID = re.compile(r"[A-Z0-9]{8}")
TRACKING_SEPARATOR = ","


class SpectrumItem(ShippedItem):
    """An item of the shipment: its Spectrum recipe set is required (422 naming it)."""

    spectrum_recipe_set_id: str = Field(min_length=1)
    serial_numbers: list[str] = Field(default_factory=list)


class SpectrumShipment(ShippedShipment):
    """The shipment of a ``shipment:confirm`` to Spectrum. Refused at intake (422) without a
    purchase order number (``purchase_order_number`` or ``order_number``), without a tracking
    number, or with an item without ``spectrum_recipe_set_id``."""

    purchase_order_number: str | None = None
    items: list[SpectrumItem] = Field(min_length=1)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _sendable(self) -> SpectrumShipment:
        if not (self.purchase_order_number or self.order_number):
            raise ValueError(
                "purchase_order_number or order_number is required: one of them is the "
                "purchaseOrderNumber Spectrum knows the order by"
            )
        if not self.all_tracking:
            raise ValueError(
                "a tracking number is required (tracking, tracking_numbers or "
                "cartons[].tracking_number): Spectrum takes tracking numbers only"
            )
        return self

    @property
    def purchase_order(self) -> str:
        return self.purchase_order_number or self.order_number or ""


class ShipmentConfirmed(HubModel):
    """``shipment:confirm`` as Spectrum's ``send_tracking`` takes it."""

    shipment: SpectrumShipment


def tracking_text(shipment: SpectrumShipment) -> str:
    """Every tracking number of the shipment, first one first, joined by commas."""
    return TRACKING_SEPARATOR.join(shipment.all_tracking)


def line_items(shipment: SpectrumShipment) -> list[dict[str, Any]]:
    """One line item per recipe set, in the order the items list them."""
    tracking = tracking_text(shipment)
    # Each recipe set's serial numbers as a dict's keys: in order, each once, in linear time
    # (a list searched for each one took 20 s for two items of 60,000).
    serials: dict[str, dict[str, None]] = {}
    for item in shipment.items:
        found = serials.setdefault(item.spectrum_recipe_set_id, {})
        found.update(dict.fromkeys(s.strip() for s in item.serial_numbers if s.strip()))
    return [
        {
            "recipeSetReadableId": recipe_set,
            "shipmentTracking": tracking,
            **({"serialNumbers": list(numbers)} if numbers else {}),
        }
        for recipe_set, numbers in serials.items()
    ]


def ship_notification(shipment: SpectrumShipment) -> dict[str, Any]:
    """The ``POST /api/order/ship-notification`` body for a confirmed shipment."""
    return {"purchaseOrderNumber": shipment.purchase_order, "lineItems": line_items(shipment)}


def recipe_sets(body: Mapping[str, Any]) -> list[str]:
    return [str(line["recipeSetReadableId"]) for line in body["lineItems"]]


def odd_looking(ids: Iterable[str]) -> list[str]:
    """The ids that do not look like a recipeSetReadableId (8 upper-case letters or digits)."""
    return [i for i in ids if not RECIPE_SET_ID.fullmatch(i)]


def sent_summary(number: str, body: Mapping[str, Any], details: str | None) -> str:
    """What an info notification says was sent."""
    line = body["lineItems"][0]
    said = f" ({details})" if details else ""
    return (
        f"shipment {number}: tracking {line['shipmentTracking']} sent for purchase order "
        f"{body['purchaseOrderNumber']}, recipe sets {listing(recipe_sets(body))}{said}"
    )


def unknown_reasons(
    body: Mapping[str, Any], unknown: list[str], details: str, status: int
) -> list[str]:
    """Why Spectrum refused a notification over recipe sets it does not know: its own words,
    then the ids, then a hint for ids that do not look like Spectrum's."""
    named = unknown or recipe_sets(body)
    reasons = [
        details,
        f"Spectrum (HTTP {status}) does not know recipe set(s) {listing(named)} in purchase "
        f"order {body['purchaseOrderNumber']}: nothing in the order was updated; check "
        "items[].spectrum_recipe_set_id",
    ]
    if odd := odd_looking(named):
        reasons.append(
            f"{listing(odd)} do(es) not look like a recipeSetReadableId "
            "(8 upper-case letters or digits, such as ABCD1234)"
        )
    return reasons
