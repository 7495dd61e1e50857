"""The shapes of the receiver's replies, as pydantic models, for ``GET /openapi.json``.

``endpoint/replies.py`` and ``endpoint/app.py`` build their replies as plain dictionaries; these
models describe them, field by field, so that the document says what a client really gets and
a schema check (``tests/fuzz``) can hold every reply to it. Top-level replies forbid keys they do
not list: a reply that grows a key must grow its shape too. What the receiver only passes on (a
handler's answer, a record's timestamps) is typed with the models it comes from.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from worker.hub.messages import Answer, Notification, OutgoingMessage, Parameter
from worker.store.schema import Status

DeliveryStatus = Literal["pending", "delivered", "dead"]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omitted(description: str) -> Any:
    """A key the reply leaves out rather than setting to null: not required, and without the
    ``"default": null`` its type would not allow."""
    return Field(None, description=description, json_schema_extra=_no_default)


class Reply(BaseModel):
    """A top-level reply: no key beyond those listed."""

    model_config = ConfigDict(extra="forbid")


class ErrorReply(Reply):
    """Every refusal: what is wrong, as error notifications (one per failing field for a
    payload that fails its schema)."""

    message_id: str | SkipJsonSchema[None] = omitted(
        "The message's id, when the refused body carried one fit to echo"
    )
    notifications: list[Notification] = Field(min_length=1)


class Queued(Reply):
    """``queued``: recorded in Redis and queued (a new message: both in one step; a replay:
    reset, then published); ``accepted``, only for a replay: reset, but the broker did not take
    it yet (the watchdog publishes it within about a minute). Either way the message is kept;
    posting it again is safe."""

    message_id: str
    status: Literal["queued", "accepted"]
    notifications: list[Notification]


class DeliveryView(BaseModel):
    """The push of a message's answer to the hub."""

    status: DeliveryStatus
    attempts: int = Field(ge=0)
    last_error: str | None
    next_attempt_at: str | None = Field(description="ISO 8601, while the delivery is pending")
    delivered_at: str | None


class RecordView(Reply):
    """A message's record as the hub and operators see it: never its body or parameters."""

    integration: str
    message_id: str
    message: str | None = Field(description="The message type, e.g. shipment:ready")
    service: str | None
    status: Status
    attempts: int = Field(ge=0)
    replays: int = Field(ge=0)
    received_at: str | None = Field(description="ISO 8601 with milliseconds, UTC")
    started_at: str | None
    finished_at: str | None
    next_attempt_at: str | None = Field(description="When the next attempt is due (retrying)")
    last_error: str | None = Field(
        description="The error of the current run: why it is retrying, failed or dead; none "
        "once it succeeded"
    )
    earlier_error: str | None = Field(
        description="The last error before the message succeeded or was replayed (history)"
    )
    answer: Answer | None = Field(description="The handler's answer, once it finished")
    delivery: DeliveryView | SkipJsonSchema[None] = omitted(
        "Present when the answer is pushed to the hub (HUB_PUSH_URL)"
    )


class RecordReply(Reply):
    """A message already received (200, a duplicate: not queued again), or still running when
    the wait ran out (202): its record, with its answer once finished."""

    message_id: str
    status: Status
    notifications: list[Notification]
    record: RecordView


class Finished(Reply):
    """The classic answer, given when the request waited (``X-Hub-Wait``) and the message
    finished: 200 when it succeeded, 500 with error notifications when the provider refused or
    the retries ran out."""

    message_id: str
    messages: list[OutgoingMessage]
    parameters: list[Parameter]
    notifications: list[Notification]


class EventTaken(Reply):
    """A provider's event, taken: ``queued`` when new, ``duplicate`` when the same event was
    taken before (the provider re-sent it)."""

    message_id: str = Field(description="webhook:<store>:<event key>")
    status: Literal["queued", "duplicate"]


class Replayed(Reply):
    """A failed or dead message queued again."""

    message_id: str
    status: Literal["queued"]


class DeliveryReplayed(Reply):
    """A dead delivery made pending again: its answer is pushed soon."""

    message_id: str
    delivery: Literal["pending"]


class DeadEntry(Reply):
    integration: str
    message_id: str
    since: float = Field(description="When it went dead (epoch seconds)")


class DeadList(Reply):
    """Dead messages and dead deliveries, newest first (100 each at most)."""

    messages: list[DeadEntry]
    deliveries: list[DeadEntry]


class ListedMessage(Reply):
    """A message in a state an operator looks for: its record (never its body, parameters or
    answer: ``GET /messages/<integration>/<message_id>`` has it), its store and since when."""

    integration: str
    message_id: str
    store: str
    status: Literal["failed", "dead", "retrying"]
    since: str = Field(description="When it entered this status (ISO 8601, UTC)")
    message: str | None = Field(description="The message type, e.g. shipment:ready")
    service: str | None
    attempts: int = Field(ge=0)
    replays: int = Field(ge=0)
    received_at: str | None
    finished_at: str | None
    next_attempt_at: str | None = Field(description="When the next attempt is due (retrying)")
    last_error: str | None


class MessageList(Reply):
    """A page of failed, dead or retrying messages, newest in their state first."""

    messages: list[ListedMessage]
    next_cursor: str | None = Field(
        description="Give it as `cursor` for the next page; null: this is the last page"
    )


class Health(Reply):
    """``ok`` when Redis and the broker answer; else which one failed (503)."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description='"redis" and "broker": "ok" or why not')


class AuthOk(Reply):
    status: Literal["ok"]


class IntegrationLink(Reply):
    name: str
    display: str
    endpoint: str = Field(description="The path of its endpoint.json")


class Index(Reply):
    name: Literal["shiphub"]
    integrations: list[IntegrationLink]


class RequiredParameter(Reply):
    name: str
    description: str
    data_type: str


class Requires(Reply):
    parameters: list[RequiredParameter]


class Schedule(Reply):
    count: int
    interval: Literal["minutes", "hours", "days"]


class Recommends(Reply):
    messages: list[str]
    schedule: Schedule | SkipJsonSchema[None] = omitted("For a polling service: how often")


class ServiceInfo(Reply):
    name: str
    path: str
    description: str
    requires: Requires
    recommends: Recommends


class Discovery(Reply):
    """The classic ``endpoint.json``: an integration and the services the hub may post to."""

    name: str
    display: str
    description: str
    services: list[ServiceInfo]


class CarriedParameters(BaseModel):
    """Parameters a hub message carries (credentials, polling cursors), in its payload or at its
    top level: names bare (``api_key``) or prefixed with the integration (``dotcom.api_key``; a
    prefixed name wins). Stored sealed, apart from the body, and never shown back."""

    model_config = ConfigDict(extra="allow")

    parameters: list[Parameter] | SkipJsonSchema[None] = omitted("``{name, value}`` pairs")


def replies() -> list[type[BaseModel]]:
    """Every reply model, for the document's components."""
    return [
        ErrorReply,
        Queued,
        RecordReply,
        RecordView,
        Finished,
        EventTaken,
        Replayed,
        DeliveryReplayed,
        DeadList,
        MessageList,
        Health,
        AuthOk,
        Index,
        Discovery,
    ]
