"""Reading and parsing a hub message body, with errors that say exactly what is wrong."""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

import orjson
from flask import request
from gunicorn.http.errors import ParseException
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import ClientDisconnected

from worker.hub.messages import HubMessage, message_id_problem, unsafe_text

CHUNK = 64 * 1024
# Hub messages are shallow: the body, its payload, an order, its items, an item's attributes
# is five levels. 64 leaves room for any real document, and stays far below where a recursive
# step after parsing (pydantic, json.dumps of the fingerprint, model_dump_json) would fail.
MAX_DEPTH = 64
# Hub numbers are quantities, prices and ids: a 64-bit id has 20 digits. Python refuses to
# convert an integer of over 4,300 digits, and converting long ones costs quadratic time.
MAX_NUMBER_LENGTH = 100
# What goes wrong while reading the body off the wire: gunicorn's framing errors (a malformed
# chunked encoding), and a body that stops before it is complete.
UNREADABLE = (ParseException, ClientDisconnected, OSError, ValueError)
# orjson reads every number as json does up to 18 digits in a run: any integer of 64 bits or
# less, and fractions (both round correctly). A body with a longer run of digits anywhere, in a
# string too, is read by json (``_loads``). Digits become "1" and all else "0" in one translate.
ORJSON_DIGITS = 18
_DIGIT_OR_NOT = bytes(0x31 if 0x30 <= i <= 0x39 else 0x30 for i in range(256))
_LONG_DIGITS = b"1" * (ORJSON_DIGITS + 1)
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A \u escape of a surrogate: json turns it into a lone one unless it is half of a pair.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# A surrogate written in UTF-8 (json decodes bytes with "surrogatepass").
SURROGATE_UTF8 = re.compile(rb"\xed[\xa0-\xbf]")
# Where a body may hold text that ``worker.hub.messages.UNSAFE_TEXT`` refuses, as UTF-8 JSON writes
# it: an escape of one (\b, \f, a \u of C0, C1, U+061C, U+200E/F, U+202A-E, U+2066-9), or one
# written out (DEL, C1, the bidirectional controls); a NUL is JSON in UTF-16 or UTF-32. A body
# without any (nearly every one) is not walked.
UNSAFE_TEXT_BYTES = re.compile(
    rb"\\[bf]|\\u(?:00[0189][0-9a-fA-F]|007[fF]|061[cC]|200[eEfF]|202[a-eA-E]|206[6-9])"
    rb"|\x00|\x7f|\xc2[\x80-\x9f]|\xd8\x9c|\xe2\x80[\x8e\x8f\xaa-\xae]|\xe2\x81[\xa6-\xa9]"
)


class TooLarge(Exception):
    pass


class BadBody(Exception):
    """The request cannot be taken as a hub message; ``status`` is 406 (400 for headers and a
    body that cannot be read; 500 when the fault is a setting, not the request)."""

    def __init__(self, status: int, subject: str, detail: str, message_id: str | None = None):
        super().__init__(detail)
        self.status = status
        self.subject = subject
        self.message_id = message_id


def read_body(limit: int) -> bytes:
    """Read at most ``limit`` bytes; chunked bodies included (a server may cut them silently
    at its own limit, so we count ourselves)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge(f"The body is {declared} bytes; the limit is {limit}")
    stream = request.stream
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        try:
            chunk = stream.read(min(CHUNK, limit + 1 - size))
        except UNREADABLE as exc:
            raise unreadable(exc) from None
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
        if size == declared:  # all of it: no need to ask for the end
            break
    if size > limit:
        raise TooLarge(f"The body is over the limit of {limit} bytes")
    return b"".join(parts)


def unreadable(exc: Exception) -> BadBody:
    """A 400 for a body that could not be read as sent: its framing is malformed (a chunk size
    that is not hex...), or it stopped before it was complete."""
    what = "The chunked body" if _chunked() else "The body"
    cause = exc.__context__ if isinstance(exc, ClientDisconnected) else exc
    if isinstance(cause, ParseException):
        return BadBody(400, "Unreadable body", f"{what} is malformed: {cause}")
    return BadBody(400, "Unreadable body", f"{what} ended before it was complete")


def _chunked() -> bool:
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def parse_message(raw: bytes) -> HubMessage:
    """The hub message in ``raw``, or BadBody saying what is wrong with it.

    Whatever JSON cannot carry or later steps cannot take is refused here, before anything
    else touches the body: numbers too long or not finite, nesting deeper than ``MAX_DEPTH``,
    strings that are not Unicode.
    """
    data = _decode(raw)
    if not isinstance(data, dict):
        raise BadBody(
            406,
            "Invalid message",
            f"The body is a JSON {type(data).__name__}; expected an object with "
            "message_id, message and payload",
        )
    return _validate(data)


def unsafe_text_problem(raw: bytes, payload: BaseModel) -> str | None:
    """The first text field of the validated ``payload`` that holds a NUL, another control
    character or a bidirectional control, named by its path; None when there is none (looked
    for only when ``raw``, the body it was read from, may hold one)."""
    if UNSAFE_TEXT_BYTES.search(raw) is None:
        return None
    return unsafe_text(payload, "payload")


def parse_event(raw: bytes) -> dict[str, Any]:
    """A provider's webhook event: a JSON object, under the same limits as a hub message (a
    bad one is a 400: the provider's request is wrong, not a hub message)."""
    try:
        data = _decode(raw)
    except BadBody as exc:
        raise BadBody(400, exc.subject, str(exc)) from None
    if not isinstance(data, dict):
        raise BadBody(
            400, "Invalid event", f"The body is a JSON {type(data).__name__}; expected an object"
        )
    return data


