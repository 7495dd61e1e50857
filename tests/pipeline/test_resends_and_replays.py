"""What a hub resend and an operator's replay do, through the real pieces (receiver, worker
processes, redis-server, the Acme provider over HTTP), with the hub's model of configuration:
credentials ride in every message (the stack has no ``ACME_API_KEY`` of its own).

* A resend (the same ``message_id``) is the same message whatever parameters it carries
  (rotated credentials, a newer cursor): it is answered as the first, and the parameters of the
  newest copy are kept (sealed) for any run still to come: a retry, or a replay.
* A replay runs with the parameters the message carried, exactly as its first run did; it is
  checked before anything about the record changes.
* A succeeded record shows no error as current; the error its earlier attempts met is kept
  apart (``earlier_error``).
* A due retry is never dropped by a worker process that does not run its integration.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.pipeline.conftest import stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, Stack, serving, wait_until
from worker.store.schema import DUE, WATCH, record_key

KEY = ProviderServer.API_KEY
REVOKED = "a-revoked-key"


@pytest.fixture(scope="module")
def hub_model(
    redis_server: RedisServer, provider: ProviderServer, hub: HubServer
) -> Iterator[Stack]:
    """Receiver and worker with no Acme key of their own: the messages carry it."""
    with serving(redis_server, {**stack_env(provider, hub), "ACME_API_KEY": None}) as running:
        yield running


def carrying(body: dict[str, Any], key: str, where: str = "payload") -> dict[str, Any]:
    parameters = [{"name": "acme.api_key", "value": key}]
    if where == "payload":
        body["payload"]["parameters"] = parameters
    else:
        body["parameters"] = parameters
    return body


def replay(stack: Stack, message_id: str) -> requests.Response:
    return requests.post(
        f"{stack.url}/messages/acme/{message_id}/replay", headers=stack.headers(), timeout=10
    )


def fields_of(stack: Stack, message_id: str) -> dict[str, str]:
    return stack.redis.client().hgetall(record_key("acme", message_id))


@pytest.mark.parametrize("where", ["payload", "top-level"])
def test_a_resend_with_rotated_credentials_is_the_same_message_and_its_key_is_kept(
    hub_model: Stack, provider: ProviderServer, where: str
) -> None:
    body = carrying(order_message(), REVOKED, where)
    message_id, number = body["message_id"], body["payload"]["order"]["number"]
    first = hub_model.post("/acme/send_order", body, wait=20)
    assert first.status_code == 500, first.text  # Acme refuses the revoked key: failed

    resent = hub_model.post("/acme/send_order", carrying(body, KEY, where))

    assert resent.status_code == 200, resent.text  # not "Conflicting message_id"
    assert resent.json()["status"] == "failed"  # answered as the first: not run again
    assert provider.effects_for(number) == 0
    assert replay(hub_model, message_id).status_code == 200
    record = hub_model.wait_status("acme", message_id, "succeeded", "failed", "dead")
    assert record["status"] == "succeeded", record  # the replay ran with the resent key
    assert provider.effects_for(number) == 1


def test_a_resend_of_a_poll_with_a_newer_cursor_is_answered_as_the_first(
    hub_model: Stack, provider: ProviderServer
) -> None:
    with provider.lock:
        provider.shipments[:] = [{"id": 7, "number": "H7", "tracking": "1Z7"}]
    poll = {
        "message_id": uuid.uuid4().hex[:24],
        "message": "acme:shipments:poll",
        "payload": {
            "parameters": [
                {"name": "acme.api_key", "value": KEY},
                {"name": "acme.since", "value": 5},
            ]
        },
    }
    polls_before = len(provider.polled_since)
    first = hub_model.post("/acme/tracking", poll, wait=20)
    assert first.status_code == 200, first.text
    poll["payload"]["parameters"][1]["value"] = 7  # the hub's cursor moved on meanwhile

    again = hub_model.post("/acme/tracking", poll, wait=20)

    assert again.status_code == 200, again.text
    assert again.json() == first.json()  # the same answer, from the record: not polled again
    assert provider.polled_since[polls_before:] == [5]


def test_a_dead_message_replays_with_the_parameters_it_carried(
    hub_model: Stack, provider: ProviderServer
) -> None:
    body = carrying(order_message(), KEY)
    message_id, number = body["message_id"], body["payload"]["order"]["number"]
    provider.script(number, *[{"status": 503, "errors": ["maintenance"]}] * 3)
    assert hub_model.post("/acme/send_order", body).status_code == 200
    hub_model.wait_status("acme", message_id, "dead")
    kept = fields_of(hub_model, message_id)["parameters"]
    assert kept.startswith("aead:") and KEY not in kept  # kept, sealed

    assert replay(hub_model, message_id).status_code == 200

    record = hub_model.wait_status("acme", message_id, "succeeded", "failed", "dead")
    assert record["status"] == "succeeded", record  # not "Missing parameter 'api_key'"
    assert (record["attempts"], record["replays"]) == (1, 1)
    assert provider.effects_for(number) == 1


def test_a_replay_runs_with_the_credentials_it_carried_not_the_configurations(
    hub_model: Stack, provider: ProviderServer
) -> None:
    """Exactly as the first run: a revoked key carried is the revoked key replayed (the hub
    sends the message again with the new key, then it is replayed: see above)."""
    body = carrying(order_message(), REVOKED)
    assert hub_model.post("/acme/send_order", body, wait=20).status_code == 500

    assert replay(hub_model, body["message_id"]).status_code == 200

    record = hub_model.wait_status("acme", body["message_id"], "succeeded", "failed", "dead")
    assert (record["status"], record["replays"]) == ("failed", 1)
    assert "Invalid API key" in record["last_error"]
    assert provider.effects_for(body["payload"]["order"]["number"]) == 0


def test_a_replay_nothing_can_take_changes_nothing(hub_model: Stack) -> None:
    """A record of a message type this version no longer takes (one of an older version): the
    replay is refused before the record is touched, so the message keeps its state."""
    body = carrying(order_message(), REVOKED)
    message_id = body["message_id"]
    assert hub_model.post("/acme/send_order", body, wait=20).status_code == 500
    wait_until(lambda: hub_model.record("acme", message_id)["delivery"]["status"] == "delivered")
    client = hub_model.redis.client()
    client.hset(record_key("acme", message_id), "message", "order:withdrawn")
    before = fields_of(hub_model, message_id)

    refused = replay(hub_model, message_id)

    assert refused.status_code == 409, refused.text
    assert "order:withdrawn" in refused.json()["notifications"][0]["description"]
    assert fields_of(hub_model, message_id) == before  # still failed, not queued
    assert client.zscore(WATCH, f"acme:{message_id}") is None  # nor watched as if queued


def test_a_message_that_succeeds_after_a_retry_shows_no_current_error(
    hub_model: Stack, provider: ProviderServer
) -> None:
    body = carrying(order_message(), KEY)
    number = body["payload"]["order"]["number"]
    provider.script(number, {"status": 503, "errors": ["maintenance"]})

    response = hub_model.post("/acme/send_order", body, wait=20)

    assert response.status_code == 200, response.text
    record = hub_model.record("acme", body["message_id"])
    assert (record["status"], record["attempts"]) == ("succeeded", 2)
    assert record["last_error"] is None
    assert "maintenance" in record["earlier_error"]  # what the first attempt met, as history


def test_a_replayed_message_that_succeeds_shows_no_current_error(
    hub_model: Stack, provider: ProviderServer
) -> None:
    body = carrying(order_message(), KEY)
    message_id, number = body["message_id"], body["payload"]["order"]["number"]
    provider.script(number, {"status": 422, "errors": ["Out of stock"]})
    assert hub_model.post("/acme/send_order", body, wait=20).status_code == 500

    assert replay(hub_model, message_id).status_code == 200

    record = hub_model.wait_status("acme", message_id, "succeeded", "failed", "dead")
    assert record["status"] == "succeeded", record
    assert record["last_error"] is None
    assert "Out of stock" in record["earlier_error"]


# -- a due retry in a process that does not run its integration --------------------------------


@pytest.fixture
def two_kinds_of_worker(provider: ProviderServer, hub: HubServer) -> Iterator[Stack]:
    """A receiver and a worker that run Acme, and a worker ("plain") that does not (no
    SHIPHUB_INTEGRATION_MODULES): its scheduler still ticks over the shared due set."""
    env = {**stack_env(provider, hub), "RETRY_BASE_SECONDS": "8", "RETRY_MAX_SECONDS": "8"}
    with serving(None, env, worker="acme") as stack:
        modules = stack.env.pop("SHIPHUB_INTEGRATION_MODULES")
        stack.start_worker("plain")
        stack.env["SHIPHUB_INTEGRATION_MODULES"] = modules
        yield stack


def test_a_due_retry_is_handed_on_by_a_worker_without_its_integration(
    two_kinds_of_worker: Stack, provider: ProviderServer
) -> None:
    stack = two_kinds_of_worker
    body = order_message()
    message_id, number = body["message_id"], body["payload"]["order"]["number"]
    provider.script(number, {"status": 503, "errors": ["maintenance"]})
    assert stack.post("/acme/send_order", body).status_code == 200
    stack.wait_status("acme", message_id, "retrying")
    stack.services["acme"].kill()  # at once (due in 4 to 8 s): only "plain" is left to take it
    client = stack.redis.client()
    assert client.zscore(DUE, f"acme:{message_id}") is not None, "taken before the test began"
    wait_until(lambda: client.zscore(DUE, f"acme:{message_id}") is None, timeout=15)
    stack.start_worker("acme-again")

    record = stack.wait_status("acme", message_id, "succeeded", "failed", "dead", timeout=20)

    assert (record["status"], record["attempts"]) == ("succeeded", 2), record
    assert provider.effects_for(number) == 1
