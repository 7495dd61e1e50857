"""send_shipment through the real pieces: receiver → Redis → Celery worker → the Dotcom
simulator over HTTP (signed requests), and the answer back in wait mode."""

from __future__ import annotations

import time
from typing import Any

import requests
from defusedxml.ElementTree import fromstring

from tests.dotcom.conftest import (
    ENV_SHIPPING_LOOKUP,
    LANDS_WITHIN,
    SENT,
    DotcomSimulator,
    fixture_text,
    post,
    seed_shipment_ready,
    shipment_message,
)
from tests.support.stack import Stack

SEED_PARAMETERS = {
    "api_key": "demo-api-key",
    "password": "demo-password",
    "shipping_lookup": [{"Standard": "03"}, {"UPS Two Day (USD)": "02"}],
}


def orders_for(sim: DotcomSimulator, number: str) -> list[dict[str, Any]]:
    return [o for o in sim.orders()["orders"] if o["order_number"] == number]


def test_endpoint_json_describes_the_classic_services(dotcom_stack: Stack) -> None:
    described = requests.get(f"{dotcom_stack.url}/dotcom/endpoint.json", timeout=10).json()

    assert described["name"] == "dotcom"
    services = {s["name"]: s for s in described["services"]}
    assert list(services) == ["send_shipment", "tracking"]
    send, tracking = services["send_shipment"], services["tracking"]
    assert send["path"] == "/send_shipment"
    assert send["recommends"] == {"messages": ["shipment:ready"]}
    assert [p["name"] for p in send["requires"]["parameters"]] == [
        "api_key",
        "password",
        "shipping_lookup",
    ]
    assert tracking["path"] == "/tracking"
    assert tracking["recommends"] == {
        "messages": ["dotcom:shipment_results:poll"],
        "schedule": {"count": 1, "interval": "hours"},
    }
    assert [p["name"] for p in tracking["requires"]["parameters"]] == [
        "api_key",
        "password",
        "last_polling_datetime",
    ]


