"""The receiver's HTTP protocol, every status code, through the Flask test client.

Redis is fakeredis here: a new message's task is pushed onto its queue's list in the records'
Redis, where these tests read it; replays go through a recording stand-in for Celery's publish.
The same paths run against real redis-server, gunicorn and Celery in tests/pipeline."""

from __future__ import annotations

import io
import json
from typing import Any

import fakeredis
import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from endpoint.app import create_app
from tests.conftest import ENDPOINT_KEY, Publisher, auth, settle, unit_settings
from worker.basics.sealing import sealer
from worker.basics.settings import Settings
from worker.hub.messages import HubMessage
from worker.pipeline.intake import earlier_fingerprint
from worker.store.bundle import Store
from worker.store.schema import record_key


def order(message_id: str = "m-1", number: str = "H1", **extra: Any) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "message": "order:ready",
        "payload": {"order": {"number": number, "quantity": 1}},
        **extra,
    }


def post(client: FlaskClient, body: Any, path: str = "/acme/send_order", **headers: str) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data=data, headers=auth(**headers), content_type="application/json")


def errors(response: Any) -> list[str]:
    return [n["description"] for n in response.json["notifications"] if n["level"] == "error"]


# -- 401 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"X-Hub-Token": "wrong"}, {"X-Hub-Token": ""}])
def test_missing_or_wrong_token_is_401_before_the_body_is_read(
    client: FlaskClient, publisher: Publisher, headers: dict[str, str]
) -> None:
    response = client.post("/acme/send_order", data="not json at all", headers=headers)

    assert response.status_code == 401
    assert response.json["notifications"][0]["level"] == "error"
    assert publisher.published == []


def test_the_older_augury_token_header_is_accepted(client: FlaskClient) -> None:
    response = client.post(
        "/acme/send_order", json=order(), headers={"X-Augury-Token": ENDPOINT_KEY}
    )

    assert response.status_code == 200


def test_auth_endpoint_checks_the_token(client: FlaskClient) -> None:
    assert client.get("/auth", headers=auth()).status_code == 200
    assert client.get("/auth", headers={"X-Hub-Token": "nope"}).status_code == 401


def test_no_endpoint_key_refuses_to_start_unless_insecure_dev_is_explicit(
    db: Store, publisher: Publisher
) -> None:
    with pytest.raises(SystemExit, match="ENDPOINT_KEY"):
        create_app(unit_settings(endpoint_key=None), db, publisher)

    app = create_app(unit_settings(endpoint_key=None, shiphub_insecure_dev=True), db, publisher)
    assert app.test_client().post("/acme/send_order", json=order()).status_code == 200


# -- 404 ---------------------------------------------------------------------------------------
def test_unknown_integration_is_404_naming_the_known_ones(client: FlaskClient) -> None:
    response = post(client, order(), path="/nope/send_order")

    assert response.status_code == 404
    assert "acme" in errors(response)[0]


def test_unknown_service_is_404_naming_the_services(client: FlaskClient) -> None:
    response = post(client, order(), path="/acme/nope")

    assert response.status_code == 404
    assert "send_order" in errors(response)[0]


# -- 406 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("", "empty"),
        ("[1, 2]", "JSON list"),
        ('"text"', "JSON str"),
        ('{"message_id": "m", "message": "order:ready"}', "Missing payload"),
        ('{"payload": {}}', "Missing message_id, message"),
        ('{"message_id": "m", "message": "order:ready", "payload": []}', "payload"),
        ('{"message_id": 5, "message": "order:ready", "payload": {}}', "message_id"),
    ],
)
def test_body_that_is_not_a_hub_message_is_406_saying_why(
    client: FlaskClient, publisher: Publisher, body: str, expected: str
) -> None:
    response = post(client, body)

    assert response.status_code == 406
    assert expected in errors(response)[0]
    assert publisher.published == []


def test_406_carries_the_message_id_when_it_is_known(client: FlaskClient) -> None:
    response = post(client, '{"message_id": "m-406", "message": "order:ready"}')

    assert response.status_code == 406
    assert response.json["message_id"] == "m-406"


def test_body_nested_too_deeply_is_406_not_a_crash(client: FlaskClient) -> None:
    response = post(client, "[" * 2000 + "]" * 2000)

    assert response.status_code == 406
    assert "nested too deeply" in errors(response)[0]


