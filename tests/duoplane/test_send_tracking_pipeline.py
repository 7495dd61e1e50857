"""send_tracking (shipment:confirm) through the real pieces: one shipment on the purchase order
with the right carrier, items and every tracking number; never a second one (the same
confirmation again, a lost answer, a worker killed mid-create); refusals in Duoplane's words."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.duoplane.conftest import (
    LANDS_WITHIN,
    MUG,
    PLATE,
    PURCHASE_ORDER,
    DuoplaneSimulator,
    confirm_message,
    duoplane_env,
    post,
    tracking_number,
    vendor_shipment,
)
from tests.support.servers import HubServer
from tests.support.stack import Stack, killable, wait_until


def sent(body: dict[str, Any]) -> dict[str, Any]:
    return body["payload"]["shipment"]


def notes(response: Any, level: str) -> list[dict[str, Any]]:
    return notes_of(response.json(), level)


def notes_of(answer: dict[str, Any], level: str) -> list[dict[str, Any]]:
    return [n for n in answer["notifications"] if n["level"] == level]


def test_a_confirmation_creates_one_shipment_with_every_tracking_number(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    body = confirm_message()
    shipment = sent(body)
    response = post(duoplane_stack, "send_tracking", body, store)

    assert response.status_code == 200, response.text
    (created,) = sim.shipments(PURCHASE_ORDER)
    assert created["shipper_id"] == 1 and created["shipper_name"] == "UPS"
    assert [t["tracking"] for t in created["shipment_trackings_attributes"]] == shipment[
        "tracking_numbers"
    ]
    assert [(i["order_item_id"], i["quantity"]) for i in created["shipment_items_attributes"]] == [
        (MUG, 1),
        (PLATE, 2),  # the plate split over two cartons: one line
    ]
    (info,) = notes(response, "info")
    assert info["subject"] == "Tracking sent to Duoplane"
    assert str(created["id"]) in info["description"]
    assert response.json()["messages"] == []


@pytest.mark.parametrize(
    ("carrier", "shipper"),
    [
        ("FedEx", ("shipper_id", 2)),
        ("USPS", ("shipper_id", 17)),
        ("DHL eCommerce", ("shipper_id", 395)),
        ("OnTrac", ("shipper_name", "OnTrac")),
    ],
)
def test_the_carrier_goes_by_id_from_the_seeds_table_else_by_name(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str, carrier: str, shipper: tuple
) -> None:
    body = confirm_message(carrier=carrier, carriers=[carrier])
    assert post(duoplane_stack, "send_tracking", body, store).status_code == 200
    (created,) = sim.shipments(PURCHASE_ORDER)
    name, value = shipper
    assert created[name] == value


def test_the_same_confirmation_again_creates_nothing(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    first = confirm_message()
    assert post(duoplane_stack, "send_tracking", first, store).status_code == 200
    creates = sim.requests()["requests"].get("create", 0)
    again = json.loads(json.dumps(first))
    again["message_id"] = first["message_id"] + "-again"
    response = post(duoplane_stack, "send_tracking", again, store)

    assert response.status_code == 200, response.text
    assert len(sim.shipments(PURCHASE_ORDER)) == 1
    assert sim.requests()["requests"].get("create", 0) == creates
    (info,) = notes(response, "info")
    assert info["subject"] == "Tracking already sent to Duoplane"
    assert first["message_id"] in info["description"]


def test_a_shipment_duoplane_already_holds_is_found_not_created_again(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    """The vendor (or a create whose answer never came) already put this tracking there."""
    body = confirm_message()
    shipment = sent(body)
    made = vendor_shipment(sim, shipment["tracking_numbers"])
    response = post(duoplane_stack, "send_tracking", body, store)
    assert response.status_code == 200, response.text
    assert len(sim.shipments(PURCHASE_ORDER)) == 1
    (info,) = notes(response, "info")
    assert info["subject"] == "Tracking already at Duoplane"
    assert str(made) in info["description"]


def test_a_create_whose_answer_was_lost_is_found_on_the_retry(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    """Its outcome unknown, the create is looked up once it can no longer land (LANDS_WITHIN
    after it was sent), in the next attempt."""
    sim.fault("create", "lost_answer")  # stored at Duoplane, answered 502
    body = confirm_message()
    posted = time.time()
    assert duoplane_stack.post("/duoplane/send_tracking", body, store=store).status_code == 200
    record = duoplane_stack.wait_status(
        "duoplane", body["message_id"], "succeeded", "failed", "dead", timeout=LANDS_WITHIN + 60
    )
    assert record["status"] == "succeeded", record
    assert len(sim.with_tracking(sent(body)["tracking"])) == 1
    assert sim.requests()["requests"]["create"] == 1
    assert record["attempts"] == 2
    finished = datetime.fromisoformat(record["finished_at"]).timestamp()
    assert finished >= posted + LANDS_WITHIN - 0.5
    (info,) = notes_of(record["answer"], "info")
    assert info["subject"] == "Tracking already at Duoplane"


def test_a_refusal_is_a_hard_error_in_duoplanes_words(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    body = confirm_message(carrier="Pigeon Express", carriers=[])
    response = post(duoplane_stack, "send_tracking", body, store)
    assert response.status_code == 500
    (error,) = notes(response, "error")
    assert "422" in error["subject"]
    assert (
        "Pigeon Express does not match a carrier in this Duoplane account" in (error["description"])
    )
    assert duoplane_stack.record("duoplane", body["message_id"])["attempts"] == 1
    assert sim.shipments() == []


def test_list_shaped_errors_are_read_too(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    sim.configure(error_format="list")
    body = confirm_message()
    body["payload"]["shipment"]["items"][0]["duoplane_order_item_id"] = 111
    response = post(duoplane_stack, "send_tracking", body, store)
    assert response.status_code == 500
    assert "order item 111 is not on purchase order 987654" in json.dumps(response.json())


def test_a_confirmation_without_tracking_is_refused_before_anything_is_sent(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    body = confirm_message(tracking=None, tracking_numbers=[], cartons=[])
    response = post(duoplane_stack, "send_tracking", body, store)
    assert response.status_code == 500
    assert "no tracking number" in json.dumps(response.json())
    assert sim.requests()["total"] == 0


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("duoplane_purchase_order_id",), "duoplane_purchase_order_id"),
        (("items", 0, "duoplane_order_item_id"), "duoplane_order_item_id"),
    ],
)
def test_a_missing_duoplane_id_is_refused_at_intake_naming_it(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str, path: tuple, field: str
) -> None:
    body = confirm_message()
    holder: Any = sent(body)
    for step in path[:-1]:
        holder = holder[step]
    del holder[path[-1]]
    response = post(duoplane_stack, "send_tracking", body, store)
    assert response.status_code == 422
    assert field in response.text


def test_a_wrong_password_is_a_hard_error_that_does_not_echo_it(
    duoplane_stack: Stack, sim: DuoplaneSimulator, store: str
) -> None:
    body = confirm_message()
    body["payload"]["parameters"] = [{"name": "duoplane.password", "value": "wrong-secret-pw-42"}]
    response = post(duoplane_stack, "send_tracking", body, store)
    assert response.status_code == 500
    text = json.dumps(response.json())
    assert "Duoplane refused the credentials" in text
    assert "check api_key and password" in text
    assert "wrong-secret-pw-42" not in text
    assert duoplane_stack.record("duoplane", body["message_id"])["attempts"] == 1
    assert sim.shipments() == []


@pytest.fixture
def kill_stack(simulator_process: DuoplaneSimulator, hub: HubServer) -> Iterator[Stack]:
    with killable(duoplane_env(simulator_process, hub)) as running:
        yield running


def test_a_worker_killed_while_duoplane_stores_the_shipment_leaves_exactly_one(
    kill_stack: Stack, simulator_process: DuoplaneSimulator, store: str
) -> None:
    sim = simulator_process
    sim.reset()
    sim.fault("create", "slow", delay_seconds=2.0)  # stored after the worker died
    body = confirm_message(tracking=tracking_number())
    number = sent(body)["tracking"]
    assert kill_stack.post("/duoplane/send_tracking", body, store=store).status_code == 200
    wait_until(lambda: sim.requests()["requests"].get("create") == 1, timeout=20)
    kill_stack.services["first"].kill()  # kill -9 while the create is in flight
    wait_until(lambda: len(sim.with_tracking(number)) == 1, timeout=10)
    kill_stack.start_worker("second")

    record = kill_stack.wait_status("duoplane", body["message_id"], "succeeded", timeout=60)
    assert record["attempts"] == 2
    assert sim.requests()["requests"]["create"] == 1  # found by the look, not made again
    assert len(sim.with_tracking(number)) == 1
    assert len(sim.shipments(PURCHASE_ORDER)) == 1
