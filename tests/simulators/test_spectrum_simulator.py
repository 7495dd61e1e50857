"""The Spectrum simulator: the underscore token header read from the raw request, all-or-nothing
409 (or 404), the 403 throttle window, faults and the control API. Over HTTP against the real
process (the raw header lines exist only there), plus its state with a fake clock."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from simulators.spectrum import (
    RAW_HEADERS,
    SimulatorConfig,
    SpectrumSimulator,
    config_from_env,
    create_app,
)
from tests.support.simulators import SimulatorProcess

TOKEN = "sim-test-token"
PATH = "/api/order/ship-notification"


def body(po: str = "R805661123", *recipe_sets: str) -> dict[str, Any]:
    return {
        "purchaseOrderNumber": po,
        "lineItems": [
            {"recipeSetReadableId": rs, "shipmentTracking": "1Z1"}
            for rs in recipe_sets or ("ABCD1234",)
        ],
    }


@pytest.fixture(scope="module")
def simulator_process() -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess("simulators.spectrum", {"SPECTRUM_SIM_TOKENS": f"{TOKEN},other-token"})
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator_process: SimulatorProcess) -> SimulatorProcess:
    simulator_process.reset()
    simulator_process.control(
        "POST", "config", {"rate_limit": 100, "rate_window_seconds": 60, "unknown_status": 409}
    )
    return simulator_process


def post(
    sim: SimulatorProcess, payload: Any, headers: dict[str, str] | None = None, path: str = PATH
) -> requests.Response:
    sent = {"SPECTRUM_API_TOKEN": TOKEN} if headers is None else headers
    return requests.post(f"{sim.url}{path}", json=payload, headers=sent, timeout=5)


def raw_post(sim: SimulatorProcess, header_name: str) -> int:
    """A request written with http.client, the header name exactly as given."""
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        connection.request(
            "POST",
            PATH,
            json.dumps(body()),
            {header_name: TOKEN, "Content-Type": "application/json"},
        )
        return connection.getresponse().status
    finally:
        connection.close()


def counts(sim: SimulatorProcess) -> dict[str, int]:
    return sim.control("GET", "requests")["requests"]


def test_the_underscore_header_is_taken_and_a_dashed_one_is_not(sim: SimulatorProcess) -> None:
    assert raw_post(sim, "SPECTRUM_API_TOKEN") == 200
    assert raw_post(sim, "spectrum_api_token") == 200  # header names are case-insensitive
    assert raw_post(sim, "SPECTRUM-API-TOKEN") == 403
    assert counts(sim)["dashed_token_header"] == 1


def test_the_seed_success_body(sim: SimulatorProcess) -> None:
    response = post(sim, body("HA-US-DEV00011101", "MUEMVK2U"))
    assert response.status_code == 200
    assert response.json() == {
        "purchaseOrderNumber": "HA-US-DEV00011101",
        "status": "OK",
        "details": "Updated tracking number for recipeSetReadableId(s): MUEMVK2U.",
    }
    (taken,) = sim.control("GET", "notifications")["notifications"]
    assert taken["lineItems"] == body("HA-US-DEV00011101", "MUEMVK2U")["lineItems"]
    assert sim.control("GET", "orders")["orders"]["HA-US-DEV00011101"]["MUEMVK2U"] == {
        "shipmentTracking": "1Z1",
        "serialNumbers": [],
    }


def test_a_trailing_slash_is_accepted(sim: SimulatorProcess) -> None:
    assert post(sim, body(), path=f"{PATH}/").status_code == 200


@pytest.mark.parametrize("headers", [{}, {"SPECTRUM_API_TOKEN": "wrong"}, {"Authorization": TOKEN}])
def test_a_missing_or_wrong_token_is_403(sim: SimulatorProcess, headers: dict[str, str]) -> None:
    response = post(sim, body(), headers)
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}
    assert sim.control("GET", "notifications")["notifications"] == []


def test_any_unknown_recipe_set_is_a_409_and_nothing_is_updated(sim: SimulatorProcess) -> None:
    response = post(sim, body("R805661123", "ABCD1234", "NOPE0000", "EFGH5678", "ZZZZ0000"))
    assert response.status_code == 409
    assert response.json() == {
        "purchaseOrderNumber": "R805661123",
        "status": "Error",
        "details": "Unable to find recipeSetReadableId(s): NOPE0000, ZZZZ0000.",
    }
    assert sim.control("GET", "orders")["orders"]["R805661123"] == {
        "ABCD1234": None,
        "EFGH5678": None,
    }


def test_an_unknown_order_names_every_recipe_set_and_404_mode_answers_404(
    sim: SimulatorProcess,
) -> None:
    assert post(sim, body("NOPE", "ABCD1234")).json()["details"].endswith("ABCD1234.")
    sim.control("POST", "config", {"unknown_status": 404})
    response = post(sim, body("NOPE", "ABCD1234"))
    assert response.status_code == 404
    assert response.json()["details"] == "Unable to find recipeSetReadableId(s): ABCD1234."


def test_orders_can_be_added(sim: SimulatorProcess) -> None:
    added = sim.control(
        "POST", "orders", {"purchaseOrderNumber": "PO-9", "recipeSetReadableIds": ["AAAA1111"]}
    )
    assert added == {"purchaseOrderNumber": "PO-9", "recipeSets": {"AAAA1111": None}}
    assert post(sim, body("PO-9", "AAAA1111")).status_code == 200
    assert [
        n["purchaseOrderNumber"]
        for n in sim.control("GET", "notifications?purchaseOrderNumber=PO-9")["notifications"]
    ] == ["PO-9"]
    sim.reset()
    assert "PO-9" not in sim.control("GET", "orders")["orders"]


def test_a_malformed_body_is_400_naming_the_field(sim: SimulatorProcess) -> None:
    payload = {
        "purchaseOrderNumber": "R805661123",
        "lineItems": [{"recipeSetReadableId": "ABCD1234"}],
    }
    response = post(sim, payload)
    assert response.status_code == 400
    assert response.json()["details"] == "lineItems[0].shipmentTracking is required."


def test_past_the_limit_in_the_window_is_403_like_a_bad_token_then_it_recovers(
    sim: SimulatorProcess,
) -> None:
    sim.control("POST", "config", {"rate_limit": 3, "rate_window_seconds": 1})
    answers = [post(sim, body()) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 403, 403]
    assert answers[3].json() == post(sim, body(), {"SPECTRUM_API_TOKEN": "wrong"}).json()
    assert counts(sim)["throttled"] == 3  # the bad-token request was throttled too
    time.sleep(1.1)
    assert post(sim, body()).status_code == 200


@pytest.mark.parametrize(
    ("kind", "status", "stored"),
    [("http_500", 500, 0), ("forbidden", 403, 0), ("lost_answer", 502, 1)],
)
def test_faults(sim: SimulatorProcess, kind: str, status: int, stored: int) -> None:
    sim.control("POST", "faults", {"route": "ship_notification", "kind": kind})
    response = post(sim, body())
    assert response.status_code == status
    if kind == "http_500":
        assert (
            response.json()["details"]
            == "Ship Notification processing for R805661123 encountered an error."
        )
    assert len(sim.control("GET", "notifications")["notifications"]) == stored
    assert post(sim, body()).status_code == 200  # one request only


def test_bad_control_requests_are_400(sim: SimulatorProcess) -> None:
    for path, payload in (
        ("config", {"rate_limit": 0}),
        ("config", {"unknown_status": 500}),
        ("config", {"colour": "red"}),
        ("orders", {"purchaseOrderNumber": "X", "recipeSetReadableIds": "ABCD1234"}),
        ("faults", {"kind": "explode"}),
    ):
        response = requests.post(f"{sim.url}/_sim/{path}", json=payload, timeout=5)
        assert response.status_code == 400, (path, payload)
    assert "tokens" in sim.control("GET", "config") and TOKEN not in json.dumps(
        sim.control("GET", "config")
    )


def test_without_the_raw_header_lines_no_token_is_taken() -> None:
    """Under a server that does not keep raw header lines (the test client here), the token
    cannot be told from a dashed one, so it is refused."""
    app = create_app(SimulatorConfig(tokens=(TOKEN,)))
    client = app.test_client()
    refused = client.post(PATH, json=body(), headers={"SPECTRUM_API_TOKEN": TOKEN})
    assert refused.status_code == 403
    taken = client.post(
        PATH, json=body(), environ_overrides={RAW_HEADERS: [("SPECTRUM_API_TOKEN", TOKEN)]}
    )
    assert taken.status_code == 200


def test_the_window_slides_with_the_clock() -> None:
    now = [0.0]
    state = SpectrumSimulator(
        SimulatorConfig(tokens=(TOKEN,), rate_limit=2, rate_window_seconds=10), clock=lambda: now[0]
    )
    headers = [("SPECTRUM_API_TOKEN", TOKEN)]
    assert state.admit(headers) is None
    now[0] = 5.0
    assert state.admit(headers) is None
    now[0] = 9.9
    assert state.admit(headers) is not None  # two in the last 10 s
    now[0] = 10.0
    assert state.admit(headers) is None  # the first has left the window


def test_environment() -> None:
    config = config_from_env(
        {
            "SPECTRUM_SIM_TOKENS": "a, b",
            "SPECTRUM_SIM_RATE_LIMIT": "5",
            "SPECTRUM_SIM_RATE_WINDOW_SECONDS": "2",
            "SPECTRUM_SIM_UNKNOWN_STATUS": "404",
            "SPECTRUM_SIM_ORDERS": '{"PO-1": ["AAAA1111"]}',
        }
    )
    assert (config.tokens, config.rate_limit, config.rate_window_seconds) == (("a", "b"), 5, 2.0)
    assert config.unknown_status == 404 and config.orders == {"PO-1": ("AAAA1111",)}
    with pytest.raises(ValueError, match="SPECTRUM_SIM_"):
        config_from_env({"SPECTRUM_SIM_RATE_LIMIT": "many"})
