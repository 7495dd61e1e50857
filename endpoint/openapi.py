"""``GET /openapi.json``: the receiver's HTTP interface as an OpenAPI 3.1 document.

The document is generated, not written: each hub service's request body is the hub message
envelope (``worker.hub.messages.HubMessage``) with the payload model its handler validates with,
each webhook's body is the provider's event model, and the replies are the models of
``endpoint.shapes``. So it cannot drift from what the receiver takes and gives; ``tests/fuzz``
holds the receiver to it with schemathesis.

It is built once per process (per set of registered integrations) and holds no secret: no
token, no key, no configured URL.
"""

from __future__ import annotations

import inspect
from functools import cache, lru_cache
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import JsonSchemaMode, SkipJsonSchema, models_json_schema

from endpoint import listing, shapes
from endpoint.shapes import omitted
from worker.hub.messages import (
    MAX_NAME_LENGTH,
    MAX_STORE_LENGTH,
    STORE_NAME_PATTERN,
    STORE_NAME_RULE,
    HubMessage,
    MessageId,
    Parameter,
)
from worker.integrations import registry
from worker.integrations.registry import Handler, Integration, Service
from worker.integrations.webhooks import Webhook
from worker.store.schema import LISTED_STATES

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
MAX_WAIT_SECONDS = 180
TOKEN_SCHEMES = {"hubToken": "X-Hub-Token", "auguryToken": "X-Augury-Token"}
# Either token header lets a request in.
TOKEN = [{scheme: []} for scheme in TOKEN_SCHEMES]
OPERATIONS_TAG = "operations"
EXAMPLE_MESSAGE_ID = "51af1dc5fe53543f1200f519"

blueprint = Blueprint("openapi", __name__)


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document())


def document() -> dict[str, Any]:
    """The document for the integrations registered now (built once for them)."""
    return _build(tuple(registry.integrations()))


@lru_cache(maxsize=4)
def _build(names: tuple[str, ...]) -> dict[str, Any]:
    integrations = [registry.integrations()[name] for name in names]
    schemas = _Schemas(integrations)
    paths: dict[str, Any] = {}
    for integration in integrations:
        for service in integration.hub_services().values():
            paths[f"/{integration.name}/{service.name}"] = {
                "post": _hub_service(integration, service, schemas)
            }
        if integration.inbound is not None:
            paths[f"/webhooks/{integration.name}"] = {
                "post": _webhook(integration.inbound, schemas)
            }
    paths |= {
        "/messages/{integration}/{message_id}": {"get": _message_status()},
        "/messages/{integration}/{message_id}/replay": {"post": _replay_message()},
        "/deliveries/{integration}/{message_id}/replay": {"post": _replay_delivery()},
        "/dead": {"get": _dead()},
        "/messages": {"get": _in_states()},
        "/{integration}/endpoint.json": {"get": _discovery()},
        "/": {"get": _index()},
        "/healthz": {"get": _healthz()},
        "/metrics": {"get": _metrics()},
        "/auth": {"get": _auth()},
        "/openapi.json": {"get": _self()},
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": _info(),
        "tags": [
            {"name": OPERATIONS_TAG, "description": "Health, records, replays and discovery"},
            *({"name": i.name, "description": i.display} for i in integrations),
        ],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "responses": _shared_responses(),
            "parameters": _shared_parameters(names),
            "securitySchemes": {
                scheme: {
                    "type": "apiKey",
                    "in": "header",
                    "name": header,
                    "description": "The hub's token (ENDPOINT_KEY), compared in constant time",
                }
                for scheme, header in TOKEN_SCHEMES.items()
            },
        },
    }


def _info() -> dict[str, Any]:
    return {
        "title": "shiphub receiver",
        "version": "1",
        "description": (
            "The HTTP interface of shiphub's receiver: hub messages posted to "
            "`/<integration>/<service>`, providers' signed webhooks, records, replays and "
            "operations. Every body is JSON. Every refusal carries `notifications: [{level: "
            "error, subject, description}]` saying what is wrong; nothing refused is recorded. "
            "Routes marked with a security requirement take the hub's token in `X-Hub-Token` "
            "(or the older `X-Augury-Token`); a receiver started without `ENDPOINT_KEY` in "
            "insecure development mode (`bin/run`) takes them without one."
        ),
    }


