"""JSON text of parsed hub messages, written by orjson with the standard library as fallback.

Every message the receiver takes is written as JSON twice: its record's body, and the canonical
text its fingerprint hashes. orjson writes both about ten times faster than ``json.dumps``. Two
things it cannot do, and the standard library writes instead:

* an integer outside 64 bits (JSON allows it; orjson refuses it);
* the canonical text of a fraction under 0.0001. The fingerprints of records already in Redis
  were hashed from ``json.dumps``'s text, which writes such a fraction as ``1.5e-05`` where
  orjson writes ``0.000015`` (or ``5.9e-8`` for ``5.9e-08``); every other value is written the
  same by both (``tests/test_json_text.py`` holds them to it). A text that could hold one
  (``e-`` or ``0.0000`` anywhere, a string included) is written again the standard way.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def compact(value: Any) -> str:
    """``value`` as compact JSON text (keys in their order, no spaces, UTF-8 characters as
    they are)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer over 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def canonical(value: Any) -> bytes:
    """``value`` as canonical UTF-8 JSON: keys sorted, no spaces, exactly as
    ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` writes it."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        text = None
    if text is None or _unlike_json_dumps(text):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return text


def _unlike_json_dumps(text: bytes) -> bool:
    """Whether orjson's ``text`` could hold a fraction written the way json.dumps would not:
    4 zeros after a point (json.dumps switches to an exponent under 0.0001), or a digit before
    ``e-`` (a negative exponent). Byte searches, not a regular expression: the common text
    ("e-mail", "one-day") costs a find or two, where a pattern scanned every byte."""
    if b"0.0000" in text:
        return True
    at = text.find(b"e-")
    while at != -1:
        if at > 0 and text[at - 1] in _DIGITS:
            return True
        at = text.find(b"e-", at + 2)
    return False


_DIGITS = frozenset(b"0123456789")
