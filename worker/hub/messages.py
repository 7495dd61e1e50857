"""The hub's message protocol: what arrives, and the answer we give back.

The hub's objects are typed here once, for every provider: the shipment, its addresses and items
as they arrive (``ShipmentReady``, ``ShipmentReference``, ``ShipmentChanges``), and the payloads
we send (``ConfirmedShipment`` for ``shipment:confirm``, ``ShipmentUpdate`` for
``shipment:update``).

Shapes follow the classic hub (``{"message_id", "message", "payload"}`` in, ``{"message_id",
"messages", "parameters", "notifications"}`` out). See ``shared/reference/hub-protocol.md``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from worker.hub.status import ShipmentStatus

Level = Literal["info", "warn", "error"]
MAX_NAME_LENGTH = 200
MAX_STORE_LENGTH = 100
# An item line's bounds: every provider's body carries a line's price and the shipment's total
# in cents, which these keep exact (a price of 1e30 cannot be rounded to cents in 28 digits).
MAX_ITEM_QUANTITY = 1_000_000
MAX_ITEM_PRICE = Decimal("999999999.99")


def text_problem(value: str, max_length: int) -> str | None:
    """What makes ``value`` unfit to name a message or a store, or None when it is fit.

    Such names end up in Redis keys, URLs and log lines. A control character forges a log line
    and makes a record no URL can read back; a format or separator character (U+202E, U+00A0)
    makes two names look alike; so does a leading or trailing space.
    """
    if not value:
        return "is empty"
    if len(value) > max_length:
        return f"is longer than {max_length} characters"
    if not value.isprintable():  # the whole string at once; then find the first culprit
        at, char = next((at, c) for at, c in enumerate(value) if not c.isprintable())
        return f"has a non-printable character U+{ord(char):04X} at position {at}"
    if value != value.strip():
        return "has leading or trailing whitespace"
    return None


def path_problem(message_id: str) -> str | None:
    """What keeps ``message_id`` from being read back under ``/messages/<integration>/<id>``.

    A '/' is fine, but an empty, '.' or '..' segment is not: servers redirect '//x' to '/x',
    and clients and proxies merge slashes and resolve dot segments, so such an id would be
    answered by another id's record.
    """
    if any(segment in ("", ".", "..") for segment in message_id.split("/")):
        return "has an empty, '.' or '..' segment between '/' characters"
    return None


def message_id_problem(value: str) -> str | None:
    """What makes ``value`` unfit as a message_id (printable, and readable back by its URL)."""
    return text_problem(value, MAX_NAME_LENGTH) or path_problem(value)


# A store name: ASCII letters, digits, '-', '_' and '.', starting with a letter or a digit. It
# goes into Redis keys (separated by ':'), the X-Hub-Store header of every push (HTTP headers
# carry Latin-1 at most) and log lines, where anything else could break or forge one.
STORE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
STORE_NAME_RULE = (
    "a store name holds only ASCII letters, digits, '-', '_' and '.', and starts with a letter "
    "or a digit"
)
_STORE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # the pattern, matched whole


def store_problem(value: str) -> str | None:
    """What makes ``value`` unfit to name a hub store (the X-Hub-Store header, ``?store=``,
    HUB_STORE), or None when it is fit (``STORE_NAME_RULE``, at most ``MAX_STORE_LENGTH``)."""
    if not value:
        return "is empty"
    if len(value) > MAX_STORE_LENGTH:
        return f"is longer than {MAX_STORE_LENGTH} characters"
    if _STORE_NAME.fullmatch(value):
        return None
    at, char = next(
        (at, c)
        for at, c in enumerate(value)
        if not (c.isascii() and (c.isalnum() or (at > 0 and c in "._-")))
    )
    shown = repr(char) if char.isascii() and char.isprintable() else f"U+{ord(char):04X}"
    return f"has a {shown} at position {at}: {STORE_NAME_RULE}"


def _printable_name(value: str) -> str:
    """Pydantic's hook for ``text_problem``: the problem becomes the field's error."""
    if problem := text_problem(value, MAX_NAME_LENGTH):
        raise PydanticCustomError("printable_text", problem)
    return value


def _routable_id(value: str) -> str:
    """Pydantic's hook for ``message_id_problem``: the problem becomes the field's error."""
    if problem := message_id_problem(value):
        raise PydanticCustomError("routable_id", problem)
    return value


# Field constraints say the length in pydantic's words; the validators add what they cannot.
MessageName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_printable_name)
]
MessageId = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_routable_id)
]


class Notification(BaseModel):
    level: Level
    subject: str
    description: str


class Parameter(BaseModel):
    name: str
    value: Any


class OutgoingMessage(BaseModel):
    """A message we hand to the hub, such as ``shipment:confirm``."""

    message: str
    payload: dict[str, Any]


class HubMessage(BaseModel):
    """A classic hub message as posted to a service."""

    model_config = ConfigDict(extra="allow")  # the hub may add keys; they are kept for logging

    message_id: MessageId
    message: MessageName
    payload: dict[str, Any]

    def without_parameters(self) -> tuple[dict[str, Any], list[Any]]:
        """The message without its parameters (kept apart, sealed: they hold credentials), and
        the parameters. A message is read from JSON, so its values are JSON's already."""
        body = {
            "message_id": self.message_id,
            "message": self.message,
            "payload": {k: v for k, v in self.payload.items() if k != "parameters"},
            **{k: v for k, v in (self.model_extra or {}).items() if k != "parameters"},
        }
        return body, self.raw_parameters()

    def raw_parameters(self) -> list[Any]:
        """The parameter list: ``payload.parameters`` (message_id era) or a top-level one."""
        listed = self.payload.get("parameters")
        if listed is None:
            listed = (self.model_extra or {}).get("parameters")
        return listed if isinstance(listed, list) else []


