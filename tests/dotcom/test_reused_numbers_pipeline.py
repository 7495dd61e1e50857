"""A shipment number that Dotcom already holds, met by a new message (real stack and simulator):
the same shipment again is "already sent"; another shipment under that number is refused saying
what differs. Both are answered from what was kept, before any call: nothing rests on what
Dotcom does with a number it holds (not documented; the simulator stores it again)."""

from __future__ import annotations

import copy

from tests.dotcom.conftest import DotcomSimulator, post, seed_shipment_ready, shipment_message
from tests.dotcom.test_send_shipment_pipeline import orders_for
from tests.support.stack import Stack


def other_address() -> dict[str, str]:
    address = copy.deepcopy(seed_shipment_ready()["payload"]["shipment"]["shipping_address"])
    address["address1"] = "7 Elsewhere Road"
    return address


def test_the_same_shipment_under_a_new_message_id_is_already_sent(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    first = shipment_message()
    shipment = first["payload"]["shipment"]
    assert post(dotcom_stack, "send_shipment", first, store).status_code == 200
    again = shipment_message(shipment["number"], order_number=shipment["order_number"])

    response = post(dotcom_stack, "send_shipment", again, store)

    assert response.status_code == 200, response.text
    (note,) = response.json()["notifications"]
    assert note["level"] == "info"
    assert "already sent" in note["description"]
    assert first["message_id"] in note["description"]
    assert len(orders_for(sim, shipment["number"])) == 1
    assert sim.orders()["order_requests"] == 1  # nothing was sent again


def test_another_shipment_under_a_sent_number_is_refused_saying_what_differs_before_any_call(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    first = shipment_message()
    shipment = first["payload"]["shipment"]
    assert post(dotcom_stack, "send_shipment", first, store).status_code == 200
    other = shipment_message(
        shipment["number"], order_number=shipment["order_number"], shipping_address=other_address()
    )

    response = post(dotcom_stack, "send_shipment", other, store)

    assert response.status_code == 500, response.text
    (note,) = response.json()["notifications"]
    assert note["level"] == "error"
    assert "already" in note["description"]
    assert "7 Elsewhere Road" in note["description"]  # what differs...
    assert "2 Wisconsin Cir." in note["description"]  # ...from what Dotcom holds
    assert first["message_id"] in note["description"]
    assert dotcom_stack.record("dotcom", other["message_id"])["attempts"] == 1
    assert sim.orders()["order_requests"] == 1  # the first message's only
    (held,) = orders_for(sim, shipment["number"])
    assert "2 Wisconsin Cir." in held["xml"]  # Dotcom still holds the first order's address
