"""A body that can hold neither a lone surrogate nor too deep a nesting is not walked
(``endpoint.body._plain``): whatever the body, the answer must be the one the full checks
give."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from endpoint.body import (
    MAX_DEPTH,
    MAX_NUMBER_LENGTH,
    BadBody,
    _decode,
    _loads,
    _loads_with_json,
    _plain,
)
from endpoint.body import _check_structure as walk


def checked_the_long_way(raw: bytes) -> Any:
    """What ``_decode`` answered before the fast path: every body walked."""
    data = _loads(raw)
    walk(data)
    return data


def outcome(decode: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode(raw)
    except BadBody as exc:
        return "refused", (exc.status, exc.subject, str(exc))


awkward_text = st.sampled_from(
    ["x", "\ud800", "\udfff", "\U0001f600", "1e5", "9" * (MAX_NUMBER_LENGTH + 1), "\\u", ""]
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=10**99, max_value=10**120),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1e400", "-1E400", "1.5e3", "1" * (MAX_NUMBER_LENGTH + 1), "NaN"]),
)


def to_json(value: Any, ascii: bool) -> str:
    """JSON text, with the sampled number texts ("#1e400") inserted raw, not as strings, and
    strings escaped (``ascii``) or raw (surrogates included)."""
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{to_json(k, ascii)}:{to_json(v, ascii)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(to_json(v, ascii) for v in value) + "]"
    if isinstance(value, str) and value.startswith("#"):
        return value[1:]
    return json.dumps(value, ensure_ascii=ascii)


leaves = st.one_of(
    awkward_text,
    st.text(max_size=8),
    numbers.map(lambda n: f"#{n}" if isinstance(n, str) else n),
    st.booleans(),
    st.none(),
)
documents = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(awkward_text | st.text(max_size=4), inner)
    ),
    max_leaves=30,
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@settings(max_examples=400, deadline=None)
@given(
    documents,
    st.sampled_from(["utf-8", "utf-16-le", "utf-32", "utf-8-sig"]),
    st.booleans(),
)
def test_every_body_gets_the_answer_of_the_full_checks(
    document: Any, encoding: str, escaped: bool
) -> None:
    raw = to_json({"payload": document}, escaped).encode(encoding, "surrogatepass")
    assert outcome(_decode, raw) == outcome(checked_the_long_way, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":"\\ud800"}',
        '{"a":"\ud800"}'.encode("utf-8", "surrogatepass"),
        '{"a":"\ud800"}'.encode("utf-16-le", "surrogatepass"),
        nested(MAX_DEPTH + 1).encode(),
    ],
)
def test_a_body_that_may_hold_a_lone_surrogate_or_nest_too_deep_is_walked(raw: bytes) -> None:
    assert not _plain(raw)
    assert outcome(_decode, raw)[0] == "refused"


@pytest.mark.parametrize(
    "raw", [b'{"a":1e400}', b'{"a":' + b"1" * (MAX_NUMBER_LENGTH + 1) + b"}", b'{"a":NaN}']
)
def test_numbers_json_cannot_carry_are_refused_unwalked(raw: bytes) -> None:
    assert _plain(raw)
    assert outcome(_decode, raw)[0] == "refused"


def test_an_ordinary_message_is_not_walked() -> None:
    sample = (
        b'{"message_id":"m-1","message":"shipment:ready","payload":{"shipment":'
        b'{"number":"W1","name":"\\u00c9mile \xed\x95\x9c","items":[{"sku":"A-1","quantity":2}]}}}'
    )
    assert _plain(sample)
    assert _plain(nested(MAX_DEPTH).encode())


def typed(value: Any) -> str:
    """A value's text with its types and its keys' order: 1 is not 1.0, nor -0.0 0.0."""
    return repr(value)


long_numbers = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**18, 10**19]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.from_regex(r"-?[1-9][0-9]{0,25}(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,4})?", fullmatch=True).map(
        lambda text: f"#{text}"
    ),
)
read_documents = st.recursive(
    leaves | long_numbers | st.from_regex(r"[0-9]{15,22}", fullmatch=True),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(awkward_text | st.text(max_size=4), inner)
    ),
    max_leaves=30,
)


@pytest.mark.slow  # thousands of examples: about ten seconds
@settings(max_examples=1000, deadline=None)
@given(read_documents, st.sampled_from(["utf-8", "utf-16-le", "utf-8-sig"]), st.booleans())
def test_orjson_reads_every_body_as_json_does(document: Any, encoding: str, escaped: bool) -> None:
    """The reading (``_loads``, by orjson when it reads the same) gives json's value, with its
    types and key order, or json's refusal: integers near and past 64 bits, long fractions,
    exponents that overflow, duplicate keys, surrogates, other encodings."""
    raw = to_json({"payload": document, "payload": [document]}, escaped)  # noqa: F601
    raw_bytes = raw.encode(encoding, "surrogatepass")
    found = outcome(_loads, raw_bytes)
    expected = outcome(_loads_with_json, raw_bytes)
    assert (found[0], typed(found[1])) == (expected[0], typed(expected[1]))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":18446744073709551616}',  # orjson alone: a float
        b'{"a":-9223372036854775809}',
        b'{"a":"' + b"1" * 19 + b'"}',
        b'{"a":1e400}',
        b'{"a":1,"a":2.5}',
        b'\xef\xbb\xbf{"a":1}',
    ],
)
def test_what_orjson_would_read_otherwise_is_read_by_json(raw: bytes) -> None:
    found, expected = outcome(_loads, raw), outcome(_loads_with_json, raw)
    assert (found[0], typed(found[1])) == (expected[0], typed(expected[1]))