class Answer(BaseModel):
    """What a handler produces; pushed to the hub or returned when the hub waits."""

    message_id: str
    messages: list[OutgoingMessage] = Field(default_factory=list)
    parameters: list[Parameter] = Field(default_factory=list)
    notifications: list[Notification] = Field(default_factory=list)

    def add_message(self, message: str, payload: Mapping[str, Any]) -> Answer:
        self.messages.append(OutgoingMessage(message=message, payload=dict(payload)))
        return self

    def confirm(self, shipment: ConfirmedShipment) -> Answer:
        """``shipment:confirm``: the shipment has shipped."""
        return self.add_message("shipment:confirm", {"shipment": shipment.to_hub()})

    def update(self, shipment: ShipmentUpdate) -> Answer:
        """``shipment:update``: what the provider did with the shipment, and its status."""
        return self.add_message("shipment:update", {"shipment": shipment.to_hub()})

    def add_parameter(self, name: str, value: Any) -> Answer:
        self.parameters.append(Parameter(name=name, value=value))
        return self

    def notify(self, level: Level, subject: str, description: str | None = None) -> Answer:
        self.notifications.append(
            Notification(level=level, subject=subject, description=description or subject)
        )
        return self

    @property
    def failed(self) -> bool:
        return any(n.level == "error" for n in self.notifications)


def fold_parameters(raw: list[Any], integration: str) -> dict[str, Any]:
    """Fold the hub's name/value list into a mapping of bare names.

    The hub prefixes names with the integration (``dotcom.api_key``); the seed documents show them
    bare (``api_key``). Both map to ``api_key``; a prefixed name wins over a bare one.
    """
    prefix = f"{integration}."
    folded: dict[str, Any] = {}
    prefixed: dict[str, Any] = {}
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        name: str = item["name"]
        if name.startswith(prefix):
            prefixed[name.removeprefix(prefix)] = item.get("value")
        else:
            folded[name] = item.get("value")
    folded.update(prefixed)
    return folded


def qualify(integration: str, name: str) -> str:
    """The hub's name for one of our parameters: ``dotcom.last_polling_datetime``."""
    return name if name.startswith(f"{integration}.") else f"{integration}.{name}"


# ---------------------------------------------------------------------------------------------
# Hub objects: what arrives in payloads


# Refused in the hub's text, which is forwarded to providers: NUL and the other control
# characters but tab, line feed and carriage return; and the bidirectional controls, which make
# text read otherwise than it is written (U+202E shows "H1<U+202E>gpj.exe" as "H1exe.jpg").
CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
BIDI_CONTROLS = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
UNSAFE_TEXT = re.compile(f"[{CONTROLS}{BIDI_CONTROLS}]")
_CONTROL = re.compile(f"[{CONTROLS}]")
# The same rule in a hub model's JSON schema (the OpenAPI document), on each text property.
SAFE_TEXT_PATTERN = f"^[^{CONTROLS}{BIDI_CONTROLS}]*$"