def test_invalid_store_header_is_400(client: FlaskClient, publisher: Publisher) -> None:
    response = post(client, order(), **{"X-Hub-Store": "s" * 101})

    assert response.status_code == 400
    assert "X-Hub-Store" in errors(response)[0]
    assert publisher.published == []


def test_body_that_is_not_utf8_is_406(client: FlaskClient) -> None:
    assert post(client, b"\xff\xfe{}").status_code == 406


# -- 413 ---------------------------------------------------------------------------------------
def test_body_over_the_limit_is_413(client: FlaskClient, publisher: Publisher) -> None:
    big = order(padding="x" * 5000)

    response = post(client, big)

    assert response.status_code == 413
    assert "4096" in errors(response)[0]
    assert publisher.published == []


def test_chunked_body_over_the_limit_is_413(client: FlaskClient, publisher: Publisher) -> None:
    data = json.dumps(order(padding="x" * 5000)).encode()
    response = client.post(
        "/acme/send_order",
        input_stream=io.BytesIO(data),
        headers={**auth(), "Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},  # as a server that de-chunks
    )

    assert response.status_code == 413
    assert publisher.published == []


# -- 422 ---------------------------------------------------------------------------------------
def test_message_the_service_does_not_take_is_422_naming_what_it_takes(client: FlaskClient) -> None:
    response = post(client, {**order(), "message": "shipment:ready"})

    assert response.status_code == 422
    assert "'order:ready'" in errors(response)[0]
    assert response.json["message_id"] == "m-1"


def test_invalid_payload_is_422_with_one_notification_per_field(
    client: FlaskClient, publisher: Publisher
) -> None:
    body = order()
    body["payload"]["order"] = {"number": "", "quantity": 0}

    response = post(client, body)

    assert response.status_code == 422
    found = errors(response)
    assert len(found) == 2
    assert found[0].startswith("payload.order.number:")
    assert found[1].startswith("payload.order.quantity:")
    assert publisher.published == []


def test_missing_payload_object_is_422_naming_its_path(client: FlaskClient) -> None:
    response = post(client, {"message_id": "m", "message": "order:ready", "payload": {}})

    assert response.status_code == 422
    assert errors(response) == ["payload.order: Field required"]


# -- 200, duplicates, 409 ----------------------------------------------------------------------
def queued_tasks(db: Store, queue: str = "acme") -> list[tuple[str, str]]:
    """The tasks waiting in a queue's broker list, oldest first: (task name, message id)."""
    found = []
    for raw in reversed(db.redis.lrange(queue, 0, -1)):
        headers = json.loads(raw)["headers"]
        found.append((headers["task"], headers["shiphub_message"].partition(":")[2]))
    return found


def test_a_new_message_is_recorded_and_queued_in_one_step_then_200(
    client: FlaskClient, publisher: Publisher, db: Store
) -> None:
    response = post(client, order("m-ok"))

    assert response.status_code == 200
    assert response.json["status"] == "queued"
    assert response.json["notifications"][0]["level"] == "info"
    assert queued_tasks(db) == [("acme.order_ready", "m-ok")]
    assert publisher.published == []  # not a Celery publish: the record's script queued it
    record = db.messages.get("acme", "m-ok")
    assert record is not None and record.status == "queued"


def test_duplicate_is_not_queued_again_and_answers_the_record(
    client: FlaskClient, db: Store
) -> None:
    post(client, order("m-dup"))

    again = post(client, order("m-dup"))

    assert again.status_code == 200
    assert again.json["status"] == "queued"
    assert again.json["record"]["message_id"] == "m-dup"
    assert queued_tasks(db) == [("acme.order_ready", "m-dup")]


def test_same_id_different_body_is_409(client: FlaskClient, db: Store) -> None:
    post(client, order("m-c", number="H1"))

    response = post(client, order("m-c", number="H2"))

    assert response.status_code == 409
    assert queued_tasks(db) == [("acme.order_ready", "m-c")]


def test_a_resend_is_the_same_message_whatever_parameters_it_carries(
    client: FlaskClient, db: Store
) -> None:
    """Its parameters are not what it asks for: the newest copy's are kept for a run to come,
    and a copy that carries none leaves none."""
    first = order("m-p", parameters=[{"name": "acme.api_key", "value": "old"}])
    post(client, first)
    sealed = db.messages.get("acme", "m-p").fields["parameters"]
    rotated = order("m-p")
    rotated["payload"]["parameters"] = [{"name": "acme.api_key", "value": "new"}]

    assert post(client, rotated).status_code == 200
    kept = db.messages.get("acme", "m-p").fields["parameters"]
    assert kept != sealed and "new" not in kept  # sealed
    assert json.loads(sealer(unit_settings().shiphub_secret_key).open(kept))[0]["value"] == "new"
    assert post(client, order("m-p")).status_code == 200
    assert "parameters" not in db.messages.get("acme", "m-p").fields
    assert queued_tasks(db) == [("acme.order_ready", "m-p")]


def test_numbers_are_compared_by_value_not_by_their_spelling(
    client: FlaskClient, db: Store
) -> None:
    def quantity(value: float) -> dict[str, Any]:
        body = order("m-n")
        body["payload"]["order"]["quantity"] = value
        return body

    post(client, quantity(2.0))

    assert post(client, quantity(2)).status_code == 200
    assert post(client, quantity(3)).status_code == 409


def test_a_record_fingerprinted_before_the_upgrade_still_knows_its_resends(
    client: FlaskClient, db: Store
) -> None:
    body = order("m-old", parameters=[{"name": "acme.api_key", "value": "k"}])
    post(client, body)
    key = record_key("acme", "m-old")
    db.redis.hset(key, "fingerprint", earlier_fingerprint(HubMessage.model_validate(body)))

    assert post(client, body).status_code == 200
    assert post(client, order("m-old", number="H2")).status_code == 409


def test_same_id_in_another_integration_is_another_message(client: FlaskClient, db: Store) -> None:
    post(client, order("m-x"))

    assert db.messages.get("other", "m-x") is None


# -- 503: nothing recorded, nothing queued -------------------------------------------------------
def test_a_celery_publish_that_would_fail_does_not_touch_the_intake(
    client: FlaskClient, publisher: Publisher, db: Store
) -> None:
    """There is no "recorded, not yet queued" outcome any more: the intake does not publish."""
    publisher.fail = True

    response = post(client, order("m-pub"))

    assert response.status_code == 200
    assert response.json["status"] == "queued"
    assert queued_tasks(db) == [("acme.order_ready", "m-pub")]


def test_redis_away_answers_503_with_nothing_recorded_nor_queued_and_the_retry_queues_once(
    publisher: Publisher,
) -> None:
    server = fakeredis.FakeServer()
    db = Store.on(fakeredis.FakeRedis(server=server, decode_responses=True))
    client = create_app(unit_settings(), db, publisher).test_client()
    assert post(client, order("m-before")).status_code == 200
    server.connected = False

    response = post(client, order("m-503"))

    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "Redis" in errors(response)[0]
    server.connected = True
    assert db.messages.get("acme", "m-503") is None
    assert queued_tasks(db) == [("acme.order_ready", "m-before")]
    retried = post(client, order("m-503"))  # the hub sends it again
    assert (retried.status_code, retried.json["status"]) == (200, "queued")
    assert post(client, order("m-503")).json["record"]["status"] == "queued"  # a duplicate
    assert queued_tasks(db) == [
        ("acme.order_ready", "m-before"),
        ("acme.order_ready", "m-503"),
    ]


def test_redis_down_is_503(publisher: Publisher) -> None:
    unreachable = Store.on(
        __import__("worker.pipeline.runtime", fromlist=["redis_client"]).redis_client(
            "redis://127.0.0.1:1/0"
        )
    )
    app = create_app(unit_settings(), unreachable, publisher)

    response = app.test_client().post("/acme/send_order", json=order(), headers=auth())

    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "Redis" in errors(response)[0]


# -- waiting -----------------------------------------------------------------------------------
def test_wait_that_runs_out_is_202_with_the_record(client: FlaskClient) -> None:
    response = post(client, order("m-wait"), **{"X-Hub-Wait": "0.3"})

    assert response.status_code == 202
    assert response.json["status"] == "queued"
    assert response.json["record"]["message_id"] == "m-wait"


def test_wait_returns_the_stored_answer_when_finished(client: FlaskClient, db: Store) -> None:
    post(client, order("m-done"))
    answer = {
        "message_id": "m-done",
        "messages": [],
        "parameters": [],
        "notifications": [{"level": "info", "subject": "ok", "description": "ok"}],
    }
    settle(db, "m-done", "succeeded", answer)

    response = post(client, order("m-done"), **{"X-Hub-Wait": "5"})

    assert response.status_code == 200
    assert response.json == answer


def test_wait_on_a_failed_message_is_500_with_its_errors(client: FlaskClient, db: Store) -> None:
    post(client, order("m-fail"))
    answer = {
        "message_id": "m-fail",
        "messages": [],
        "parameters": [],
        "notifications": [{"level": "error", "subject": "no", "description": "refused"}],
    }
    settle(db, "m-fail", "failed", answer, error="refused")

    response = post(client, order("m-fail"), **{"X-Hub-Wait": "5"})

    assert response.status_code == 500
    assert errors(response) == ["refused"]


# -- replay ------------------------------------------------------------------------------------
def replay(client: FlaskClient, message_id: str) -> Any:
    return client.post(f"/messages/acme/{message_id}/replay", headers=auth())


def test_replaying_a_failed_message_queues_it_again(
    client: FlaskClient, publisher: Publisher, db: Store
) -> None:
    post(client, order("m-r1"))
    settle(db, "m-r1", "failed", error="refused")

    response = replay(client, "m-r1")

    assert response.status_code == 200
    assert db.messages.get("acme", "m-r1").status == "queued"
    assert publisher.published[-1] == ("acme.order_ready", "m-r1")


@pytest.mark.parametrize("status", ["succeeded", None])
def test_only_a_failed_or_dead_message_is_replayed(
    client: FlaskClient, publisher: Publisher, db: Store, status: str | None
) -> None:
    post(client, order("m-r2"))
    if status:
        settle(db, "m-r2", status, {"message_id": "m-r2", "messages": [{"x": 1}]})
    published = list(publisher.published)

    response = replay(client, "m-r2")

    assert response.status_code == 409
    assert "failed or dead" in errors(response)[0]
    assert publisher.published == published
    if status:
        record = db.messages.get("acme", "m-r2")
        assert (record.status, record.answer["messages"]) == ("succeeded", [{"x": 1}])


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_invalid_wait_header_is_400(client: FlaskClient, value: str) -> None:
    response = post(client, order(), **{"X-Hub-Wait": value})

    assert response.status_code == 400
    assert "X-Hub-Wait" in errors(response)[0]


# -- status, discovery -------------------------------------------------------------------------
def test_message_status_needs_auth_and_shows_no_body(client: FlaskClient) -> None:
    post(client, order("m-s", number="SECRET-NUMBER"))

    assert client.get("/messages/acme/m-s").status_code == 401
    response = client.get("/messages/acme/m-s", headers=auth())
    assert response.status_code == 200
    assert response.json["status"] == "queued"
    assert response.json["attempts"] == 0
    assert "SECRET-NUMBER" not in response.get_data(as_text=True)
    assert client.get("/messages/acme/unknown", headers=auth()).status_code == 404


def test_endpoint_json_describes_services_like_the_classic_one(client: FlaskClient) -> None:
    doc = client.get("/acme/endpoint.json").json

    tracking = next(s for s in doc["services"] if s["name"] == "tracking")
    assert doc["name"] == "acme"
    assert tracking["path"] == "/tracking"
    assert tracking["recommends"] == {
        "messages": ["acme:shipments:poll"],
        "schedule": {"count": 1, "interval": "hours"},
    }
    assert {p["name"] for p in tracking["requires"]["parameters"]} == {"api_key", "since"}
    assert client.get("/nope/endpoint.json").status_code == 404


def test_index_lists_integrations(client: FlaskClient) -> None:
    names = [i["name"] for i in client.get("/").json["integrations"]]

    assert "acme" in names


def test_unknown_route_and_method_are_json_errors(client: FlaskClient) -> None:
    assert client.get("/a/b/c/d").status_code == 404
    response = client.put("/acme/send_order", headers=auth())
    assert response.status_code == 405
    assert response.json["notifications"][0]["level"] == "error"
    assert "POST" in response.headers["Allow"]  # RFC 9110: a 405 says what is allowed


def test_settings_take_a_backoff_and_time_limit_beyond_the_visibility_timeout() -> None:
    s = Settings(
        retry_max_seconds=30, broker_visibility_timeout_seconds=10, task_time_limit_seconds=5
    )
    assert (s.retry_max_seconds, s.broker_visibility_timeout_seconds) == (30, 10)


def test_empty_attempt_limits_mean_no_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_MAX_ATTEMPTS", "")
    monkeypatch.setenv("HUB_PUSH_MAX_ATTEMPTS", "")
    s = Settings()
    assert (s.task_max_attempts, s.hub_push_max_attempts) == (None, None)
    assert (s.retry_for_seconds, s.hub_push_retry_for_seconds) == (6 * 3600, 24 * 3600)


def test_fakeredis_supports_the_scripts() -> None:
    assert fakeredis.FakeRedis().eval("return 1", 0) == 1


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text page, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def test_metrics_list_every_family_at_zero_before_it_first_counts(client: FlaskClient) -> None:
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    found = samples(response.get_data(as_text=True))
    for outcome in ("accepted", "duplicate", "republished", "retrying", "succeeded", "failed"):
        labels = {"integration": "acme", "service": "send_order", "outcome": outcome}
        assert sample(found, "shiphub_messages_total", **labels) == 0, outcome
    acme = {"integration": "acme"}
    assert sample(found, "shiphub_messages_total", **acme, service="tracking", outcome="dead") == 0
    assert sample(found, "shiphub_retries_total", **acme, reason="timeout") == 0
    assert sample(found, "shiphub_deliveries_total", **acme, outcome="dead") == 0
    handler_seconds = "shiphub_handler_duration_seconds"
    assert sample(found, f"{handler_seconds}_count", **acme, service="send_order") == 0
    assert sample(found, f"{handler_seconds}_bucket", **acme, service="send_order", le="+Inf") == 0
    call_seconds = "shiphub_provider_call_duration_seconds"
    assert sample(found, f"{call_seconds}_count", **acme, outcome="timeout") == 0
    for gauge in (
        "shiphub_unfinished_messages",
        "shiphub_retries_scheduled",
        "shiphub_outbox_pending",
        "shiphub_outbox_oldest_age_seconds",
        "shiphub_dead_messages",
        "shiphub_dead_deliveries",
    ):
        assert sample(found, gauge) == 0, gauge
    families = {f.name for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {"shiphub_poll_lag_seconds", "shiphub_poll_cursor_age_seconds"} <= families


def test_metrics_count_an_accepted_message_by_integration_and_service(
    client: FlaskClient,
) -> None:
    assert post(client, order("m-metrics")).status_code == 200

    found = samples(client.get("/metrics").get_data(as_text=True))

    labels = {"integration": "acme", "service": "send_order"}
    assert sample(found, "shiphub_messages_total", **labels, outcome="accepted") == 1
    assert sample(found, "shiphub_messages_total", **labels, outcome="succeeded") == 0
    assert sample(found, "shiphub_unfinished_messages") == 1


def test_metrics_without_redis_is_503(publisher: Publisher) -> None:
    unreachable = Store.on(
        __import__("worker.pipeline.runtime", fromlist=["redis_client"]).redis_client(
            "redis://127.0.0.1:1/0"
        )
    )
    app = create_app(unit_settings(), unreachable, publisher)

    response = app.test_client().get("/metrics")

    assert response.status_code == 503
    assert "Redis" in errors(response)[0]


def test_a_new_message_and_a_duplicate_each_cost_one_round_trip_to_redis(
    client: FlaskClient, db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command or pipeline takes a connection from the pool once: count those."""
    post(client, order("m-warm"))  # the scripts are loaded on first use
    pool = db.redis.connection_pool
    taken = 0
    get_connection = pool.get_connection

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal taken
        taken += 1
        return get_connection(*args, **kwargs)

    monkeypatch.setattr(pool, "get_connection", counted)

    assert post(client, order("m-one")).json["status"] == "queued"
    assert taken == 1
    assert post(client, order("m-one")).json["record"]["message_id"] == "m-one"
    assert taken == 2