def _decode(raw: bytes) -> Any:
    """The JSON in ``raw``, refused if it is not JSON or holds what JSON or later steps
    cannot carry (see ``parse_message``)."""
    if not raw.strip():
        raise BadBody(406, "Invalid message", "The body is empty; expected a JSON hub message")
    data = _loads(raw)
    if not _plain(raw):
        _check_structure(data)
    return data


def _plain(raw: bytes) -> bool:
    """Whether ``raw`` can hold neither a lone surrogate nor a nesting over ``MAX_DEPTH``, so
    that its parsed body needs no walk (``_check_structure``): at most MAX_DEPTH brackets, no
    surrogate escape, and no byte that starts a surrogate in UTF-8 (json reads them) or a NUL
    (JSON in UTF-16 or UTF-32, which json also reads, hides both from a byte search). Any of
    these inside a string only sends the body the long way."""
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH or b"\x00" in raw:
        return False
    if b"\xed" in raw and SURROGATE_UTF8.search(raw):
        return False
    return b"\\u" not in raw or SURROGATE_ESCAPE.search(raw) is None


def _loads(raw: bytes) -> Any:
    """``raw`` read as json reads it, with our hooks: by orjson (a fifth of the time) when it
    reads the same, that is when ``raw`` is UTF-8 JSON with no run of ``ORJSON_DIGITS`` digits
    (orjson reads an integer past 64 bits as a float, and a long number would escape our length
    check); by json otherwise, and whenever orjson refuses, so that a refusal is json's, in
    json's words."""
    if _LONG_DIGITS not in raw.translate(_DIGIT_OR_NOT):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # not JSON to orjson: json says what is wrong (or reads it: UTF-16, a BOM)
    return _loads_with_json(raw)


def _loads_with_json(raw: bytes) -> Any:
    """``raw`` read by json, each number through our hooks, refused with json's reason."""
    try:
        return json.loads(
            raw, parse_int=_integer, parse_float=_fraction, parse_constant=_not_finite
        )
    except UnicodeDecodeError:
        raise BadBody(406, "Invalid JSON", "The body is not UTF-8 text") from None
    except RecursionError:  # json's own limit, far over ours: the body is far too deep
        raise _too_deep() from None
    except json.JSONDecodeError as exc:
        raise BadBody(
            406,
            "Invalid JSON",
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None


def _integer(text: str) -> int:
    """json's hook for integers: a length check first, so int() never meets a huge one."""
    _not_too_long(text)
    return int(text)


def _fraction(text: str) -> float:
    """json's hook for fractions: 1e400 parses to inf, which JSON cannot carry."""
    _not_too_long(text)
    value = float(text)
    if not math.isfinite(value):
        _not_finite(text)
    return value


def _not_too_long(number: str) -> None:
    if len(number) > MAX_NUMBER_LENGTH:
        raise BadBody(
            406,
            "Invalid number",
            f"The body has a number too long: {len(number)} characters "
            f"({number[:12]}...); at most {MAX_NUMBER_LENGTH} are taken",
        )


def _not_finite(number: str) -> NoReturn:
    """json's hook for NaN, Infinity and -Infinity (and ours for overflowing fractions)."""
    raise BadBody(
        406,
        "Invalid number",
        f"The body has a number that is not finite ({number}); JSON numbers must be finite",
    )


def _check_structure(data: Any) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH`` and strings with a lone surrogate (a
    ``\\ud800`` escape: not Unicode, so the body could not be stored or hashed).

    Walked with a stack of containers, not recursion: the body is as deep as its sender made it.
    """
    pending: list[tuple[Any, int]] = [([data], 0)]  # a wrapper at depth 0 puts the body at 1
    while pending:
        container, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        for item in _children(container):
            if isinstance(item, dict | list):
                pending.append((item, depth + 1))
            elif isinstance(item, str) and LONE_SURROGATE.search(item):
                raise BadBody(
                    406,
                    "Invalid JSON",
                    "The body has a string with a lone surrogate (such as \\ud800); "
                    "strings must be Unicode text",
                )


def _children(container: dict[str, Any] | list[Any]) -> tuple[Any, ...] | list[Any]:
    """What is inside a container: an object's keys (strings too) and values, or a list."""
    if isinstance(container, dict):
        return (*container, *container.values())
    return container


def _too_deep() -> BadBody:
    return BadBody(
        406,
        "Invalid JSON",
        f"The body is nested too deeply: over {MAX_DEPTH} levels of objects and arrays",
    )


def _validate(data: dict[str, Any]) -> HubMessage:
    message_id = _known_id(data)
    missing = [k for k in ("message_id", "message", "payload") if k not in data]
    if missing:
        raise BadBody(
            406, "Invalid message", f"Missing {', '.join(missing)}", message_id=message_id
        )
    try:
        return HubMessage.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadBody(406, "Invalid message", problems, message_id=message_id) from None


def _known_id(data: dict[str, Any]) -> str | None:
    """The message_id to echo in a refusal: only one that is fit to be one."""
    candidate = data.get("message_id")
    if isinstance(candidate, str) and message_id_problem(candidate) is None:
        return candidate
    return None