def unsafe_text(value: Any, path: str) -> str | None:
    """The first text in ``value`` (a string, a hub model's declared fields, or lists of them)
    that holds a character of ``UNSAFE_TEXT``, named by its path from ``path`` (``payload.
    shipment.items.0.name``) with the character and where it is; None when there is none. Keys
    the hub adds beyond a model's fields are not read by any handler, and not looked at."""
    if isinstance(value, str):
        found = UNSAFE_TEXT.search(value)
        if found is None:
            return None
        char = found.group()
        kind = "a control character" if _CONTROL.match(char) else "a bidirectional control"
        return f"{path} has {kind} U+{ord(char):04X} at position {found.start()}"
    if isinstance(value, BaseModel):
        fields = (unsafe_text(getattr(value, n), f"{path}.{n}") for n in type(value).model_fields)
        return next(filter(None, fields), None)
    if isinstance(value, list | tuple):
        items = (unsafe_text(item, f"{path}.{at}") for at, item in enumerate(value))
        return next(filter(None, items), None)
    return None


def _safe_text_schema(schema: dict[str, Any]) -> None:
    """Each text property of a hub model's JSON schema says what the receiver refuses in it
    (``UNSAFE_TEXT``: 400 naming it)."""
    for prop in schema.get("properties", {}).values():
        for option in (prop, *prop.get("anyOf", ())):
            texts = option.get("items", {}) if option.get("type") == "array" else option
            if texts.get("type") == "string":
                texts.setdefault("pattern", SAFE_TEXT_PATTERN)


class HubModel(BaseModel):
    # The hub adds keys freely; numbers where text is expected (zipcode 20815) are taken as text.
    model_config = ConfigDict(
        extra="allow",
        coerce_numbers_to_str=True,
        str_strip_whitespace=True,
        json_schema_extra=_safe_text_schema,
    )

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers_as_text(cls, data: Any) -> Any:
        """A whole number where text is expected is written by its value, however the hub
        spelt it: ``variant_id`` 4123.0 is "4123", as 4123 is (not "4123.0"), so one shipment
        sent twice is the same shipment to every content comparison."""
        if not isinstance(data, dict):
            return data
        whole = {
            name: int(value)
            for name in _text_fields(cls)
            if type(value := data.get(name)) is float and value.is_integer()
        }
        return {**data, **whole} if whole else data


