"""Sending tracking to Spectrum through the real pipeline (receiver, Redis, Celery worker) and
the simulator over HTTP: sent once per shipment, several tracking numbers in one string,
Spectrum's all-or-nothing refusals in its own words, 500s retried, its 403 (throttling or a bad
token) paced under and retried a bounded number of times."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.spectrum.conftest import (
    TOKEN,
    SpectrumSimulator,
    again,
    confirm_message,
    purchase_order,
    recipe_set,
)
from tests.support.stack import Stack

SERVICE = "/spectrum/send_tracking"


def send(stack: Stack, body: dict[str, Any], store: str) -> requests.Response:
    return stack.post(SERVICE, body, wait=40, store=store)


def notes(response: requests.Response, level: str) -> list[dict[str, Any]]:
    return [n for n in response.json()["notifications"] if n["level"] == level]


def attempts(stack: Stack, body: dict[str, Any]) -> int:
    return int(stack.record("spectrum", body["message_id"])["attempts"])


def test_a_confirmed_shipment_is_one_notification_with_its_tracking_numbers_joined_by_commas(
    spectrum_stack: Stack, sim: SpectrumSimulator, store: str
) -> None:
    po, first, second = purchase_order(), recipe_set(), recipe_set()
    sim.add_order(po, first, second)
    body = confirm_message(
        po,
        [first, second],
        tracking="1ZAAA",
        tracking_numbers=["1ZAAA", "1ZBBB"],
        cartons=[
            {"carton_id": "C1", "tracking_number": "1ZAAA"},
            {"carton_id": "C2", "tracking_number": "1ZCCC"},
        ],
    )
    body["payload"]["shipment"]["items"][0]["serial_numbers"] = ["BR7MWPKFZP76NK8U"]

    response = send(spectrum_stack, body, store)

    assert response.status_code == 200, response.text
    (sent,) = sim.notifications()
    assert sent["purchaseOrderNumber"] == po
    assert sent["lineItems"] == [
        {
            "recipeSetReadableId": first,
            "shipmentTracking": "1ZAAA,1ZBBB,1ZCCC",
            "serialNumbers": ["BR7MWPKFZP76NK8U"],
        },
        {"recipeSetReadableId": second, "shipmentTracking": "1ZAAA,1ZBBB,1ZCCC"},
    ]
    (info,) = notes(response, "info")
    assert info["subject"] == "Tracking sent to Spectrum"
    assert "1ZAAA,1ZBBB,1ZCCC" in info["description"] and po in info["description"]
    assert "Updated tracking number" in info["description"]  # Spectrum's own words
    assert sim.requests().get("dashed_token_header", 0) == 0


def test_purchase_order_number_wins_over_the_order_number(
    spectrum_stack: Stack, sim: SpectrumSimulator, store: str
) -> None:
    po, rs = purchase_order(), recipe_set()
    sim.add_order(po, rs)
    body = confirm_message("R-NOT-AT-SPECTRUM", [rs], purchase_order_number=po)
    assert send(spectrum_stack, body, store).status_code == 200
    assert [n["purchaseOrderNumber"] for n in sim.notifications()] == [po]


def test_the_same_shipment_confirmed_again_is_not_sent_again_but_new_tracking_is(
    spectrum_stack: Stack, sim: SpectrumSimulator, store: str
) -> None:
    po, rs = purchase_order(), recipe_set()
    sim.add_order(po, rs)
    first = confirm_message(po, [rs])
    assert send(spectrum_stack, first, store).status_code == 200

    repeated = send(spectrum_stack, again(first), store)

    assert repeated.status_code == 200, repeated.text
    (info,) = notes(repeated, "info")
    assert info["subject"] == "Tracking already sent to Spectrum"
    assert first["message_id"] in info["description"]
    assert len(sim.notifications(po)) == 1

    corrected = again(first)
    corrected["payload"]["shipment"]["tracking_numbers"] = ["1ZNEWNUMBER"]
    assert send(spectrum_stack, corrected, store).status_code == 200
    assert [n["lineItems"][0]["shipmentTracking"] for n in sim.notifications(po)] == [
        "1Z999AA10123456784",
        "1Z999AA10123456784,1ZNEWNUMBER",
    ]


def test_unknown_recipe_sets_are_a_hard_error_naming_them_and_nothing_is_updated(
    spectrum_stack: Stack, sim: SpectrumSimulator, store: str
) -> None:
    po, known = purchase_order(), recipe_set()
    sim.add_order(po, known)
    body = confirm_message(po, [known, "ZZZZ9999", "sku-123"])

    refused = send(spectrum_stack, body, store)

    assert refused.status_code == 500
    errors = notes(refused, "error")
    text = " ".join(e["description"] for e in errors)
    assert "Unable to find recipeSetReadableId(s): ZZZZ9999, sku-123." in text  # its own words
    assert "ZZZZ9999, sku-123" in text and "nothing in the order was updated" in text
    assert "sku-123 do(es) not look like a recipeSetReadableId" in text
    assert attempts(spectrum_stack, body) == 1  # hard: not retried
    assert sim.notifications() == []
    assert sim.order(po) == {known: None}  # all or nothing: the known one was not updated either


def test_a_404_with_the_unknown_recipe_set_body_is_treated_like_the_409(
    spectrum_stack: Stack, sim: SpectrumSimulator, store: str
) -> None:
    sim.configure(unknown_status=404)
    body = confirm_message(purchase_order(), ["ABCD1234"])  # a purchase order Spectrum lacks
    refused = send(spectrum_stack, body, store)
    assert refused.status_code == 500
    (error, *_) = notes(refused, "error")
    assert error["subject"] == "Spectrum refused the ship notification"
    assert "HTTP 404" in json.dumps(refused.json()) and "ABCD1234" in error["description"]
    assert attempts(spectrum_stack, body) == 1


def test_a_500_is_retried_and_the_notification_then_sent(
    spectrum_stack: Stack, sim: SpectrumSimulator, store: str
) -> None:
    po, rs = purchase_order(), recipe_set()
    sim.add_order(po, rs)
    sim.fault("http_500")
    body = confirm_message(po, [rs])
    response = send(spectrum_stack, body, store)
    assert response.status_code == 200, response.text
    assert attempts(spectrum_stack, body) == 2
    assert sim.requests()["internal_errors"] == 1
    assert len(sim.notifications(po)) == 1


def test_a_burst_of_confirmations_is_paced_under_the_limit_and_all_are_sent(
    spectrum_stack: Stack, sim: SpectrumSimulator, store: str
) -> None:
    """The simulator answers 403 past 5 requests in 2 s; 15 confirmations at once all get
    through, paced (2 a second), without a single 403."""
    po = purchase_order()
    sets = [recipe_set() for _ in range(15)]
    sim.add_order(po, *sets)
    bodies = [confirm_message(po, [rs]) for rs in sets]
    with ThreadPoolExecutor(len(bodies)) as pool:
        posted = list(pool.map(lambda b: spectrum_stack.post(SERVICE, b, store=store), bodies))
    assert all(p.status_code in (200, 202) for p in posted)

    for body in bodies:
        spectrum_stack.wait_status(
            "spectrum", body["message_id"], "succeeded", "failed", "dead", timeout=60
        )
    statuses = {spectrum_stack.record("spectrum", b["message_id"])["status"] for b in bodies}
    assert statuses == {"succeeded"}
    assert len(sim.notifications(po)) == 15
    assert sim.requests().get("throttled", 0) == 0


def test_a_throttling_403_is_retried_after_a_pause(
    spectrum_stack: Stack, sim: SpectrumSimulator, store: str
) -> None:
    po, rs = purchase_order(), recipe_set()
    sim.add_order(po, rs)
    sim.fault("forbidden", count=2)  # throttled twice: within the 3 retries
    body = confirm_message(po, [rs])
    response = send(spectrum_stack, body, store)
    assert response.status_code == 200, response.text
    assert attempts(spectrum_stack, body) == 3
    assert len(sim.notifications(po)) == 1


def test_a_bad_token_fails_after_the_bounded_retries_saying_either_cause_without_the_token(
    spectrum_stack: Stack, sim: SpectrumSimulator, store: str
) -> None:
    po, rs = purchase_order(), recipe_set()
    sim.add_order(po, rs)
    bad = "wrong-spectrum-token-0815"
    body = confirm_message(po, [rs])
    body["payload"]["parameters"] = [{"name": "api_token", "value": bad}]

    refused = send(spectrum_stack, body, store)

    assert refused.status_code == 500, refused.text
    (error, *_) = notes(refused, "error")
    assert error["subject"] == "Spectrum answered 403 Forbidden"
    assert "403 Forbidden 4 times" in error["description"]
    assert "either the token is wrong" in error["description"]
    assert "throttling" in error["description"]
    record = spectrum_stack.record("spectrum", body["message_id"])
    assert record["attempts"] == 4  # the first 403 and 3 retries (SPECTRUM_FORBIDDEN_RETRIES)
    assert sim.requests()["forbidden"] == 4
    assert sim.notifications() == []
    for text in (json.dumps(refused.json()), json.dumps(record), spectrum_stack.logs()):
        assert bad not in text and TOKEN not in text


def test_the_prefixed_token_parameter_wins_over_the_bare_one(
    spectrum_stack: Stack, sim: SpectrumSimulator, store: str
) -> None:
    po, rs = purchase_order(), recipe_set()
    sim.add_order(po, rs)
    body = confirm_message(po, [rs])
    body["payload"]["parameters"] = [
        {"name": "spectrum.api_token", "value": TOKEN},
        {"name": "api_token", "value": "a-bare-wrong-token"},
    ]
    assert send(spectrum_stack, body, store).status_code == 200
    assert sim.requests().get("forbidden", 0) == 0


def test_a_shipment_without_its_ids_is_refused_at_intake_naming_them(
    spectrum_stack: Stack, sim: SpectrumSimulator, store: str
) -> None:
    no_recipe_set = confirm_message(purchase_order(), [recipe_set()])
    del no_recipe_set["payload"]["shipment"]["items"][0]["spectrum_recipe_set_id"]
    no_order = confirm_message(None, [recipe_set()])
    no_tracking = confirm_message(purchase_order(), [recipe_set()], tracking=None)

    answers = {
        name: send(spectrum_stack, body, store)
        for name, body in (
            ("recipe_set", no_recipe_set),
            ("order", no_order),
            ("tracking", no_tracking),
        )
    }

    assert {r.status_code for r in answers.values()} == {422}
    assert "payload.shipment.items.0.spectrum_recipe_set_id" in answers["recipe_set"].text
    assert "purchase_order_number or order_number is required" in answers["order"].text
    assert "a tracking number is required" in answers["tracking"].text
    assert sim.requests().get("received", 0) == 0
