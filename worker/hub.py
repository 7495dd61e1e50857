"""The hub's message protocol: what arrives, and the answer we give back.

Shapes follow the classic hub (``{"message_id", "message", "payload"}`` in, ``{"message_id",
"messages", "parameters", "notifications"}`` out). See ``shared/reference/hub-protocol.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["info", "warn", "error"]


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

    message_id: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any]

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
