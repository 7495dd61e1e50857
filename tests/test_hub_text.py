"""Text a hub message must not carry to a provider (pure): which characters, and the receiver's
byte search that lets nearly every body skip the walk without missing one."""

from __future__ import annotations

import json

import pytest

from endpoint.body import UNSAFE_TEXT_BYTES
from worker.hub import UNSAFE_TEXT, unsafe_text

REFUSED = [
    *map(chr, [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]),
    *"\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
]


@pytest.mark.parametrize("char", REFUSED, ids=[f"U+{ord(c):04X}" for c in REFUSED])
def test_each_refused_character_is_found_in_the_body_however_it_is_written(char: str) -> None:
    payload = {"shipment": {"items": [{"name": f"Mug{char}"}]}}

    assert unsafe_text(payload, "payload") == (
        f"payload.shipment.items.0.name has a "
        f"{'control character' if ord(char) < 0x100 else 'bidirectional control'} "
        f"U+{ord(char):04X} at position 3"
    )
    for ascii_only in (True, False):
        assert UNSAFE_TEXT_BYTES.search(json.dumps(payload, ensure_ascii=ascii_only).encode())


@pytest.mark.parametrize(
    "text", ["Suite 4\n\tBack door\r\n", "Straße 5", "שלום", "مرحبا", "\u200d", "\u00a0", "😀"]
)
def test_tabs_line_breaks_and_any_script_are_fit(text: str) -> None:
    assert UNSAFE_TEXT.search(text) is None
    assert unsafe_text({"a": [text], text: 1}, "payload") is None


def test_a_key_is_text_too() -> None:
    assert unsafe_text({"gift\u202enote": "x"}, "payload") == (
        "payload key has a bidirectional control U+202E at position 4"
    )