# ---------------------------------------------------------------------------------------------
# Schemas: every model, generated at once so that names are unique across integrations


def _schema_name(*parts: str) -> str:
    words = [w for p in parts for w in p.replace(":", "_").replace(".", "_").split("_") if w]
    return "".join(w[:1].upper() + w[1:] for w in words)


@cache
def envelope(handler: Handler) -> type[HubMessage]:
    """The hub message envelope of one handler: ``HubMessage`` with its message type and its
    payload model (plus the parameters a message may carry), for the document only; the
    receiver validates with ``HubMessage`` and the payload model themselves."""
    model = create_model(
        _schema_name(handler.integration, handler.task_name.split(".", 1)[1], "message"),
        __base__=HubMessage,
        __doc__=(
            f"`{handler.message}` for {handler.integration}/{handler.service}: the hub's "
            "message envelope. Keys beyond these are kept (for logging) and otherwise ignored."
        ),
        message_id=(
            Annotated[
                MessageId,
                Field(
                    description=(
                        "The hub's id for this message: de-duplicates it (the same id with the "
                        f"same body is a duplicate, with another body a conflict). 1 to "
                        f"{MAX_NAME_LENGTH} printable characters, no leading or trailing space; "
                        "'/' is allowed, but not an empty, '.' or '..' segment between '/'"
                    ),
                    examples=[EXAMPLE_MESSAGE_ID],
                ),
            ],
            ...,
        ),
        message=(
            Literal[handler.message],  # type: ignore[valid-type]
            Field(description="The message type this service takes"),
        ),
        payload=(handler.payload, ...),
        parameters=(
            list[Parameter] | SkipJsonSchema[None],
            omitted("Parameters may also ride at the top level (older hubs)"),
        ),
    )
    return model


class _Schemas:
    """Every model's JSON schema, with pydantic's ``$defs`` moved to ``components/schemas``."""

    def __init__(self, integrations: list[Integration]) -> None:
        inputs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
            (shapes.CarriedParameters, "validation")
        ]
        for integration in integrations:
            inputs += [(envelope(h), "validation") for h in _hub_handlers(integration)]
            if integration.inbound is not None:
                inputs.append((integration.inbound.payload, "validation"))
        inputs += [(model, "serialization") for model in shapes.replies()]
        refs, top = models_json_schema(inputs, ref_template=REF_TEMPLATE)
        self._refs = refs
        self.components: dict[str, Any] = top.get("$defs", {})
        for model in shapes.replies():
            if self.ref(model) != _component(model):  # pydantic renamed it: a name collision
                raise RuntimeError(f"{model.__name__} is named {self.ref(model)} in the schemas")
        carried = self.ref(shapes.CarriedParameters, "validation")
        for integration in integrations:
            for handler in _hub_handlers(integration):
                self._carry_parameters(envelope(handler), handler, carried)

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        return dict(self._refs[(model, mode)])

    def _carry_parameters(
        self, model: type[BaseModel], handler: Handler, carried: dict[str, Any]
    ) -> None:
        """The payload is the handler's model, and may carry ``parameters`` besides (it is
        taken out before the payload is stored)."""
        name = self.ref(model, "validation")["$ref"].rsplit("/", 1)[1]
        properties = self.components[name]["properties"]
        properties["payload"] = {
            "allOf": [properties["payload"], carried],
            "description": f"What `{handler.message}` carries, with its parameters",
        }


def _hub_handlers(integration: Integration) -> list[Handler]:
    return [h for svc in integration.hub_services().values() for h in svc.handlers.values()]


# ---------------------------------------------------------------------------------------------
# Responses and parameters shared by the routes


