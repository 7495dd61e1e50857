"""The whole pipeline on real parts: HTTP receiver → Redis → Celery worker → provider over HTTP →
answer pushed to the hub over HTTP, signature checked."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import requests

from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import Stack, wait_until


def order_message(number: str | None = None, message_id: str | None = None) -> dict[str, Any]:
    return {
        "message_id": message_id or uuid.uuid4().hex[:24],
        "message": "order:ready",
        "payload": {"order": {"number": number or uuid.uuid4().hex[:12], "quantity": 2}},
    }


def poll_message(**parameters: Any) -> dict[str, Any]:
    return {
        "message_id": uuid.uuid4().hex[:24],
        "message": "acme:shipments:poll",
        "payload": {
            "parameters": [{"name": f"acme.{k}", "value": v} for k, v in parameters.items()]
        },
    }


def test_posted_message_is_handled_pushed_and_recorded(
    stack: Stack, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    response = stack.post("/acme/send_order", body)

    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    pushed = hub.wait_for(body["message_id"])
    assert pushed["notifications"][0]["subject"] == "Order sent to Acme"
    record = stack.wait_status("acme", body["message_id"], "succeeded")
    assert record["attempts"] == 1
    wait_until(
        lambda: stack.record("acme", body["message_id"])["delivery"]["status"] == "delivered"
    )
    assert provider.effects_for(body["payload"]["order"]["number"]) == 1
    assert hub.bad_signatures == []


def test_wait_mode_answers_like_a_classic_endpoint(stack: Stack, provider: ProviderServer) -> None:
    with provider.lock:
        provider.shipments[:] = [
            {"id": 7, "number": "H1", "tracking": "1Z1"},
            {"id": 9, "number": "H2", "tracking": "1Z2"},
        ]
    body = poll_message(since=5)

    response = stack.post("/acme/tracking", body, wait=20)

    assert response.status_code == 200
    answer = response.json()
    assert answer["message_id"] == body["message_id"]
    assert [m["payload"]["shipment"]["number"] for m in answer["messages"]] == ["H1", "H2"]
    assert {"name": "acme.since", "value": 9} in answer["parameters"]
    assert answer["notifications"][0]["level"] == "info"


def test_stored_cursor_is_used_when_the_hub_sends_none(
    stack: Stack, provider: ProviderServer
) -> None:
    with provider.lock:
        provider.shipments[:] = [{"id": 40, "number": "H40", "tracking": "1Z40"}]
    assert stack.post("/acme/tracking", poll_message(since=30), wait=20).status_code == 200

    second = stack.post("/acme/tracking", poll_message(), wait=20)

    assert second.status_code == 200
    assert provider.polled_since[-1] == 40
    assert second.json()["messages"] == []


def test_wait_mode_hard_error_is_a_500_with_the_providers_reason(
    stack: Stack, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    number = body["payload"]["order"]["number"]
    provider.script(number, {"status": 422, "errors": ["Quantity exceeds stock for SKU X"]})

    response = stack.post("/acme/send_order", body, wait=20)

    assert response.status_code == 500
    notes = response.json()["notifications"]
    assert [n["level"] for n in notes] == ["error"]
    assert notes[0]["description"] == "Quantity exceeds stock for SKU X"
    assert provider.requests[number] == 1  # not retried
    assert stack.record("acme", body["message_id"])["status"] == "failed"
    assert hub.wait_for(body["message_id"])["notifications"] == notes


def test_transient_errors_are_retried_until_success(stack: Stack, provider: ProviderServer) -> None:
    body = order_message()
    number = body["payload"]["order"]["number"]
    provider.script(number, {"status": 500}, {"status": 429, "retry_after": 1})
    started = time.monotonic()

    response = stack.post("/acme/send_order", body, wait=30)

    assert response.status_code == 200, response.text
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    assert provider.requests[number] == 3
    assert provider.effects_for(number) == 1
    record = stack.record("acme", body["message_id"])
    assert (record["status"], record["attempts"]) == ("succeeded", 3)


def test_exhausted_retries_make_the_message_dead_listed_and_replayable(
    stack: Stack, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    number = body["payload"]["order"]["number"]
    provider.script(number, *[{"status": 503, "errors": ["maintenance"]}] * 3)

    response = stack.post("/acme/send_order", body, wait=30)

    assert response.status_code == 500
    assert stack.record("acme", body["message_id"])["status"] == "dead"
    pushed = hub.wait_for(body["message_id"])
    assert len(pushed["notifications"]) == 1
    assert pushed["notifications"][0]["level"] == "error"
    assert "maintenance" in pushed["notifications"][0]["description"]
    dead = requests.get(f"{stack.url}/dead", headers=stack.headers(), timeout=5).json()
    assert {"integration": "acme", "message_id": body["message_id"]}.items() <= next(
        row for row in dead["messages"] if row["message_id"] == body["message_id"]
    ).items()

    replay = requests.post(
        f"{stack.url}/messages/acme/{body['message_id']}/replay", headers=stack.headers(), timeout=5
    )

    assert replay.status_code == 200
    stack.wait_status("acme", body["message_id"], "succeeded")
    assert provider.effects_for(number) == 1
    dead = requests.get(f"{stack.url}/dead", headers=stack.headers(), timeout=5).json()
    assert body["message_id"] not in [row["message_id"] for row in dead["messages"]]


def test_five_concurrent_posts_of_one_message_give_one_effect(
    stack: Stack, provider: ProviderServer, hub: HubServer
) -> None:
    body = order_message()
    number = body["payload"]["order"]["number"]
    barrier = threading.Barrier(5)
    statuses: list[int] = []

    def post() -> None:
        barrier.wait()
        statuses.append(stack.post("/acme/send_order", body).status_code)

    threads = [threading.Thread(target=post) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert statuses == [200] * 5
    stack.wait_status("acme", body["message_id"], "succeeded")
    hub.wait_for(body["message_id"])
    time.sleep(1)  # room for a second (wrong) effect or push to show up
    assert provider.requests[number] == 1
    assert provider.effects_for(number) == 1
    assert len(hub.received(body["message_id"])) == 1


def test_same_id_with_another_body_is_a_conflict(stack: Stack) -> None:
    body = order_message()
    assert stack.post("/acme/send_order", body).status_code == 200
    other = {**body, "payload": {"order": {"number": "OTHER", "quantity": 1}}}

    response = stack.post("/acme/send_order", other)

    assert response.status_code == 409
    assert response.json()["message_id"] == body["message_id"]


def test_duplicate_after_finishing_returns_the_record_and_its_answer(
    stack: Stack, provider: ProviderServer
) -> None:
    body = order_message()
    stack.post("/acme/send_order", body, wait=20)

    again = stack.post("/acme/send_order", body)

    assert again.status_code == 200
    reply = again.json()
    assert reply["status"] == "succeeded"
    assert reply["record"]["answer"]["notifications"][0]["subject"] == "Order sent to Acme"
    assert provider.requests[body["payload"]["order"]["number"]] == 1


def test_hub_down_for_a_while_then_back_gets_every_answer_once(
    stack: Stack, hub: HubServer
) -> None:
    with hub.lock:
        hub.down = True
        attempts_before = hub.attempts
    bodies = [order_message() for _ in range(3)]
    for body in bodies:
        assert stack.post("/acme/send_order", body).status_code == 200
    wait_until(lambda: hub.attempts >= attempts_before + 6, timeout=30)  # each refused twice+
    for body in bodies:
        assert stack.record("acme", body["message_id"])["delivery"]["status"] == "pending"

    with hub.lock:
        hub.down = False

    for body in bodies:
        hub.wait_for(body["message_id"], timeout=60)
    time.sleep(2)
    for body in bodies:
        assert len(hub.received(body["message_id"])) == 1
        record = stack.record("acme", body["message_id"])
        assert record["delivery"]["status"] == "delivered"
        assert record["delivery"]["attempts"] >= 2


def test_chunked_body_over_the_limit_is_413_through_gunicorn(stack: Stack) -> None:
    filler = "x" * 64 * 1024

    def chunks():  # no Content-Length: requests sends Transfer-Encoding: chunked
        yield b'{"message_id": "big", "message": "order:ready", "payload": {"pad": "'
        for _ in range(20):  # 1.25 MiB, over the 1 MiB default
            yield filler.encode()
        yield b'"}}'

    response = requests.post(
        f"{stack.url}/acme/send_order", data=chunks(), headers=stack.headers(), timeout=30
    )

    assert response.status_code == 413
    assert response.json()["notifications"][0]["level"] == "error"


def test_chunked_body_under_the_limit_is_read_whole_through_gunicorn(stack: Stack) -> None:
    body = json.dumps(order_message()).encode()

    def chunks():
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    response = requests.post(
        f"{stack.url}/acme/send_order", data=chunks(), headers=stack.headers(), timeout=30
    )

    assert response.status_code == 200, response.text


def test_the_same_order_under_a_new_message_id_is_already_sent(
    stack: Stack, provider: ProviderServer
) -> None:
    first = order_message()
    number = first["payload"]["order"]["number"]
    assert stack.post("/acme/send_order", first, wait=20).status_code == 200

    again = stack.post("/acme/send_order", order_message(number), wait=20)

    assert again.status_code == 200, again.text
    (note,) = again.json()["notifications"]
    assert note["subject"] == "Order already sent to Acme"
    assert first["message_id"] in note["description"]
    assert provider.effects_for(number) == 1


def test_another_order_under_a_sent_number_is_refused_saying_what_differs_after_a_retry(
    stack: Stack, provider: ProviderServer
) -> None:
    first = order_message()
    number = first["payload"]["order"]["number"]
    assert stack.post("/acme/send_order", first, wait=20).status_code == 200
    other = order_message(number)
    other["payload"]["order"]["quantity"] = 5
    provider.script(number, {"status": 503})  # its first attempt fails and leaves a mark

    response = stack.post("/acme/send_order", other, wait=30)

    assert response.status_code == 500, response.text
    (note,) = response.json()["notifications"]
    assert "quantity 2 (this message: 5)" in note["description"]
    assert first["message_id"] in note["description"]
    assert stack.record("acme", other["message_id"])["attempts"] == 2
    assert [o["quantity"] for o in provider.effects.values() if o["number"] == number] == [2]