def test_seed_sample_is_sent_once_with_the_seeds_notification(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    body = seed_shipment_ready()  # the seed's own sample, corrected; parameters bare as printed
    body["payload"]["parameters"] = [{"name": k, "value": v} for k, v in SEED_PARAMETERS.items()]

    response = post(dotcom_stack, "send_shipment", body, store)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["message_id"] == "51af1dc5fe53543f1200f519"
    assert answer["notifications"] == [{"level": "info", "subject": SENT, "description": SENT}]
    report = sim.orders()
    assert (report["count"], report["order_requests"]) == (1, 1)
    (order,) = report["orders"]
    assert order["order_number"] == "H67606710123"
    sent = fromstring(order["xml"])
    assert sent.findtext("invoice-number") == "0"
    assert sent.findtext("po-number") == "R805661123"
    assert sent.findtext("total-order-amount") == "66.00"  # items 29 + 27, cost 10
    assert sent.findtext("ship-method") == "03"
    assert sent.findtext("shipping-information/shipping-state") == "MD"
    assert sent.findtext("billing-information/billing-name") == "Brian Quinn"
    assert [line.findtext("sku") for line in sent.findall("line-items/line-item")] == [
        "9011CC",
        "2001SSBM",
    ]


def test_verbatim_seed_sample_is_refused_naming_the_json_problem(
    dotcom_stack: Stack, sim: DotcomSimulator
) -> None:
    verbatim = fixture_text("shipment_ready.verbatim.json")
    lines = verbatim.splitlines()
    stray = next(n for n, line in enumerate(lines, 1) if '"original": {}' in line) + 1
    assert lines[stray - 1].strip() == "]"

    response = requests.post(
        f"{dotcom_stack.url}/dotcom/send_shipment",
        data=verbatim.encode(),
        headers=dotcom_stack.headers(**{"Content-Type": "application/json"}),
        timeout=10,
    )

    assert response.status_code == 406
    (note,) = response.json()["notifications"]
    assert note["level"] == "error"
    assert "not valid JSON" in note["description"]
    assert f"line {stray}" in note["description"]
    assert sim.orders()["order_requests"] == 0


def test_invalid_payload_gets_422_per_failing_field(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    body = shipment_message(items=[])
    del body["payload"]["shipment"]["shipping_address"]["city"]

    response = post(dotcom_stack, "send_shipment", body, store)

    assert response.status_code == 422
    subjects = {n["subject"] for n in response.json()["notifications"]}
    assert subjects == {
        "Invalid payload.shipment.shipping_address.city",
        "Invalid payload.shipment.items",
    }


def test_missing_shipping_method_is_refused_before_any_call(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    body = shipment_message(shipping_method="Teleport")  # lookup from DOTCOM_SHIPPING_LOOKUP

    response = post(dotcom_stack, "send_shipment", body, store)

    assert response.status_code == 500
    (note,) = response.json()["notifications"]
    assert note["level"] == "error"
    known = ", ".join(repr(next(iter(entry))) for entry in ENV_SHIPPING_LOOKUP)
    assert note["description"] == (
        f"Shipping method 'Teleport' is not in shipping_lookup; known methods: {known}"
    )
    assert sim.orders()["order_requests"] == 0
    assert dotcom_stack.record("dotcom", body["message_id"])["attempts"] == 1  # not retried


def test_too_long_field_is_refused_before_any_call(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    body = shipment_message()
    body["payload"]["shipment"]["shipping_address"]["city"] = "Chevy Chase Village Heights"

    response = post(dotcom_stack, "send_shipment", body, store)

    assert response.status_code == 500
    (note,) = response.json()["notifications"]
    assert note["description"].startswith("shipment.shipping_address.city ")
    assert "Dotcom's shipping-city allows at most 20" in note["description"]
    assert sim.orders()["order_requests"] == 0


def test_order_errors_come_back_in_dotcoms_own_words(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    body = shipment_message(
        items=[{"sku": "NOPE-1", "quantity": 1}, {"sku": "NOPE-2", "quantity": 2}]
    )

    response = post(dotcom_stack, "send_shipment", body, store)

    assert response.status_code == 500
    notes = response.json()["notifications"]
    assert [(n["level"], n["description"]) for n in notes] == [
        ("error", "Invalid Item. Item NOPE-1 does not exist in the item master."),
        ("error", "Invalid Item. Item NOPE-2 does not exist in the item master."),
    ]
    assert {n["subject"] for n in notes} == {"Dotcom Distribution refused the shipment"}
    report = sim.orders()
    assert (report["count"], report["order_requests"]) == (0, 1)  # refused, not retried
    assert dotcom_stack.record("dotcom", body["message_id"])["status"] == "failed"


def test_transient_500_is_looked_up_then_sent_once(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    body = shipment_message()
    number = body["payload"]["shipment"]["number"]
    sim.fault("http_500", "order")
    started = time.monotonic()

    response = post(dotcom_stack, "send_shipment", body, store)

    assert response.status_code == 200, response.text
    assert response.json()["notifications"][0]["subject"] == SENT
    report = sim.orders()
    assert (report["order_requests"], report["order_status_requests"]) == (2, 1)
    assert len(orders_for(sim, number)) == 1
    record = dotcom_stack.record("dotcom", body["message_id"])
    assert (record["status"], record["attempts"]) == ("succeeded", 2)
    assert record["last_error"] is None  # succeeded: what the first attempt met is history
    assert "HTTP 500" in record["earlier_error"]
    assert time.monotonic() - started >= LANDS_WITHIN  # looked up once it could not land


def test_order_stored_but_answer_cut_is_found_not_sent_again(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    body = shipment_message()
    number = body["payload"]["shipment"]["number"]
    sim.fault("malformed_xml", "order")  # the order is stored, its answer cut in half

    response = post(dotcom_stack, "send_shipment", body, store)

    assert response.status_code == 200, response.text
    assert response.json()["notifications"] == [
        {"level": "info", "subject": SENT, "description": SENT}
    ]
    report = sim.orders()
    assert (report["order_requests"], report["order_status_requests"]) == (1, 1)
    assert len(orders_for(sim, number)) == 1
    record = dotcom_stack.record("dotcom", body["message_id"])
    assert (record["status"], record["attempts"]) == ("succeeded", 2)
    assert record["last_error"] is None
    assert "not readable XML" in record["earlier_error"]


def test_another_order_under_a_sent_shipment_number_is_refused_as_a_duplicate(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    first = shipment_message()
    assert post(dotcom_stack, "send_shipment", first, store).status_code == 200
    again = shipment_message(first["payload"]["shipment"]["number"])  # another order number

    response = post(dotcom_stack, "send_shipment", again, store)

    assert response.status_code == 500
    (note,) = response.json()["notifications"]
    assert "already" in note["description"]
    assert again["payload"]["shipment"]["order_number"] in note["description"]


def test_wrong_password_is_a_hard_error_that_never_shows_the_secret(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    body = shipment_message(parameters={"dotcom.password": "hunter2-not-it"})

    response = post(dotcom_stack, "send_shipment", body, store)

    assert response.status_code == 500
    (note,) = response.json()["notifications"]
    assert note["subject"] == "Dotcom rejected the API key or signature"
    assert "hunter2-not-it" not in response.text
    assert "hunter2-not-it" not in dotcom_stack.logs()
    assert (sim.orders()["count"], sim.orders()["order_requests"]) == (0, 1)


def test_letters_beyond_ascii_reach_dotcom_transliterated(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    shipping = {
        "firstname": "Søren",
        "lastname": "Łukasiewicz",
        "address1": "Hauptstraße 5",
        "address2": "",
        "city": "Łódź",
        "zipcode": "90-001",
        "country": "PL",
    }
    billing = {**shipping, "city": "Québec", "state": "Québec", "country": "CA"}
    body = shipment_message(shipping_address=shipping, billing_address=billing)
    number = body["payload"]["shipment"]["number"]

    response = post(dotcom_stack, "send_shipment", body, store)

    assert response.status_code == 200, response.text
    (order,) = orders_for(sim, number)
    sent = fromstring(order["xml"])
    assert sent.findtext("shipping-information/shipping-name") == "Soren Lukasiewicz"
    assert sent.findtext("shipping-information/shipping-address1") == "Hauptstrasse 5"
    assert sent.findtext("shipping-information/shipping-city") == "Lodz"
    assert sent.findtext("billing-information/billing-city") == "Quebec"
    assert sent.findtext("billing-information/billing-state") == "QC"
