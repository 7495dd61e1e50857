"""Reading Dotcom's XML answers: defusedxml, elements found by local name, streamed."""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Protocol

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml
from defusedxml.ElementTree import iterparse

from worker.basics.errors import TransientError
from worker.hub.messages import MAX_ITEM_QUANTITY
from worker.integrations import http as provider_http
from worker.integrations.dotcom.settings import PROVIDER

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Dotcom's XML answers


class UnexpectedAnswer(TransientError):
    """Dotcom answered something that is not the XML we expect (an error page, a cut answer)."""

    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__(f"{PROVIDER} answered {what}", [detail] if detail else [])


XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def local_name(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def child_text(element: ET.Element, name: str) -> str:
    """The text of the first direct child with this local name ("" when absent or nil)."""
    for child in element:
        if local_name(child.tag) == name:
            return "" if child.get(XSI_NIL) == "true" else (child.text or "").strip()
    return ""


def first_named(root: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in root.iter() if local_name(e.tag) == name), None)


@dataclass(frozen=True)
class OrderError:
    description: str
    order_number: str


def parse_order_errors(document: bytes) -> list[OrderError]:
    """The ``order_error`` entries of a POST /order answer; an empty list means success."""
    try:
        root = parse_xml(document)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise UnexpectedAnswer("a POST /order answer that is not readable XML", str(exc)) from None
    container = first_named(root, "order_errors")
    if container is None:
        raise UnexpectedAnswer(
            f"<{local_name(root.tag)}> where <order_errors> was expected",
            provider_http.excerpt(document.decode("utf-8", "replace")),
        )
    return [
        OrderError(child_text(e, "error_description"), child_text(e, "order_number"))
        for e in container.iter()
        if local_name(e.tag) == "order_error"
    ]


@dataclass(frozen=True)
class HeldOrder:
    """An order as ``GET /order/{order-number}`` shows it."""

    client_order_number: str
    dcd_order_number: str
    order_status: str


def named_text(element: ET.Element, name: str) -> str:
    """``child_text`` by either spelling Dotcom uses: ``client_order_number`` in the answers
    recorded from its service, ``client-order-number`` in its specification's sample."""
    return child_text(element, name) or child_text(element, name.replace("_", "-"))


def parse_held_orders(document: bytes) -> list[HeldOrder]:
    """The orders of a ``GET /order/{order-number}`` answer (none: an empty list)."""
    try:
        root = parse_xml(document)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise UnexpectedAnswer("a GET /order answer that is not readable XML", str(exc)) from None
    if first_named(root, "orders") is None and local_name(root.tag) != "order":
        raise UnexpectedAnswer(
            f"<{local_name(root.tag)}> where <orders> was expected",
            provider_http.excerpt(document.decode("utf-8", "replace")),
        )
    return [
        HeldOrder(
            named_text(e, "client_order_number"),
            named_text(e, "dcd_order_number"),
            named_text(e, "order_status"),
        )
        for e in root.iter()
        if local_name(e.tag) == "order"
    ]


_DUPLICATE = re.compile(r"already exists|duplicate", re.IGNORECASE)


def is_duplicate_order(error: OrderError, order_number: str) -> bool:
    """Dotcom's wording for a duplicate order is not documented: any error about this order
    number saying "already exists" or "duplicate" counts."""
    return error.order_number in ("", order_number) and bool(_DUPLICATE.search(error.description))


@dataclass(frozen=True)
class ShippedLine:
    sku: str
    quantity: Decimal
    carrier: str
    service: str
    service_code: str
    tracking_number: str
    carton_id: str
    line_number: str = ""  # client_line_number: the order's line (one SKU may ship on two)


@dataclass(frozen=True)
class Release:
    """One ``shipment`` of the answer: a release (``01``, ``02`` for back orders) of an order."""

    client_order_number: str
    dcd_order_number: str
    release: str
    order_status: str
    ship_date: str
    lines: tuple[ShippedLine, ...]

    @property
    def key(self) -> str:
        """Identity for de-duplication: ``<client_order_number>/<dcd_order_number>/<release>``."""
        return f"{self.client_order_number}/{self.dcd_order_number}/{self.release}"

    @property
    def shipped_lines(self) -> list[ShippedLine]:
        return [line for line in self.lines if line.quantity > 0]

    @property
    def shipped(self) -> bool:
        """A release whose every item shipped 0.00 is a cancellation or back order."""
        return bool(self.shipped_lines)


def parse_quantity(raw: str) -> Decimal:
    try:
        quantity = Decimal(raw or "0")
    except InvalidOperation:
        raise UnexpectedAnswer("a shipment with an unreadable quantity", repr(raw)) from None
    # Compared before anything converts it: int(Decimal("1e999999999")) would take hours.
    if not quantity.is_finite() or not 0 <= quantity <= MAX_ITEM_QUANTITY:
        raise UnexpectedAnswer("a shipment with an impossible quantity", repr(raw))
    return quantity


def shipped_line(item: ET.Element) -> ShippedLine:
    return ShippedLine(
        sku=child_text(item, "sku"),
        quantity=parse_quantity(child_text(item, "quantity_shipped")),
        carrier=child_text(item, "carrier"),
        service=child_text(item, "service"),
        service_code=child_text(item, "service_code"),
        tracking_number=child_text(item, "tracking_number"),
        carton_id=child_text(item, "carton_id"),
        line_number=child_text(item, "client_line_number"),
    )


def release_of(shipment: ET.Element) -> Release:
    """A ``shipment`` element as a Release; its ``ship_item`` elements are found anywhere
    below it, one or many."""
    return Release(
        client_order_number=child_text(shipment, "client_order_number"),
        dcd_order_number=child_text(shipment, "dcd_order_number"),
        release=child_text(shipment, "dcd_order_release_number"),
        order_status=child_text(shipment, "order_status"),
        ship_date=child_text(shipment, "ship_date"),
        lines=tuple(shipped_line(e) for e in shipment.iter() if local_name(e.tag) == "ship_item"),
    )


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def parse_shipments(source: Readable) -> Iterator[Release]:
    """Releases of a GET /shipment answer, read as a stream: each ``shipment`` is turned into a
    Release as soon as it is complete and then dropped from the tree, so a window with many
    thousands of shipments never sits in memory as a document.

    An empty ``<shipments/>`` yields nothing; an answer without a ``shipments`` element, or
    that is not well-formed, is an UnexpectedAnswer."""
    open_elements: list[ET.Element] = []
    seen_list = False
    try:
        for event, element in iterparse(source, events=("start", "end")):
            if event == "start":
                open_elements.append(element)
                seen_list = seen_list or local_name(element.tag) == "shipments"
                continue
            open_elements.pop()
            if local_name(element.tag) == "shipment":
                release = release_of(element)
                if open_elements:
                    open_elements[-1].remove(element)
                element.clear()
                yield release
    except (ET.ParseError, DefusedXmlException) as exc:
        raise UnexpectedAnswer(
            "a GET /shipment answer that is not readable XML", str(exc)
        ) from None
    if not seen_list:
        raise UnexpectedAnswer("XML without a <shipments> list to GET /shipment")


class ChunkReader:
    """A file-like ``read`` over an iterator of byte chunks (a streamed HTTP body)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1, /) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data
