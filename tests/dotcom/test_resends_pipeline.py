"""Dotcom through the real pieces (receiver, worker, redis-server, the simulator): a message is
what it asks for, its numbers by value; a replay runs with the parameters the hub sent with it
(credentials and lookups ride in every message), and never creates an order twice."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import requests

from tests.dotcom.conftest import (
    ENV_SHIPPING_LOOKUP,
    SENT,
    DotcomSimulator,
    dotcom_env,
    post,
    shipment_message,
)
from tests.dotcom.test_send_shipment_pipeline import orders_for
from tests.support.servers import HubServer
from tests.support.stack import RedisServer, Stack, serving


def priced(body: dict, price: float | int) -> dict:
    for item in body["payload"]["shipment"]["items"]:
        item["price"] = price
    return body


def test_the_same_shipment_with_29_for_29_0_is_the_same_message(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    first = priced(shipment_message(), 29.0)
    assert post(dotcom_stack, "send_shipment", first, store).status_code == 200

    again = post(dotcom_stack, "send_shipment", priced(copy.deepcopy(first), 29), store)

    assert again.status_code == 200, again.text  # not "Conflicting message_id"
    assert again.json()["notifications"][0]["subject"] == SENT  # the first one's answer
    assert sim.orders()["order_requests"] == 1


def test_a_number_spelt_29_0_in_text_is_the_same_as_29_to_already_sent(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    """variant_id is text to Dotcom (client-item): 4123.0 and 4123 are one variant, so the same
    shipment under a new message_id is "already sent", not another order under its number."""
    first = shipment_message()
    for item in first["payload"]["shipment"]["items"]:
        item["variant_id"] = float(item["variant_id"])
    shipment = first["payload"]["shipment"]
    assert post(dotcom_stack, "send_shipment", first, store).status_code == 200
    again = shipment_message(shipment["number"], order_number=shipment["order_number"])

    response = post(dotcom_stack, "send_shipment", again, store)

    assert response.status_code == 200, response.text
    (note,) = response.json()["notifications"]
    assert "already sent" in note["description"], note
    assert sim.orders()["order_requests"] == 1


# -- replays, with the hub's parameters ----------------------------------------------------------


@pytest.fixture(scope="module")
def hub_lookup(
    redis_server: RedisServer, simulator_process: DotcomSimulator, hub: HubServer
) -> Iterator[Stack]:
    """No DOTCOM_SHIPPING_LOOKUP: the hub sends the lookup in each message. An unknown create
    can no longer land 3 s after it was sent."""
    env = {
        **dotcom_env(simulator_process, hub),
        "DOTCOM_SHIPPING_LOOKUP": None,
        "DOTCOM_READ_TIMEOUT_SECONDS": "2",
        "DOTCOM_LATE_LANDING_SECONDS": "0",
    }
    with serving(redis_server, env) as running:
        yield running


def with_lookup() -> dict:
    return shipment_message(parameters={"dotcom.shipping_lookup": ENV_SHIPPING_LOOKUP})


def replay(stack: Stack, message_id: str) -> requests.Response:
    return requests.post(
        f"{stack.url}/messages/dotcom/{message_id}/replay", headers=stack.headers(), timeout=10
    )


def test_a_dead_message_with_the_hubs_lookup_replays_with_it(
    hub_lookup: Stack, sim: DotcomSimulator, store: str
) -> None:
    body = with_lookup()
    number = body["payload"]["shipment"]["number"]
    sim.fault("http_503", "order")  # attempt 1; attempts 2 and 3 look for it, and fail
    sim.fault("http_503", "order_status", count=2)
    assert hub_lookup.post("/dotcom/send_shipment", body, store=store).status_code == 200
    hub_lookup.wait_status("dotcom", body["message_id"], "dead", timeout=60)

    assert replay(hub_lookup, body["message_id"]).status_code == 200

    record = hub_lookup.wait_status(
        "dotcom", body["message_id"], "succeeded", "failed", "dead", timeout=30
    )
    assert record["status"] == "succeeded", record  # not "Missing parameter 'shipping_lookup'"
    assert len(orders_for(sim, number)) == 1


def test_a_replay_of_a_message_whose_order_landed_does_not_send_it_again(
    hub_lookup: Stack, sim: DotcomSimulator, store: str
) -> None:
    """Its order reached Dotcom (the answer was cut), and every look for it failed until the
    message was dead: the replay starts afresh, but looks before it creates, and finds it."""
    body = with_lookup()
    number = body["payload"]["shipment"]["number"]
    sim.fault("malformed_xml", "order")  # stored; its answer cut in half
    sim.fault("http_503", "order_status", count=2)
    assert hub_lookup.post("/dotcom/send_shipment", body, store=store).status_code == 200
    hub_lookup.wait_status("dotcom", body["message_id"], "dead", timeout=60)
    assert len(orders_for(sim, number)) == 1

    assert replay(hub_lookup, body["message_id"]).status_code == 200

    record = hub_lookup.wait_status(
        "dotcom", body["message_id"], "succeeded", "failed", "dead", timeout=30
    )
    assert record["status"] == "succeeded", record
    assert len(orders_for(sim, number)) == 1
    assert sim.orders()["order_requests"] == 1
