"""A replayed confirmation starts from scratch at ecomdash (real receiver, worker, redis-server
and simulator): what the refused run was answered is not the replay's answer."""

from __future__ import annotations

import requests

from tests.ecomdash.conftest import EcomdashSimulator, confirm_message
from tests.support.stack import Stack


def test_a_replay_of_a_refused_confirmation_asks_ecomdash_again(
    stack: Stack, sim: EcomdashSimulator
) -> None:
    body = confirm_message(30301)  # a shipment ecomdash does not hold (yet)
    refused = stack.post("/ecomdash/send_tracking", body, wait=30)
    assert refused.status_code == 500, refused.text
    assert "Shipment 30301 was not found" in refused.text
    calls = sim.stats()["calls"]
    sim.add_shipments(30301, 1)  # the operator has the order put right at ecomdash

    replayed = requests.post(
        f"{stack.url}/messages/ecomdash/{body['message_id']}/replay",
        headers=stack.headers(),
        timeout=10,
    )

    assert replayed.status_code == 200, replayed.text
    record = stack.wait_status(
        "ecomdash", body["message_id"], "succeeded", "failed", "dead", timeout=30
    )
    assert record["status"] == "succeeded", record  # not the old refusal, kept for 24 h
    assert sim.stats()["calls"] == calls + 1
    (held,) = sim.tracking(30301)
    assert held["TrackingNumber"] == body["payload"]["shipment"]["tracking"]
