"""send_tracking through the real pipeline (receiver, Celery worker, redis-server) against the
ecomdash simulator: one record per confirmation, batches per account, each message its own
record's outcome, errors that name the wrong key, retries, no second delivery."""

from __future__ import annotations

import json
import time

from tests.ecomdash.conftest import (
    BATCH_SIZE,
    EcomdashSimulator,
    confirm_message,
    post_all,
    wait_finished,
)
from tests.support.servers import HubServer
from tests.support.stack import Stack, wait_until


def send(stack: Stack, body: dict, wait: float = 30):  # type: ignore[no-untyped-def]
    return stack.post("/ecomdash/send_tracking", body, wait=wait)


def notes(response_json: dict, level: str) -> list[dict]:
    return [n for n in response_json["notifications"] if n["level"] == level]


def test_one_confirmation_is_one_record_held_at_ecomdash(
    stack: Stack, sim: EcomdashSimulator, hub: HubServer
) -> None:
    body = confirm_message("20405.0")
    response = send(stack, body)
    assert response.status_code == 200, response.text
    (info,) = notes(response.json(), "info")
    assert info["subject"] == "Tracking sent to ecomdash"
    assert "ShipmentId 20405" in info["description"]
    assert "Found 1 shipments" in info["description"]  # ecomdash's top-level words, on success
    (held,) = sim.tracking(20405)
    assert held["TrackingNumber"] == body["payload"]["shipment"]["tracking"]
    assert held["CarrierId"] == 1  # UPS through carrier_lookup
    assert held["ShippedDate"] == "2024-05-01T14:15:00"  # no zone, as ecomdash writes dates
    assert held["TrackingURL"].startswith("https://www.ups.com/")
    assert held["LineItems"] == []  # every remaining item shipped
    assert sim.stats()["calls"] == 1
    hub.wait_for(body["message_id"])


def test_a_partial_shipment_goes_as_line_items_with_their_own_numbers(
    stack: Stack, sim: EcomdashSimulator
) -> None:
    body = confirm_message(
        20404,
        tracking=None,
        tracking_numbers=[],
        cartons=[
            {"carton_id": "C1", "tracking_number": "1ZA"},
            {"carton_id": "C2", "tracking_number": "1ZB"},
        ],
        items=[
            {"sku": "A", "quantity": 1, "ecomdash_line_item_id": 204041, "carton_id": "C1"},
            {"sku": "B", "quantity": 2, "ecomdash_line_item_id": 204042, "carton_id": "C2"},
        ],
    )
    assert send(stack, body).status_code == 200
    (held,) = sim.tracking(20404)
    assert held["TrackingNumber"] == "1ZA"
    assert [(i["LineItemId"], i["TrackingNumber"]) for i in held["LineItems"]] == [
        (204041, None),  # inherits the record's 1ZA
        (204042, "1ZB"),
    ]


def test_a_carrier_missing_from_the_lookup_is_sent_without_carrier_id_and_warned(
    stack: Stack, sim: EcomdashSimulator
) -> None:
    response = send(stack, confirm_message(20405, carrier="OnTrac"))
    assert response.status_code == 200
    (warning,) = notes(response.json(), "warn")
    assert "'OnTrac' is not in carrier_lookup" in warning["description"]
    (held,) = sim.tracking(20405)
    assert held["CarrierId"] is None


def test_a_confirmation_without_the_ecomdash_shipment_id_is_refused_at_intake(
    stack: Stack,
) -> None:
    response = send(stack, confirm_message(None))
    assert response.status_code == 422
    assert "payload.shipment.ecomdash_shipment_id" in json.dumps(response.json())


def test_one_bad_record_in_a_batch_fails_only_its_own_message(
    stack: Stack, sim: EcomdashSimulator
) -> None:
    sim.add_shipments(500000, 5)
    good = [confirm_message(500000 + i) for i in range(5)]
    bad = confirm_message(999999)
    post_all(stack, [*good, bad], clients=6)
    found = wait_finished(stack, [b["message_id"] for b in [*good, bad]], timeout=30)
    assert sim.stats()["answered"] == {"200": 1}  # one call carried all six
    assert [found[b["message_id"]] for b in good] == ["succeeded"] * 5
    assert found[bad["message_id"]] == "failed"
    record = stack.record("ecomdash", bad["message_id"])
    assert "Shipment 999999 was not found." in json.dumps(record)
    assert len(sim.tracking()) == 5