@functools.cache
def _text_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` that hold text (``str`` or ``str | None``)."""
    return tuple(
        name
        for name, info in model.model_fields.items()
        if info.annotation is str or set(get_args(info.annotation)) == {str, type(None)}
    )


class HubAddress(HubModel):
    firstname: str = Field(min_length=1)
    lastname: str = Field(min_length=1)
    company: str | None = None
    address1: str = Field(min_length=1)
    address2: str | None = None
    city: str = Field(min_length=1)
    state: str | None = None  # a name ("Maryland") or a code; required for US addresses
    zipcode: str = Field(min_length=1)
    country: str = Field(min_length=1)
    phone: str | None = None

    @property
    def name(self) -> str:
        return f"{self.firstname} {self.lastname}"


class HubItem(HubModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1, le=MAX_ITEM_QUANTITY)
    price: Decimal | None = Field(None, ge=0, le=MAX_ITEM_PRICE)
    variant_id: str | None = None
    name: str | None = None


class ShipmentTotals(HubModel):
    """A shipment's totals, where the hub gives them (the classic hub's ``totals``): only the
    tax is read; the rest is computed from the items and ``cost``."""

    tax: Decimal | None = Field(None, ge=0, le=MAX_ITEM_PRICE)


class HubShipment(HubModel):
    number: str = Field(min_length=1)
    order_number: str = Field(min_length=1)
    email: str | None = None
    shipping_method: str = Field(min_length=1)
    shipping_address: HubAddress
    billing_address: HubAddress | None = None
    items: list[HubItem] = Field(min_length=1)
    cost: Decimal | None = Field(None, ge=0, le=MAX_ITEM_PRICE)  # shipping and handling
    totals: ShipmentTotals | None = None

    @property
    def tax(self) -> Decimal:
        """The shipment's tax where the hub gives it, else 0."""
        return (self.totals.tax if self.totals else None) or Decimal(0)

    @property
    def value(self) -> Decimal:
        """What the items are worth (items without a price count as 0)."""
        return sum((i.price or Decimal(0)) * i.quantity for i in self.items) or Decimal(0)


class HubOrder(HubModel):
    billing_address: HubAddress | None = None


class ShipmentReady(HubModel):
    """``shipment:ready``: the shipment to send; the order may carry its billing address."""

    shipment: HubShipment
    order: HubOrder | None = None


class ShipmentNumber(HubModel):
    number: str = Field(min_length=1)


class ShipmentReference(HubModel):
    """A message about a shipment already sent (``shipment:cancel``, a retry, a get): only
    ``shipment.number`` is needed."""

    shipment: ShipmentNumber


class ShipmentChanges(HubModel):
    """A shipment as ``shipment:update`` carries it: its number, and whatever changed."""

    number: str = Field(min_length=1)
    email: str | None = None
    shipping_method: str | None = None
    shipping_address: HubAddress | None = None
    items: list[HubItem] | None = Field(None, min_length=1)


class ShipmentChanged(HubModel):
    """``shipment:update`` from the hub: change a shipment already sent."""

    shipment: ShipmentChanges


class ShippedItem(HubModel):
    """An item of a shipment the hub confirms; a channel's own ids ride as extra keys
    (``ecomdash_line_item_id``), declared by the channel's own model."""

    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1, le=MAX_ITEM_QUANTITY)


class ShippedCarton(HubModel):
    carton_id: str | None = None
    tracking_number: str | None = None


class ShippedShipment(HubModel):
    """A shipment as the hub's ``shipment:confirm`` carries it to a sales channel (the shape
    ``ConfirmedShipment`` sends). A channel subclasses it with the ids it needs, so a message
    without them is refused at intake naming the field."""

    number: str = Field(min_length=1)
    order_number: str | None = None
    tracking: str | None = None
    tracking_numbers: list[str] = Field(default_factory=list)
    tracking_url: str | None = None
    carrier: str | None = None
    service: str | None = None
    shipped_at: str | None = None
    items: list[ShippedItem] = Field(default_factory=list)
    cartons: list[ShippedCarton] = Field(default_factory=list)

    @property
    def all_tracking(self) -> list[str]:
        """Every tracking number, the first one first, none twice."""
        numbers = [*([self.tracking] if self.tracking else []), *self.tracking_numbers]
        numbers += [c.tracking_number for c in self.cartons if c.tracking_number]
        return list(dict.fromkeys(n.strip() for n in numbers if n and n.strip()))


class PollPayload(HubModel):
    """A poll: nothing in the payload besides the parameters."""


# ---------------------------------------------------------------------------------------------
# Hub objects: what we send


class OutgoingShipment(BaseModel):
    """Fields every provider fills the same way; a provider adds its own (``dotcom_release``)
    as extra keys."""

    model_config = ConfigDict(extra="allow")

    number: str
    order_number: str | None = None
    tracking: str | None = None  # the first tracking number
    tracking_numbers: list[str] = Field(default_factory=list)
    tracking_url: str | None = None
    carrier: str | None = None
    service: str | None = None

    def to_hub(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ConfirmedShipment(OutgoingShipment):
    """``shipment:confirm``: shipped, with its tracking."""

    status: Literal["shipped"] = "shipped"
    shipped_at: str | None = None  # ISO 8601 with offset
    carriers: list[str] = Field(default_factory=list)
    service_code: str | None = None
    shipping_method: str | None = None
    items: list[dict[str, Any]] = Field(default_factory=list)  # [{"sku", "quantity"}]
    cartons: list[dict[str, Any]] = Field(default_factory=list)


class ShipmentUpdate(OutgoingShipment):
    """``shipment:update``: where the shipment is, in the canonical status model
    (``worker.hub.status``), with the provider's own word beside it."""

    status: ShipmentStatus
    provider_status: str
    status_at: str | None = None  # when the provider says it happened (ISO 8601, UTC)
    sequence: int | None = None  # 1, 2, ... per shipment: a lower one than last seen is stale
    provider: str | None = None  # the integration's provider (the courier is ``carrier``)
    estimated_delivery_at: str | None = None
    note: str | None = None