def _json(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _error(description: str) -> dict[str, Any]:
    return _json(description, _component(shapes.ErrorReply))


def _component(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _shared(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{name}"}


def _shared_responses() -> dict[str, Any]:
    return {
        "Unauthorized": _error("X-Hub-Token (or X-Augury-Token) is missing or wrong"),
        "UnknownIntegration": _error("No such integration (the reply names the known ones)"),
        "Unavailable": _error(
            "Redis is unavailable: nothing was taken, or (if Redis failed after recording) it "
            "was recorded and is handled as usual; sending it again is safe"
        )
        | {
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                }
            }
        },
    }


def _shared_parameters(names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "Integration": {
            "name": "integration",
            "in": "path",
            "required": True,
            "description": "A registered integration",
            "schema": {"type": "string", "enum": list(names)},
        },
        "MessageId": {
            "name": "message_id",
            "in": "path",
            "required": True,
            "description": "The message's id (it may hold '/')",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
            "example": EXAMPLE_MESSAGE_ID,
        },
        "Wait": {
            "name": "X-Hub-Wait",
            "in": "header",
            "required": False,
            "description": (
                "Wait this many seconds for the answer (else HUB_WAIT_SECONDS); larger values "
                f"are taken as {MAX_WAIT_SECONDS}. Not a number, negative or infinite: 400"
            ),
            "schema": {"type": "number", "minimum": 0},
        },
        "Store": {
            "name": "X-Hub-Store",
            "in": "header",
            "required": False,
            "description": (
                "The hub store the message is for (else HUB_STORE): cursors and what handlers "
                f"keep are per store. At most {MAX_STORE_LENGTH} characters: {STORE_NAME_RULE}; "
                "else 400"
            ),
            "schema": {
                "type": "string",
                "maxLength": MAX_STORE_LENGTH,
                "pattern": STORE_NAME_PATTERN,
            },
        },
    }


def _parameter(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/parameters/{name}"}


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    tag: str = OPERATIONS_TAG,
    secured: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag], **extra}
    if secured:
        op["security"] = TOKEN
        responses = {**responses, "401": _shared("Unauthorized")}
    op["responses"] = dict(sorted(responses.items()))
    return op


# ---------------------------------------------------------------------------------------------
# The routes


def _index() -> dict[str, Any]:
    return _operation(
        "index",
        "The integrations and their discovery URLs",
        {"200": _json("The integrations", _component(shapes.Index))},
    )


def _self() -> dict[str, Any]:
    return _operation(
        "openapi",
        "This document",
        {"200": _json("The OpenAPI 3.1 document", {"type": "object"})},
    )


def _healthz() -> dict[str, Any]:
    health = _component(shapes.Health)
    return _operation(
        "healthz",
        "Whether Redis and the broker answer",
        {
            "200": _json("Both answer", health),
            "503": _json("One does not (named in `checks`)", health),
        },
    )


