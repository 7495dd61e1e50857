"""The hub's message protocol: what arrives, and the answer we give back.

Shapes follow the classic hub (``{"message_id", "message", "payload"}`` in, ``{"message_id",
"messages", "parameters", "notifications"}`` out). See ``shared/reference/hub-protocol.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

Level = Literal["info", "warn", "error"]
MAX_NAME_LENGTH = 200
MAX_STORE_LENGTH = 100


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
    odd = next(((at, c) for at, c in enumerate(value) if not c.isprintable()), None)
    if odd is not None:
        at, char = odd
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


def store_problem(value: str) -> str | None:
    """What makes ``value`` unfit to name a hub store (the X-Hub-Store header, HUB_STORE), or
    None when it is fit.

    A store is a part of Redis keys (``memory:<integration>:<store>:<kind>:<name>``): a ':' in
    it could make one store's key equal another's.
    """
    problem = text_problem(value, MAX_STORE_LENGTH)
    if problem is None and ":" in value:
        problem = "has a ':' (stores are parts of keys separated by ':')"
    return problem


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
        """The message as JSON without its parameters (kept apart, sealed: they hold
        credentials), and the parameters."""
        body = self.model_dump(mode="json")
        parameters = self.raw_parameters()
        body["payload"] = {k: v for k, v in body["payload"].items() if k != "parameters"}
        body.pop("parameters", None)
        return body, parameters

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
