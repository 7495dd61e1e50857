"""``GET /openapi.json``: the document lists every route, takes its schemas from the models the
receiver validates with, is valid OpenAPI 3.1, and describes the replies the receiver gives.

Fast: the receiver over fakeredis (``tests/conftest.py``). ``tests/fuzz`` holds the real
receiver to the document with thousands of generated requests."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from flask.testing import FlaskClient

from endpoint.openapi import REF_TEMPLATE, document, envelope
from tests.conftest import ENDPOINT_KEY, auth, settle, unit_settings
from worker.integrations import registry
from worker.store.bundle import Store

# Every keyword a schema object here may use (JSON Schema 2020-12 and OpenAPI's own): a key
# outside it is a generator's private word that validators and clients silently ignore.
KEYWORDS = {
    *("$ref", "$defs", "type", "properties", "required", "additionalProperties", "items"),
    *("prefixItems", "anyOf", "allOf", "oneOf", "not", "enum", "const", "title", "description"),
    *("default", "examples", "format", "pattern", "minLength", "maxLength", "minimum"),
    *("maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems"),
    *("uniqueItems", "minProperties", "maxProperties", "propertyNames", "patternProperties"),
    *("discriminator", "deprecated", "readOnly", "writeOnly"),
}
SCHEMA_MAPS = {"properties", "patternProperties", "$defs"}
ONE_SCHEMA = {"items", "additionalProperties", "not", "propertyNames"}
SCHEMA_LISTS = {"anyOf", "allOf", "oneOf", "prefixItems"}


@pytest.fixture
def doc(client: FlaskClient) -> dict[str, Any]:
    """The document as served (the ``client`` fixture registered the test integration too)."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.json


def hub_routes() -> list[tuple[str, str]]:
    return [(i.name, s) for i in registry.integrations().values() for s in i.hub_services()]


