"""Dotcom's order schema (order.xsd, in its API interface specification of 2014/2015), as the
simulator enforces it: every order a client posts is validated as Dotcom's .NET service
validates it, and refused in the same words.

Written from ``shared/reference/providers.md``, independently of the worker's own order
builder, so that each checks the other: the worker's tests fail when it sends what Dotcom's
schema would refuse.

What the schema says:

* every group is an ``xs:all``: each element listed must be present, once, in any order; an
  element the group does not list is refused;
* a text element may be empty unless it has a minimum length; its characters are Basic Latin;
* a date, integer or decimal element needs a valid value (``YYYY-MM-DD``; digits; at most two
  fraction digits), or, where it is nillable, ``xsi:nil="true"`` and no content: an empty
  ``<cancel-date></cancel-date>`` is invalid;
* numbers have their ranges (a line's price at most 99,999.99, a total at most 99,999,999.99).

Where the schema's nillability of an element is not on record, the simulator takes the strict
reading (a value is required): the worker sends one for each.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
NIL = f"{{{XSI_NS}}}nil"


@dataclass(frozen=True)
class Text:
    max_length: int
    min_length: int = 0
    nillable: bool = False


@dataclass(frozen=True)
class Day:
    nillable: bool = False


@dataclass(frozen=True)
class Whole:
    """A non-negative integer of at most ``digits`` digits."""

    digits: int
    nillable: bool = False


@dataclass(frozen=True)
class Money:
    """A non-negative decimal of at most two fraction digits, at most ``maximum``."""

    maximum: Decimal
    nillable: bool = False


Simple = Text | Day | Whole | Money


@dataclass(frozen=True)
class Group:
    """An ``xs:all`` group: each child once, in any order."""

    children: tuple[tuple[str, Simple | Group | Repeated], ...]


@dataclass(frozen=True)
class Repeated:
    """A sequence of one element, at least once (``line-items``)."""

    name: str
    item: Group


def _texts(*pairs: tuple[str, int], nillable: bool = False) -> tuple[tuple[str, Text], ...]:
    return tuple((name, Text(length, nillable=nillable)) for name, length in pairs)


TOTAL = Money(Decimal("99999999.99"))


def _party(section: str, *, iso_country: bool) -> Group:
    """billing-information or shipping-information."""
    city = Text(20, min_length=1) if section == "billing" else Text(20)
    children: list[tuple[str, Simple | Group | Repeated]] = [
        ("customer-number", Text(19)),
        ("name", Text(30, min_length=1)),
        ("company", Text(30)),
        ("address1", Text(30, min_length=1)),
        ("address2", Text(30)),
        ("address3", Text(30)),
        ("city", city),
        ("state", Text(2)),
        ("zip", Text(10)),
        ("country", Text(2)),
        ("phone", Text(19)),
        ("email", Text(50)),
    ]
    if iso_country:
        children.append(("iso-country-code", Text(2)))
    return Group(tuple((f"{section}-{name}", kind) for name, kind in children))


LINE_ITEM = Group(
    (
        ("sku", Text(20, min_length=1)),
        ("quantity", Whole(8)),
        ("price", Money(Decimal("99999.99"))),
        ("tax", Money(Decimal("99999.99"))),
        ("shipping-handling", Money(Decimal("999999.99"))),
        ("client-item", Text(20, nillable=True)),
        ("line-number", Text(10, nillable=True)),
        ("gift-box-wrap-quantity", Whole(9, nillable=True)),
        ("gift-box-wrap-type", Text(4, nillable=True)),
    )
)

ORDER = Group(
    (
        ("order-number", Text(20, min_length=1)),
        ("order-date", Day()),
        ("ship_date", Day(nillable=True)),  # the schema spells it so, and has no ship-date
        ("ship-method", Text(3, min_length=1)),
        ("ship_via", Text(20)),
        ("invoice-number", Whole(13, nillable=True)),
        ("total-tax", TOTAL),
        ("total-shipping-handling", TOTAL),
        ("total-order-amount", TOTAL),
        ("total-discount", TOTAL),
        ("declared-value", Money(TOTAL.maximum, nillable=True)),
        ("cancel-date", Day(nillable=True)),
        ("promise-date", Day(nillable=True)),
        ("tax-percent", Whole(2)),
        *_texts(
            ("special-instructions", 40),
            ("special-messaging", 250),
            ("drop-ship", 1),
            ("ok-partial-ship", 1),
            ("po-number", 20),
            ("salesman", 20),
            ("credit-card-number", 32),
            ("credit-card-expiration", 4),
            ("ad-code", 5),
            ("continuity-flag", 1),
            ("freight-terms", 20),
            ("department", 5),
            ("pay-terms", 5),
            ("asn-qualifier", 5),
            ("gift-order-indicator", 1),
            ("order-source", 8),
            ("third-party-account", 25),
            ("priority", 5),
            ("retail-department", 10),
            ("retail-store", 10),
            ("retail-vendor", 10),
            ("pool", 24),
            nillable=True,
        ),
        ("billing-information", _party("billing", iso_country=False)),
        ("shipping-information", _party("shipping", iso_country=True)),
        (
            "store-information",
            Group(
                _texts(
                    ("store-name", 30),
                    ("store-address1", 30),
                    ("store-address2", 30),
                    ("store-city", 20),
                    ("store-state", 2),
                    ("store-zip", 10),
                    ("store-country", 2),
                    ("store-phone", 19),
                    nillable=True,
                )
            ),
        ),
        (
            "custom-fields",
            Group(_texts(*((f"custom-field-{n}", 30) for n in range(1, 6)), nillable=True)),
        ),
        ("line-items", Repeated("line-item", LINE_ITEM)),
    )
)

# -- .NET's schema validation, in its words --------------------------------------------------


def _invalid(name: str, value: str, datatype: str, why: str) -> str:
    return (
        f"The '{name}' element is invalid - The value '{value}' is invalid according to its "
        f"datatype '{datatype}' - {why}"
    )


def _incomplete(parent: str, missing: list[str]) -> str:
    return (
        f"The element '{parent}' has incomplete content. List of possible elements expected: "
        f"'{', '.join(missing)}'."
    )


def _invalid_child(parent: str, child: str) -> str:
    return f"The element '{parent}' has invalid child element '{child}'."


_INTEGER = re.compile(r"\+?[0-9]+")
_DECIMAL = re.compile(r"\+?([0-9]*)(?:\.([0-9]*))?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _not_a(name: str, value: str, datatype: str) -> str:
    return _invalid(name, value, datatype, f"The string '{value}' is not a valid {datatype} value.")


def _text_problem(name: str, value: str, kind: Text) -> str | None:
    if not value.isascii():
        return _invalid(name, value, "String", "The Pattern constraint failed.")
    for bound, wrong in (
        ("greater than the MaxLength", len(value) > kind.max_length),
        ("less than the MinLength", len(value) < kind.min_length),
    ):
        if wrong:
            return _invalid(name, value, "String", f"The actual length is {bound} value.")
    return None


def _date_problem(name: str, value: str) -> str | None:
    try:
        if _DATE.fullmatch(value):
            date.fromisoformat(value)
            return None
    except ValueError:
        pass
    return _not_a(name, value, "Date")


def _whole_problem(name: str, value: str, kind: Whole) -> str | None:
    if not _INTEGER.fullmatch(value):
        return _not_a(name, value, "Integer")
    if len(value.lstrip("+").lstrip("0")) > kind.digits:
        return _invalid(name, value, "Integer", "The TotalDigits constraint failed.")
    return None


def _money_problem(name: str, value: str, kind: Money) -> str | None:
    match = _DECIMAL.fullmatch(value)
    if match is None or not (match[1] or match[2]):
        return _not_a(name, value, "Decimal")
    if len(match[2] or "") > 2:
        return _invalid(name, value, "Decimal", "The FractionDigits constraint failed.")
    if Decimal(value) > kind.maximum:
        return _invalid(name, value, "Decimal", "The MaxInclusive constraint failed.")
    return None


def simple_problems(element: ET.Element, name: str, kind: Simple) -> list[str]:
    """What .NET says of one simple element (nothing when it is valid)."""
    if element.get(NIL) in ("true", "1"):
        if not kind.nillable:
            return [
                f"The '{name}' element is invalid - If the 'nillable' attribute is false in the "
                "schema, the 'xsi:nil' attribute must not be present in the instance."
            ]
        if (element.text or "").strip() or len(element):
            return [
                f"The '{name}' element is invalid - The element cannot contain text or element "
                "information if the 'xsi:nil' attribute is true."
            ]
        return []
    if len(element):
        return [f"The element '{name}' cannot contain child element '{element[0].tag}'."]
    value = element.text or ""
    if isinstance(kind, Text):
        problem = _text_problem(name, value, kind)
    elif isinstance(kind, Day):
        problem = _date_problem(name, value.strip())
    elif isinstance(kind, Whole):
        problem = _whole_problem(name, value.strip(), kind)
    else:
        problem = _money_problem(name, value.strip(), kind)
    return [problem] if problem else []


def group_problems(element: ET.Element, name: str, group: Group) -> list[str]:
    """Every problem of an ``xs:all`` group and what it holds, in document order."""
    allowed = dict(group.children)
    counts = Counter(child.tag for child in element)
    problems: list[str] = []
    for child in element:
        kind = allowed.get(child.tag)
        if kind is None or counts[child.tag] > 1:
            problems.append(_invalid_child(name, child.tag))
            counts[child.tag] = 0  # said once
            continue
        problems += element_problems(child, child.tag, kind)
    missing = [child for child in allowed if child not in counts]
    if missing:
        problems.append(_incomplete(name, missing))
    return problems


def element_problems(element: ET.Element, name: str, kind: Simple | Group | Repeated) -> list[str]:
    if isinstance(kind, Group):
        return group_problems(element, name, kind)
    if isinstance(kind, Repeated):
        items = list(element)
        problems = [_invalid_child(name, c.tag) for c in items if c.tag != kind.name]
        if not any(c.tag == kind.name for c in items):
            problems.append(_incomplete(name, [kind.name]))
        for item in items:
            if item.tag == kind.name:
                problems += group_problems(item, kind.name, kind.item)
        return problems
    return simple_problems(element, name, kind)


def schema_problems(order: ET.Element) -> list[str]:
    """Every way one ``<order>`` (namespaces stripped but for ``xsi:nil``) breaks the schema."""
    return group_problems(order, "order", ORDER)
