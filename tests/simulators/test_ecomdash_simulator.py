"""The ecomdash simulator behaves as providers.md says: both keys, the rate and concurrency
limits, per-record answers, faults and its control routes."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask.testing import FlaskClient

from simulators.ecomdash.app import create_app
from simulators.ecomdash.simulator import SimulatorConfig

PATH = "/api/Shipments/submitTrackingInfo"
KEYS = {"Ocp-Apim-Subscription-Key": "demo-apim-key", "ecd-subscription-key": "demo-ecd-key"}


@pytest.fixture
def client() -> FlaskClient:
    app = create_app(SimulatorConfig(call_seconds=0.0))
    app.config["TESTING"] = True
    return app.test_client()


def submit(client: FlaskClient, db: Any, **headers: str) -> Any:
    return client.post(PATH, json=db, headers={**KEYS, **headers})


def test_the_gateway_refuses_a_missing_or_invalid_key_in_lower_case() -> None:
    client = create_app(SimulatorConfig(call_seconds=0.0)).test_client()
    missing = client.post(PATH, json=[], headers={"ecd-subscription-key": "demo-ecd-key"})
    assert missing.status_code == 401
    assert missing.json["statusCode"] == 401
    assert missing.json["message"].startswith("Access denied due to missing subscription key")
    invalid = submit(client, [], **{"Ocp-Apim-Subscription-Key": "nope"})
    assert invalid.status_code == 401
    assert "invalid subscription key" in invalid.json["message"]


@pytest.mark.parametrize("ecd", ["", "unknown-key", "lapsed-ecd-key"])
def test_ecomdash_refuses_a_bad_or_unsubscribed_ecd_key_with_403(
    client: FlaskClient, ecd: str
) -> None:
    refused = submit(client, [], **{"ecd-subscription-key": ecd})
    assert refused.status_code == 403
    assert "current ecomdash subscription" in refused.json["Message"]


def test_each_record_answers_for_itself(client: FlaskClient) -> None:
    answer = submit(
        client,
        [
            {
                "ShipmentId": 20405.0,
                "TrackingNumber": "ABC123XYZ",
                "CarrierId": 1,
                "ShippedDate": "2016-07-18T12:57:33",
            },
            {"ShipmentId": 1, "TrackingNumber": "X"},
            {"ShipmentId": 20404},
            {"ShipmentId": 20404, "LineItems": [{"LineItemId": 204041}]},
            {"ShipmentId": 20404, "TrackingNumber": "T", "LineItems": [{"LineItemId": 9}]},
            {"ShipmentId": 20404, "TrackingNumber": "T", "CarrierId": 77},
        ],
    )
    assert answer.status_code == 200
    body = answer.json
    assert body["status"] == "Success" and body["messages"]  # words even on success
    data = body["data"]
    assert [d["WasSuccessful"] for d in data] == [True, False, False, False, False, False]
    assert data[0]["Request"]["ShipmentId"] == 20405 and data[0]["Messages"] is None
    assert data[1]["Messages"] == ["Shipment 1 was not found."]
    assert data[2]["Messages"] == ["TrackingNumber is required when LineItems are not provided."]
    assert data[3]["Messages"] == ["TrackingNumber is required for LineItem 204041."]
    assert data[4]["Messages"] == ["LineItem 9 was not found on shipment 20404."]
    assert data[5]["Messages"] == ["Carrier 77 was not found."]
    (held,) = client.get("/_sim/tracking").json["tracking"]
    assert held["ShipmentId"] == 20405 and held["ShippedDate"] == "2016-07-18T12:57:33"


def test_a_body_that_is_not_an_array_is_invalid(client: FlaskClient) -> None:
    refused = submit(client, {"ShipmentId": 20405})
    assert refused.status_code == 400 and refused.json == {"Message": "The request is invalid."}


def test_the_rate_limit_answers_429_with_retry_after(client: FlaskClient) -> None:
    client.post("/_sim/config", json={"rate_limit": 2, "rate_window_seconds": 30})
    assert [submit(client, []).status_code for _ in range(2)] == [200, 200]
    limited = submit(client, [])
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    other = submit(client, [], **{"ecd-subscription-key": "lapsed-ecd-key"})
    assert other.status_code == 403  # another account's calls are not counted against it


def test_more_than_three_calls_at_once_answer_429_without_retry_after() -> None:
    app = create_app(SimulatorConfig(call_seconds=0.5))
    answers: list[Any] = []

    def call() -> None:
        answers.append(app.test_client().post(PATH, json=[], headers=KEYS))

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 200, 429, 429]
    assert all("Retry-After" not in a.headers for a in answers if a.status_code == 429)
    stats = app.test_client().get("/_sim/stats").json
    assert stats["max_concurrency"] == 3 and stats["calls"] == 5


@pytest.mark.parametrize(
    ("kind", "status", "retry_after"),
    [("http_500", 500, None), ("rate_limited", 429, "4"), ("concurrency", 429, None)],
)
def test_faults(client: FlaskClient, kind: str, status: int, retry_after: str | None) -> None:
    client.post(
        "/_sim/faults", json={"route": "submitTrackingInfo", "kind": kind, "retry_after": 4}
    )
    answer = submit(client, [{"ShipmentId": 20405, "TrackingNumber": "T"}])
    assert answer.status_code == status
    assert answer.headers.get("Retry-After") == retry_after
    if kind == "http_500":
        assert answer.json == {
            "Message": "Oops, something went wrong while processing your request"
        }
    assert submit(client, []).status_code == 200  # one fault, one call


def test_control_routes_add_shipments_and_accounts(client: FlaskClient) -> None:
    assert client.post(
        "/_sim/shipments", json={"ecd_key": "demo-ecd-key", "first": 700, "count": 3, "items": 1}
    ).json == {"created": 3}
    taken = submit(
        client, [{"ShipmentId": 702, "LineItems": [{"LineItemId": 7021, "TrackingNumber": "Z"}]}]
    )
    assert taken.json["data"][0]["WasSuccessful"] is True
    client.post("/_sim/accounts", json={"ecd_key": "other-key", "name": "other"})
    assert submit(client, [], **{"ecd-subscription-key": "other-key"}).status_code == 200
    assert client.post("/_sim/shipments", json={"ecd_key": "nobody"}).status_code == 400
    client.post("/_sim/reset")
    assert client.get("/_sim/tracking").json == {"tracking": []}
    assert client.get("/_sim/stats").json["calls"] == 0
