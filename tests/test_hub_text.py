"""Text a hub message must not carry to a provider (pure): which characters, and the receiver's
byte search that lets nearly every body skip the walk without missing one."""

from __future__ import annotations

import json

import pytest

from endpoint.body import UNSAFE_TEXT_BYTES
from worker.hub.messages import UNSAFE_TEXT, ShipmentReady, unsafe_text

ADDRESS = {
    "firstname": "Ann",
    "lastname": "Lee",
    "address1": "1 Main St",
    "city": "Town",
    "zipcode": "20815",
    "country": "US",
}
SHIPMENT = {
    "number": "H1",
    "order_number": "R1",
    "shipping_method": "UPS Ground",
    "shipping_address": ADDRESS,
    "items": [{"sku": "A", "quantity": 1}],
}
REFUSED = [
    *map(chr, [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]),
    *"\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
]


@pytest.mark.parametrize("char", REFUSED, ids=[f"U+{ord(c):04X}" for c in REFUSED])
def test_each_refused_character_is_found_in_the_body_however_it_is_written(char: str) -> None:
    payload = {
        "shipment": {**SHIPMENT, "items": [{"sku": "A", "quantity": 1, "name": f"Mu{char}g"}]}
    }

    assert unsafe_text(ShipmentReady.model_validate(payload), "payload") == (
        f"payload.shipment.items.0.name has a "
        f"{'control character' if ord(char) < 0x100 else 'bidirectional control'} "
        f"U+{ord(char):04X} at position 2"
    )
    for ascii_only in (True, False):
        assert UNSAFE_TEXT_BYTES.search(json.dumps(payload, ensure_ascii=ascii_only).encode())


@pytest.mark.parametrize(
    "text", ["Suite 4\n\tBack door\r\n", "Straße 5", "שלום", "مرحبا", "\u200d", "\u00a0", "😀"]
)
def test_tabs_line_breaks_and_any_script_are_fit(text: str) -> None:
    payload = {"shipment": {**SHIPMENT, "shipping_method": f"x{text}x"}}

    assert UNSAFE_TEXT.search(text) is None
    assert unsafe_text(ShipmentReady.model_validate(payload), "payload") is None


def test_only_the_fields_a_model_declares_are_looked_at() -> None:
    """Keys the hub adds beyond a model's fields reach no provider."""
    payload = {"shipment": {**SHIPMENT, "gift\u202enote": "x\u0000"}, "extra": ["\u202e"]}

    assert unsafe_text(ShipmentReady.model_validate(payload), "payload") is None