def _metrics() -> dict[str, Any]:
    return _operation(
        "metrics",
        "Prometheus metrics: counters and queue sizes",
        {
            "200": {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "503": _shared("Unavailable"),
        },
    )


def _auth() -> dict[str, Any]:
    return _operation(
        "auth",
        "Check the token",
        {"200": _json("The token is right", _component(shapes.AuthOk))},
        secured=True,
    )


def _discovery() -> dict[str, Any]:
    return _operation(
        "discovery",
        "The classic endpoint.json of an integration: its services, what they take and need",
        {
            "200": _json("The integration's discovery document", _component(shapes.Discovery)),
            "404": _shared("UnknownIntegration"),
        },
        parameters=[_parameter("Integration")],
    )


def _message_status() -> dict[str, Any]:
    return _operation(
        "message_status",
        "A message's record: status, attempts, timestamps, answer, delivery (never its body)",
        {
            "200": _json("The record", _component(shapes.RecordView)),
            "404": _error("No such integration, or no such message"),
            "503": _shared("Unavailable"),
        },
        secured=True,
        parameters=[_parameter("Integration"), _parameter("MessageId")],
    )


def _replay_message() -> dict[str, Any]:
    return _operation(
        "replay_message",
        "Handle a failed or dead message again (attempts and retry budget start over)",
        {
            "200": _json(
                "Queued again (or accepted: the watchdog publishes it shortly)",
                {"anyOf": [_component(shapes.Replayed), _component(shapes.Queued)]},
            ),
            "404": _shared("UnknownIntegration"),
            "409": _error("Not a failed or dead message (a succeeded one included)"),
            "503": _shared("Unavailable"),
        },
        secured=True,
        parameters=[_parameter("Integration"), _parameter("MessageId")],
    )


def _replay_delivery() -> dict[str, Any]:
    return _operation(
        "replay_delivery",
        "Push a dead delivery again (its retry budget starts over)",
        {
            "200": _json("Pending again", _component(shapes.DeliveryReplayed)),
            "404": _shared("UnknownIntegration"),
            "409": _error("Not a dead delivery"),
            "503": _shared("Unavailable"),
        },
        secured=True,
        parameters=[_parameter("Integration"), _parameter("MessageId")],
    )


def _dead() -> dict[str, Any]:
    return _operation(
        "dead",
        "Dead messages and dead deliveries (newest 100 each)",
        {
            "200": _json("The dead lists", _component(shapes.DeadList)),
            "503": _shared("Unavailable"),
        },
        secured=True,
    )


def _in_states() -> dict[str, Any]:
    states = "|".join(LISTED_STATES)
    return _operation(
        "messages_in_states",
        "Failed, dead or retrying messages, by integration and store, a page at a time",
        {
            "200": _json(
                "A page, newest in their state first, and where the next one starts",
                _component(shapes.MessageList),
            ),
            "400": _error("`status`, `store`, `limit` or `cursor` is not fit (named)"),
            "404": _shared("UnknownIntegration"),
            "503": _shared("Unavailable"),
        },
        secured=True,
        description=(
            "Each state has an index in Redis, kept in step with the record, so a page costs "
            "the same however much history is kept; an entry leaves when its record leaves "
            "the state or expires. A page may hold fewer than `limit` (a record that left its "
            "state meanwhile is left out): follow `next_cursor` until it is null."
        ),
        parameters=[
            {
                "name": "status",
                "in": "query",
                "required": False,
                "description": (
                    f"Comma separated, of {', '.join(LISTED_STATES)}; "
                    f"default {','.join(listing.DEFAULT_STATES)}"
                ),
                "schema": {
                    "type": "string",
                    "pattern": f"^({states})(,({states}))*$",
                    "maxLength": len(",".join(LISTED_STATES)),
                },
            },
            {
                "name": "integration",
                "in": "query",
                "required": False,
                "description": "Only this integration's messages",
                "schema": {
                    "type": "string",
                    "maxLength": MAX_NAME_LENGTH,
                    "pattern": "^[a-z0-9_]+$",
                },
            },
            {
                "name": "store",
                "in": "query",
                "required": False,
                "description": "Only this hub store's messages",
                "schema": {"type": "string", "maxLength": MAX_STORE_LENGTH, "pattern": "^[^:]*$"},
            },
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": f"At most this many (default {listing.DEFAULT_LIMIT})",
                "schema": {"type": "integer", "minimum": 1, "maximum": listing.MAX_LIMIT},
            },
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "The `next_cursor` of the page before",
                "schema": {
                    "type": "string",
                    "maxLength": listing.MAX_CURSOR_LENGTH,
                    "pattern": "^[A-Za-z0-9_-]*$",
                },
            },
        ],
    )