def reply_schema(doc: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    """The JSON schema the document gives for one reply, resolvable on its own."""
    reply = doc["paths"][path][method]["responses"][str(status)]
    if "$ref" in reply:
        reply = doc["components"]["responses"][reply["$ref"].rsplit("/", 1)[1]]
    return {**reply["content"]["application/json"]["schema"], "components": doc["components"]}


def assert_documented(doc: dict[str, Any], path: str, method: str, response: Any) -> dict[str, Any]:
    body = response.json
    jsonschema_rs.validate(reply_schema(doc, path, method, response.status_code), body)
    return body


def unknown_keywords(schema: Any, at: str) -> list[str]:
    if not isinstance(schema, dict):
        return []
    found = [f"{at}/{key}" for key in schema if key not in KEYWORDS]
    for key, value in schema.items():
        if key in SCHEMA_MAPS:
            for name, sub in value.items():
                found += unknown_keywords(sub, f"{at}/{key}/{name}")
        elif key in ONE_SCHEMA:
            found += unknown_keywords(value, f"{at}/{key}")
        elif key in SCHEMA_LISTS:
            for index, sub in enumerate(value):
                found += unknown_keywords(sub, f"{at}/{key}/{index}")
    return found


# -- what it lists ---------------------------------------------------------------------------
def test_every_hub_service_of_every_integration_is_a_post_route(doc: dict[str, Any]) -> None:
    routes = hub_routes()
    assert ("acme", "send_order") in routes and ("dotcom", "send_shipment") in routes

    for integration, service in routes:
        operation = doc["paths"][f"/{integration}/{service}"]["post"]
        assert operation["security"] == [{"hubToken": []}, {"auguryToken": []}]
        assert {"200", "202", "400", "401", "406", "409", "413", "422", "500", "503"} == set(
            operation["responses"]
        )
    posted = {p for p, ops in doc["paths"].items() if "post" in ops and p.count("/") == 2}
    assert posted - {f"/{i}/{s}" for i, s in routes} == {"/webhooks/shipping_orders"}


def test_webhooks_are_listed_for_the_integrations_that_take_them(doc: dict[str, Any]) -> None:
    hooks = {i.name for i in registry.integrations().values() if i.inbound is not None}
    assert hooks == {"shipping_orders"}
    assert {p for p in doc["paths"] if p.startswith("/webhooks/")} == {"/webhooks/shipping_orders"}
    assert "/shipping_orders/webhook" not in doc["paths"]  # the webhook's service is not the hub's

    operation = doc["paths"]["/webhooks/shipping_orders"]["post"]
    assert "security" not in operation  # signed by the provider, not the hub's token
    header = next(p for p in operation["parameters"] if p["in"] == "header")
    assert (header["name"], header["required"]) == ("X-DS-Signature", True)
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": REF_TEMPLATE.format(model="ApiOrder")}


def test_operations_routes_are_listed_with_their_token_and_headers(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    secured = {
        ("/messages/{integration}/{message_id}", "get"),
        ("/messages/{integration}/{message_id}/replay", "post"),
        ("/deliveries/{integration}/{message_id}/replay", "post"),
        ("/dead", "get"),
        ("/messages", "get"),
        ("/auth", "get"),
    }
    public = {
        ("/", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/{integration}/endpoint.json", "get"),
        ("/openapi.json", "get"),
    }
    for path, method in secured:
        assert paths[path][method]["security"] == [{"hubToken": []}, {"auguryToken": []}]
        assert paths[path][method]["responses"]["401"]
    for path, method in public:
        assert "security" not in paths[path][method]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["hubToken"] == schemes["hubToken"] | {"type": "apiKey", "in": "header"}
    assert schemes["hubToken"]["name"] == "X-Hub-Token"
    headers = {p["name"] for p in doc["components"]["parameters"].values() if p["in"] == "header"}
    assert headers == {"X-Hub-Wait", "X-Hub-Store"}
    metrics = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    unavailable = doc["components"]["responses"]["Unavailable"]
    assert unavailable["headers"]["Retry-After"]["required"] is True
    integrations = doc["components"]["parameters"]["Integration"]["schema"]["enum"]
    assert integrations == list(registry.integrations())


# -- where its schemas come from ---------------------------------------------------------------
def test_request_bodies_are_the_envelope_with_each_handlers_payload_model(
    doc: dict[str, Any],
) -> None:
    schemas = doc["components"]["schemas"]
    for integration, service in hub_routes():
        handlers = list(registry.integrations()[integration].services[service].handlers.values())
        body = doc["paths"][f"/{integration}/{service}"]["post"]["requestBody"]
        ref = body["content"]["application/json"]["schema"]["$ref"]
        message = schemas[ref.rsplit("/", 1)[1]]
        assert len(handlers) == 1
        handler = handlers[0]
        assert message["properties"]["message"]["const"] == handler.message
        assert set(message["required"]) == {"message_id", "message", "payload"}
        payload_ref = message["properties"]["payload"]["allOf"][0]["$ref"]
        generated = handler.payload.model_json_schema(ref_template=REF_TEMPLATE)
        defs = generated.pop("$defs", {})
        assert schemas[payload_ref.rsplit("/", 1)[1]] == generated
        for name, schema in defs.items():
            assert schemas[name] == schema, name


def test_the_envelope_validates_like_the_receiver(doc: dict[str, Any]) -> None:
    handler = registry.integrations()["acme"].handler("order:ready")
    assert handler is not None
    model = envelope(handler)
    ok = {"message_id": "m-1", "message": "order:ready", "payload": {"order": {"number": "H1"}}}

    assert model.model_validate(ok).message_id == "m-1"
    for bad in ({"message_id": "a//b"}, {"message": "order:cancel"}, {"payload": {}}):
        with pytest.raises(ValueError):
            model.model_validate({**ok, **bad})


def test_schemas_use_only_json_schema_keywords(doc: dict[str, Any]) -> None:
    for name, schema in doc["components"]["schemas"].items():
        assert unknown_keywords(schema, name) == []
        jsonschema_rs.meta.validate(schema)


# -- validity, caching, secrets ----------------------------------------------------------------
def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(doc).validate()

    broken = copy.deepcopy(doc)
    broken["components"]["securitySchemes"]["hubToken"]["in"] = "body"
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(broken).validate()


def test_it_is_built_once_per_process(client: FlaskClient) -> None:
    assert document() is document()
    assert client.get("/openapi.json").json == document()


def test_it_holds_no_secret(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPPING_ORDERS_WEBHOOK_SECRET", "webhook-secret-value")
    text = client.get("/openapi.json").get_data(as_text=True)
    secrets = (ENDPOINT_KEY, unit_settings().shiphub_secret_key, "webhook-secret-value")

    for secret in secrets:
        value = getattr(secret, "get_secret_value", lambda s=secret: s)()
        assert value not in text


def test_it_is_served_without_a_token(client: FlaskClient) -> None:
    assert client.get("/openapi.json", headers={"X-Hub-Token": "wrong"}).status_code == 200


# -- the replies it describes are the replies given ----------------------------------------------
def test_hub_message_replies_match_the_document(doc: dict[str, Any], client: FlaskClient) -> None:
    path = "/acme/send_order"
    message = {"message_id": "o-1", "message": "order:ready", "payload": {"order": {"number": "1"}}}

    def post(body: Any, **headers: str) -> Any:
        data = body if isinstance(body, str) else json.dumps(body)
        return client.post(path, data=data, headers=auth(**headers))

    queued = assert_documented(doc, path, "post", post(message))
    duplicate = assert_documented(doc, path, "post", post(message))
    conflict = post({**message, "payload": {"order": {"number": "2"}}})
    invalid = post({**message, "message_id": "o-2", "payload": {"order": {}}})
    cases = {
        406: post("{not json"),
        422: invalid,
        409: conflict,
        400: post(message, **{"X-Hub-Wait": "soon"}),
        202: post({**message, "message_id": "o-3"}, **{"X-Hub-Wait": "0.05"}),
        401: client.post(path, json=message, headers={"X-Hub-Token": "wrong"}),
    }
    for status, response in cases.items():
        assert response.status_code == status
        assert_documented(doc, path, "post", response)
    assert (queued["status"], duplicate["status"]) == ("queued", "queued")
    assert duplicate["record"]["message_id"] == "o-1"
    assert invalid.json["notifications"][0]["subject"] == "Invalid payload.order.number"


def test_operations_replies_match_the_document(
    doc: dict[str, Any], client: FlaskClient, db: Store
) -> None:
    for message_id in ("r-1", "r-2"):
        order = {"message": "order:ready", "payload": {"order": {"number": message_id}}}
        client.post("/acme/send_order", json={"message_id": message_id, **order}, headers=auth())
    settle(db, "r-2", "failed", error="refused")
    calls = [
        ("/", "get", "/", 200),
        ("/auth", "get", "/auth", 200),
        ("/{integration}/endpoint.json", "get", "/acme/endpoint.json", 200),
        ("/{integration}/endpoint.json", "get", "/nope/endpoint.json", 404),
        ("/messages/{integration}/{message_id}", "get", "/messages/acme/r-1", 200),
        ("/messages/{integration}/{message_id}", "get", "/messages/acme/nope", 404),
        ("/messages/{integration}/{message_id}/replay", "post", "/messages/acme/r-1/replay", 409),
        (
            "/deliveries/{integration}/{message_id}/replay",
            "post",
            "/deliveries/acme/r-1/replay",
            409,
        ),
        ("/dead", "get", "/dead", 200),
        ("/messages", "get", "/messages?status=failed,dead,retrying&integration=acme&limit=1", 200),
        ("/messages", "get", "/messages?status=lost", 400),
        ("/messages", "get", "/messages?integration=nope", 404),
    ]
    for template, method, url, status in calls:
        response = client.open(url, method=method.upper(), headers={"X-Hub-Token": ENDPOINT_KEY})
        assert response.status_code == status, url
        assert_documented(doc, template, method, response)
    listed = client.get("/messages?status=failed", headers=auth()).json
    assert [row["message_id"] for row in listed["messages"]] == ["r-2"]


GUNICORN_REQUEST_LINE = 4094  # gunicorn's limit_request_line default: longer is a 414 in HTML


def _worst_query_bytes(parameter: dict[str, Any]) -> int:
    """The longest ``name=value&`` a client may send within the parameter's schema: a character
    outside ASCII is up to four bytes of UTF-8, each percent-encoded in three."""
    schema = parameter["schema"]
    if schema.get("type") == "integer":
        return len(parameter["name"]) + 2 + len(str(schema.get("maximum", 10**20)))
    assert "maxLength" in schema, f"{parameter['name']} has no maxLength"
    pattern = schema.get("pattern", "[^]")
    if re.fullmatch(r"\^\[[A-Za-z0-9_\-]+\][*+]\$", pattern):
        per_character = 1  # only characters a URL carries as they are (RFC 3986 unreserved)
    elif "[^" not in pattern and "." not in pattern:
        per_character = 3  # ASCII, perhaps percent-encoded
    else:
        per_character = 12
    return len(parameter["name"]) + 2 + schema["maxLength"] * per_character


def test_every_query_the_document_allows_fits_the_servers_request_line(
    doc: dict[str, Any],
) -> None:
    """A query within the document never meets gunicorn's 414 (an HTML page no schema names)."""
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
            if query:
                longest = len(f"{method.upper()} {path}? HTTP/1.1") + sum(
                    _worst_query_bytes(p) for p in query
                )
                assert longest <= GUNICORN_REQUEST_LINE, (path, method, longest)
