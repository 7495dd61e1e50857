"""``worker.basics.json_text``: orjson's text where it is the standard library's, the standard
library's where it is not. The canonical text must stay byte for byte what ``json.dumps`` wrote:
the fingerprints of records already in Redis were hashed from it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.basics.json_text import canonical, compact

LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-1e-3, max_value=1e-3)  # where the two libraries write fractions apart
    | st.text()
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


def json_dumps_canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.slow  # thousands of examples: about ten seconds
@settings(max_examples=3000, deadline=None)
@given(JSON_VALUES)
def test_canonical_is_what_json_dumps_writes(value: Any) -> None:
    assert canonical(value) == json_dumps_canonical(value)


@settings(max_examples=1000, deadline=None)
@given(JSON_VALUES)
def test_compact_reads_back_as_the_value(value: Any) -> None:
    assert json.loads(compact(value)) == value


def test_the_values_orjson_writes_otherwise_take_the_standard_way() -> None:
    odd = {"tiny": 1.5e-05, "tinier": 5.9e-08, "huge": 2**64 + 1, "text": "one-day e-mail"}

    assert canonical(odd) == json_dumps_canonical(odd)
    assert json.loads(compact(odd)) == odd


def test_compact_keeps_key_order_and_characters() -> None:
    assert compact({"b": 1, "a": "Straße 😀"}) == '{"b":1,"a":"Straße 😀"}'
