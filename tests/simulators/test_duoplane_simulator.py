"""The Duoplane simulator: Basic auth, shipments on purchase orders (a repeat makes a second
one), listing with search[...] and paging, the leaky bucket with Duoplane-Retry-After-Seconds,
faults and the control API."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from simulators.duoplane import Config, DuoplaneSimulator, create_app, parse_accounts
from tests.support.stack import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
AUTH = ("demo-dp-key", "demo-dp-password")
T0 = 1_795_000_000.0  # 2026-11-18T...Z


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> DuoplaneSimulator:
    return DuoplaneSimulator(Config(parse_accounts("demo-dp-key:demo-dp-password")), clock)


@pytest.fixture
def client(sim: DuoplaneSimulator) -> Iterator[FlaskClient]:
    with create_app(sim).test_client() as test_client:
        yield test_client


def basic(user: str = AUTH[0], password: str = AUTH[1]) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


SEED_BODY = {  # the seed's sample request, carrier by name
    "shipment": {
        "shipper_name": "UPS",
        "vendor_shipping_cost": "",
        "vendor_handling_cost": "",
        "vendor_invoice_reference": "AB1234",
        "shipper_shipping_cost": 5.0,
        "shipment_items_attributes": [
            {"order_item_id": 239417, "quantity": 1},
            {"order_item_id": 239418, "quantity": 2},
        ],
        "shipment_trackings_attributes": [{"tracking": "1234"}, {"tracking": "5678"}],
    }
}


def create(client: FlaskClient, body: Any = SEED_BODY, po: int = 987654) -> Any:
    return client.post(f"/purchase_orders/{po}/shipments.json", json=body, headers=basic())


def test_without_or_with_wrong_credentials_the_answer_is_401_with_a_body(
    client: FlaskClient,
) -> None:
    for headers in ({}, basic(password="nope")):
        answer = client.get("/shipments.json", headers=headers)
        assert answer.status_code == 401
        assert answer.get_data(as_text=True) == "HTTP Basic: Access denied.\n"
        assert answer.headers["WWW-Authenticate"].startswith("Basic")


def test_the_seeds_sample_creates_a_shipment_and_a_repeat_creates_a_second(
    client: FlaskClient,
) -> None:
    first = create(client)
    assert first.status_code == 200
    shipment = first.get_json()
    assert shipment["purchase_order_id"] == 987654
    assert shipment["shipper_id"] == 1 and shipment["shipper_scac_code"] == "UPSN"
    assert [t["tracking"] for t in shipment["shipment_trackings_attributes"]] == ["1234", "5678"]
    assert [
        (i["order_item_id"], i["quantity"], i["order_item_name"])
        for i in shipment["shipment_items_attributes"]
    ] == [(239417, 1, "Blue Mug"), (239418, 2, "Red Plate")]
    assert shipment["created_at"].endswith("Z")
    second = create(client)
    assert second.status_code == 200 and second.get_json()["id"] != shipment["id"]
    assert client.get("/_sim/shipments").get_json()["count"] == 2


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"shipper_id": 2}, "shipper", "exactly one of"),
        ({"shipper_name": "Pigeon"}, "shipper", "Pigeon does not match a carrier"),
        ({"shipment_items_attributes": []}, "shipment_items", "at least one item"),
        (
            {"shipment_items_attributes": [{"order_item_id": 1, "quantity": 1}]},
            "shipment_items",
            "order item 1 is not on purchase order 987654",
        ),
        ({"shipment_trackings_attributes": [{"tracking": " "}]}, "shipment_trackings", "tracking"),
    ],
)
def test_invalid_shipments_are_422_with_an_errors_object(
    client: FlaskClient, change: dict[str, Any], field: str, words: str
) -> None:
    body = {"shipment": {**SEED_BODY["shipment"], **change}}
    answer = create(client, body)
    assert answer.status_code == 422
    assert any(words in m for m in answer.get_json()["errors"][field])
    assert client.get("/_sim/shipments").get_json()["count"] == 0


def test_errors_can_come_as_a_list(client: FlaskClient) -> None:
    client.post("/_sim/config", json={"error_format": "list"})
    answer = create(client, {"shipment": {**SEED_BODY["shipment"], "shipper_name": "Pigeon"}})
    assert answer.get_json() == {
        "errors": ["Shipper Pigeon does not match a carrier in this Duoplane account"]
    }


def test_an_unknown_purchase_order_is_404(client: FlaskClient) -> None:
    assert create(client, po=1).status_code == 404


def test_listing_filters_pages_and_answers_bare_arrays(
    client: FlaskClient, clock: FakeClock
) -> None:
    client.post("/_sim/shipments", json={"count": 5, "updated_at": "2026-11-20T10:00:00+00:00"})
    ids = client.post(
        "/_sim/shipments", json={"count": 7, "updated_at": "2026-11-21T10:00:00+00:00"}
    ).get_json()["ids"]
    query = "search[updated_at_min]=2026-11-21T10:00:00%2B00:00&per_page=3"
    pages = [
        client.get(f"/shipments.json?{query}&page={page}", headers=basic()).get_json()
        for page in (1, 2, 3, 4)
    ]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert [s["id"] for p in pages for s in p] == ids
    # per_page above 250 is cut to 250; the default is 250
    client.post("/_sim/shipments", json={"count": 300})
    big = client.get("/shipments.json?per_page=500", headers=basic()).get_json()
    assert len(big) == 250
    assert len(client.get("/shipments.json", headers=basic()).get_json()) == 250


def test_a_time_without_offset_is_read_in_the_api_users_zone(client: FlaskClient) -> None:
    client.post("/_sim/shipments", json={"count": 1, "updated_at": "2026-11-21T12:00:00+00:00"})
    # 08:00 New York is 13:00 UTC: after the shipment; with its offset, 08:00 UTC is before it.
    naive = client.get(
        "/shipments.json?search[updated_at_min]=2026-11-21T08:00:00", headers=basic()
    )
    assert naive.get_json() == []
    explicit = client.get(
        "/shipments.json?search[updated_at_min]=2026-11-21T08:00:00Z", headers=basic()
    )
    assert len(explicit.get_json()) == 1
    bad = client.get("/shipments.json?search[updated_at_min]=yesterday", headers=basic())
    assert bad.status_code == 400


def test_search_by_tracking_matches_partially_and_by_purchase_order(client: FlaskClient) -> None:
    create(client)
    client.post("/_sim/shipments", json={"count": 1, "purchase_order_id": 987655})
    by_tracking = client.get("/shipments.json?search[tracking]=23", headers=basic())
    assert [s["purchase_order_id"] for s in by_tracking.get_json()] == [987654]
    by_po = client.get("/shipments.json?search[purchase_order_id]=987655", headers=basic())
    assert [s["purchase_order_id"] for s in by_po.get_json()] == [987655]
    by_number = client.get("/shipments.json?search[purchase_order_number]=1001-1", headers=basic())
    assert len(by_number.get_json()) == 1


def test_the_bucket_refuses_when_full_and_limited_requests_lengthen_the_wait(
    client: FlaskClient, clock: FakeClock
) -> None:
    client.post("/_sim/config", json={"rate_capacity": 3, "rate_per_second": 2})
    answers = [client.get("/shipments.json", headers=basic()) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    waits = [float(a.headers["Duoplane-Retry-After-Seconds"]) for a in answers]
    assert waits == [0.0, 0.0, 0.5]  # the third filled it: the next fits in 0.5 s
    limited = [client.get("/shipments.json", headers=basic()) for _ in range(3)]
    assert [a.status_code for a in limited] == [429, 429, 429]
    assert [float(a.headers["Duoplane-Retry-After-Seconds"]) for a in limited] == [1.0, 1.5, 2.0]
    clock.now += 1.9  # not long enough: the limited requests added to the wait
    assert client.get("/shipments.json", headers=basic()).status_code == 429
    clock.now += 3.0
    assert client.get("/shipments.json", headers=basic()).status_code == 200
    report = client.get("/_sim/requests").get_json()
    assert report["rate_limited"] == 4 and report["requests"]["list"] == 8


def test_a_rate_limited_fault_answers_429_with_the_seconds_asked(client: FlaskClient) -> None:
    client.post(
        "/_sim/faults", json={"route": "list", "kind": "rate_limited", "retry_after_seconds": 3}
    )
    answer = client.get("/shipments.json", headers=basic())
    assert answer.status_code == 429
    assert answer.headers["Duoplane-Retry-After-Seconds"] == "3.00"


def test_a_lost_answer_stores_the_shipment_and_answers_502(client: FlaskClient) -> None:
    client.post("/_sim/faults", json={"route": "create", "kind": "lost_answer"})
    assert create(client).status_code == 502
    assert client.get("/_sim/shipments").get_json()["count"] == 1


def test_http_500_does_nothing(client: FlaskClient) -> None:
    client.post("/_sim/faults", json={"route": "create", "kind": "http_500"})
    assert create(client).status_code == 500
    assert client.get("/_sim/shipments").get_json()["count"] == 0


def test_purchase_orders_can_be_added_and_reset_restores_the_seeded_ones(
    client: FlaskClient,
) -> None:
    added = client.post(
        "/_sim/purchase_orders",
        json={"id": 42, "order_items": [{"id": 9, "name": "Lamp", "sku": "L", "quantity": 1}]},
    )
    assert added.status_code == 201
    body = {
        "shipment": {
            "shipper_scac_code": "FEDX",
            "shipment_items_attributes": [{"order_item_id": 9, "quantity": 1}],
            "shipment_trackings_attributes": [{"tracking": "F1"}],
        }
    }
    assert create(client, body, po=42).get_json()["shipper_id"] == 2
    client.post("/_sim/reset")
    ids = [po["id"] for po in client.get("/_sim/purchase_orders").get_json()["purchase_orders"]]
    assert ids == [987654, 987655, 987656]
    assert client.get("/_sim/shipments").get_json()["count"] == 0


def test_update_moves_updated_at(client: FlaskClient, clock: FakeClock) -> None:
    shipment = create(client).get_json()
    clock.now += 60
    updated = client.put(
        f"/shipments/{shipment['id']}.json",
        json={"shipment": {"vendor_invoice_reference": "INV-9"}},
        headers=basic(),
    ).get_json()
    assert updated["vendor_invoice_reference"] == "INV-9"
    assert updated["updated_at"] > shipment["updated_at"]


def test_bad_control_requests_are_400(client: FlaskClient) -> None:
    assert client.post("/_sim/shipments", json={"count": 0}).status_code == 400
    assert client.post("/_sim/config", json={"rate_capacity": 0}).status_code == 400
    assert client.post("/_sim/faults", json={"kind": "nope"}).status_code == 400


@pytest.mark.pipeline  # starts a process of its own
def test_it_runs_from_the_command_line_with_its_environment() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.duoplane", "--port", str(port)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DUOPLANE_SIM_RATE_CAPACITY": "7"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{url}/_sim/health", timeout=1).ok, timeout=20)
        assert requests.get(f"{url}/_sim/config", timeout=5).json()["rate_capacity"] == 7
        started = time.monotonic()
        answer = requests.get(f"{url}/shipments.json", auth=AUTH, timeout=5)
        assert answer.status_code == 200 and answer.json() == []
        assert time.monotonic() - started < 5
    finally:
        process.terminate()
        process.wait(10)