def _hub_service(integration: Integration, service: Service, schemas: _Schemas) -> dict[str, Any]:
    handlers = list(service.handlers.values())
    bodies = [schemas.ref(envelope(h), "validation") for h in handlers]
    takes = ", ".join(f"`{h.message}`" for h in handlers)
    return _operation(
        f"post_{integration.name}_{service.name}",
        f"{integration.display}: {service.name} ({takes})",
        {
            "200": _json(
                "Queued (recorded and queued, in one step); a duplicate (same id, same body) "
                "with its record; or, when the request waited and the message succeeded, its "
                "answer",
                {
                    "anyOf": [
                        _component(shapes.Queued),
                        _component(shapes.RecordReply),
                        _component(shapes.Finished),
                    ]
                },
            ),
            "202": _json(
                "The wait ran out, or too many requests were waiting: the record as it is; the "
                "answer is pushed (or read with GET /messages/...)",
                _component(shapes.RecordReply),
            ),
            "400": _error(
                "A body that cannot be read as sent; X-Hub-Wait or X-Hub-Store not fit; a "
                "message_id starting with `webhook:` (providers' events' own); text in the "
                "payload with a NUL, another control character (tab and line breaks are fine) "
                "or a bidirectional control, named by its path"
            ),
            "406": _error(
                "Not a hub message: not JSON, not an object, missing or unfit message_id, "
                "message or payload, a number too long or not finite, nesting over 64 levels, "
                "a lone surrogate"
            ),
            "409": _error("This message_id was already received with a different body"),
            "413": _error("The body is over MAX_BODY_BYTES"),
            "422": _error(
                "A message type the service does not take, or a payload that fails its "
                "schema: one notification per failing field (`payload.shipment.items: Field "
                "required`)"
            ),
            "500": _json(
                "The request waited and the message failed (the provider refused, or retries "
                "ran out): the answer with its error notifications",
                _component(shapes.Finished),
            ),
            "503": _shared("Unavailable"),
        },
        tag=integration.name,
        secured=True,
        description=_service_description(service, handlers),
        parameters=[_parameter("Wait"), _parameter("Store")],
        requestBody={
            "required": True,
            "content": {
                "application/json": {
                    "schema": bodies[0] if len(bodies) == 1 else {"oneOf": bodies},
                }
            },
        },
    )


def _service_description(service: Service, handlers: list[Handler]) -> str:
    lines = [service.description or service.name, ""]
    lines.append("Takes " + ", ".join(f"`{h.message}`" for h in handlers) + ".")
    if service.requires:
        lines.append(
            "Parameters (in the message, else the stored cursor, else the environment): "
            + ", ".join(f"`{r.name}` ({r.description})" for r in service.requires)
            + "."
        )
    if service.schedule:
        lines.append(f"Polled every {service.schedule.count} {service.schedule.interval}.")
    return "\n".join(lines)


def signature_header(hook: Webhook) -> str | None:
    """The header a webhook's verifier reads its signature from (``hex_hmac_sha256`` keeps it
    in its closure), or None when the verifier does not say."""
    header = inspect.getclosurevars(hook.verify).nonlocals.get("header")
    return header if isinstance(header, str) else None


def _webhook(hook: Webhook, schemas: _Schemas) -> dict[str, Any]:
    header = signature_header(hook)
    parameters: list[dict[str, Any]] = [
        {
            "name": "store",
            "in": "query",
            "required": False,
            "description": (
                "The hub store the events are for (else HUB_STORE), as X-Hub-Store; the event "
                "must be signed with that store's webhook secret"
            ),
            "schema": {
                "type": "string",
                "maxLength": MAX_STORE_LENGTH,
                "pattern": STORE_NAME_PATTERN,
            },
        }
    ]
    if header is not None:
        parameters.insert(
            0,
            {
                "name": header,
                "in": "header",
                "required": True,
                "description": "The provider's hex HMAC-SHA256 of the raw body",
                "schema": {"type": "string"},
            },
        )
    return _operation(
        f"webhook_{hook.integration}",
        f"The provider's signed event, taken as `{hook.message}`",
        {
            "200": _json(
                "Taken: queued, or a duplicate of an event already taken",
                _component(shapes.EventTaken),
            ),
            "400": _error("Not JSON, not an object, or `store` is not fit"),
            "401": _error(
                "The signature is missing, or does not match under the secret of the store the "
                "event is posted for (each store's events are verified with its own secret "
                "only), or that store has no webhook secret"
            ),
            "413": _error(
                "The body is over WEBHOOK_MAX_BODY_BYTES (refused before it is verified)"
            ),
            "422": _error("The event lacks what the integration needs: one per failing field"),
            "503": _shared("Unavailable"),
        },
        tag=hook.integration,
        description=(
            "The signature is checked over the raw body first, in constant time; then the event "
            "is recorded and handled like a hub message, its answer pushed to the hub."
        ),
        parameters=parameters,
        requestBody={
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(hook.payload, "validation")}},
        },
    )