def test_a_wrong_ecd_key_is_named_and_not_echoed(stack: Stack, sim: EcomdashSimulator) -> None:
    body = confirm_message(20405)
    body["payload"]["parameters"] = [{"name": "ecomdash.ecd_key", "value": "wrong-ecd-secret-77"}]
    response = send(stack, body)
    assert response.status_code == 500
    text = json.dumps(response.json())
    assert "check ecd_key" in text and "HTTP 403" in text
    assert "current ecomdash subscription" in text  # ecomdash's own words
    assert "wrong-ecd-secret-77" not in text
    assert stack.record("ecomdash", body["message_id"])["attempts"] == 1  # not retried
    assert sim.tracking() == []


def test_a_wrong_subscription_key_is_named_and_not_echoed(
    stack: Stack, sim: EcomdashSimulator
) -> None:
    body = confirm_message(20405)
    body["payload"]["parameters"] = [{"name": "subscription_key", "value": "wrong-apim-secret-88"}]
    response = send(stack, body)
    assert response.status_code == 500
    text = json.dumps(response.json())
    assert "check subscription_key" in text and "HTTP 401" in text
    assert "invalid subscription key" in text  # the gateway's own words
    assert "wrong-apim-secret-88" not in text
    assert sim.tracking() == []


def test_500_and_429_are_retried_until_the_tracking_is_taken(
    stack: Stack, sim: EcomdashSimulator
) -> None:
    for kind, extra in (
        ("http_500", {}),
        ("rate_limited", {"retry_after": 1}),
        ("concurrency", {}),
    ):
        sim.reset()
        sim.fault(kind, **extra)
        body = confirm_message(20405)
        started = time.monotonic()
        response = send(stack, body)
        assert response.status_code == 200, (kind, response.text)
        assert stack.record("ecomdash", body["message_id"])["attempts"] == 2, kind
        assert len(sim.tracking(20405)) == 1, kind
        if kind == "rate_limited":
            assert time.monotonic() - started >= 1.0  # Retry-After honoured


def test_the_rate_limit_is_waited_out(stack: Stack, sim: EcomdashSimulator) -> None:
    """The simulator's real limit, cut to 1 call in 2 s: a second batch meets a 429 with
    Retry-After, is retried after it, and lands."""
    sim.configure(rate_limit=1, rate_window_seconds=2)
    first, second = confirm_message(20405), confirm_message(20404)
    assert send(stack, first).status_code == 200
    assert send(stack, second).status_code == 200
    assert sim.stats()["answered"].get("429", 0) >= 1
    assert len(sim.tracking()) == 2


def test_the_same_shipment_confirmed_twice_is_not_sent_again(
    stack: Stack, sim: EcomdashSimulator
) -> None:
    first = confirm_message(20405)
    assert send(stack, first).status_code == 200
    again = json.loads(json.dumps(first))
    again["message_id"] = first["message_id"] + "-again"
    response = send(stack, again)
    assert response.status_code == 200
    (info,) = notes(response.json(), "info")
    assert info["subject"] == "Tracking already delivered to ecomdash"
    assert first["message_id"] in info["description"]
    assert len(sim.tracking(20405)) == 1
    # a correction (another tracking number) is a new delivery
    fixed = confirm_message(20405, tracking="1ZNEW", tracking_numbers=[], cartons=[])
    assert send(stack, fixed).status_code == 200
    first_number = first["payload"]["shipment"]["tracking"]
    assert [t["TrackingNumber"] for t in sim.tracking(20405)] == [first_number, "1ZNEW"]


def test_two_messages_with_the_same_delivery_at_once_send_it_once(
    stack: Stack, sim: EcomdashSimulator
) -> None:
    first = confirm_message(20405)
    twin = json.loads(json.dumps(first))
    twin["message_id"] = first["message_id"] + "-twin"
    post_all(stack, [first, twin], clients=2)
    found = wait_finished(stack, [first["message_id"], twin["message_id"]], timeout=30)
    assert set(found.values()) == {"succeeded"}
    assert len(sim.tracking(20405)) == 1


def test_a_burst_of_500_confirmations_goes_out_in_a_handful_of_calls(
    stack: Stack, sim: EcomdashSimulator, hub: HubServer
) -> None:
    sim.add_shipments(300000, 500)
    bodies = [confirm_message(300000 + i) for i in range(500)]
    ids = [b["message_id"] for b in bodies]
    started = time.monotonic()
    post_all(stack, bodies)
    found = wait_finished(stack, ids, timeout=60)
    took = time.monotonic() - started
    assert set(found.values()) == {"succeeded"}
    stats = sim.stats()
    assert stats["calls"] <= 500 / BATCH_SIZE + 3, stats
    assert stats["answered"] == {"200": stats["calls"]}  # no 429: paced, never over a limit
    assert stats["max_concurrency"] <= 3
    held = sim.tracking()
    assert sorted(t["ShipmentId"] for t in held) == list(range(300000, 300500))  # each once
    assert took < 60
    wait_until(lambda: all(hub.received(i) for i in ids), timeout=30)
