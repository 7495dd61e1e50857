"""What a webhook from each store gets, through real processes (gunicorn, a Celery worker,
redis-server, a hub taking pushes): an oversized body is refused while it is read, before its
signature; an event is taken only for the store whose secret signed it; hub messages cannot take
an event's id; an event about a shipment never sent is reported with the poll's warning; and no
field of an event reaches the hub unbounded."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import uuid
from typing import Any

import pytest
import requests

from tests.pipeline.conftest import HUB_STORE
from tests.shipping_orders.conftest import (
    WEBHOOK_SECRET,
    ShippingOrdersSimulator,
    about,
    hub_messages,
    next_store,
    notes,
    secret_of,
    shipments_told,
)
from tests.shipping_orders.test_lifecycle_pipeline import NOT_SENT, send, vendor_event
from tests.support.servers import HubServer
from tests.support.stack import RedisServer, Stack, wait_until
from worker.basics.errors import ConfigurationError
from worker.store.schema import record_key

WEBHOOK_LIMIT = 64 * 1024  # WEBHOOK_MAX_BODY_BYTES' default


def post_event(
    stack: Stack, event: dict[str, Any], secret: str, store: str | None
) -> requests.Response:
    """``event`` posted as the API posts it, signed with ``secret``, for ``store`` (None: no
    ``?store=``)."""
    raw = json.dumps(event).encode()
    query = f"?store={store}" if store is not None else ""
    return requests.post(
        f"{stack.url}/webhooks/shipping_orders{query}",
        data=raw,
        headers={
            "X-DS-Signature": hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json",
        },
        timeout=10,
    )


def refusal(response: requests.Response) -> str:
    (note,) = response.json()["notifications"]
    assert note["level"] == "error"
    return f"{note['subject']}: {note['description']}"


def recorded(stack: Stack, message_id: str) -> bool:
    found = requests.get(
        f"{stack.url}/messages/shipping_orders/{message_id}", headers=stack.headers(), timeout=10
    )
    assert found.status_code in (200, 404), found.text
    return found.status_code == 200


# ---------------------------------------------------------------------------------------------
# Oversized bodies: refused while they are read, before anything else


def test_an_event_over_the_webhook_limit_is_413_even_when_signed(
    so_stack: Stack, store: str
) -> None:
    event = vendor_event(pad="x" * (WEBHOOK_LIMIT + 1000))  # far under MAX_BODY_BYTES

    refused = post_event(so_stack, event, secret_of(store), store)

    assert refused.status_code == 413, refused.text
    assert "65536" in refusal(refused)
    assert not recorded(
        so_stack,
        f"webhook:{store}:{event['orderExternalId']}:ORDER_DISPATCHED:{event['lastUpdatedAt']}",
    )


def stalled_request(stack: Stack, head: str, sent: bytes) -> bytes:
    """Send a request's head and the first part of its body, then nothing more: what the
    receiver answers before the body ends (b"" if it answers nothing in 10 s)."""
    with socket.create_connection(("127.0.0.1", stack.web_port), timeout=10) as sock:
        sock.sendall(head.encode() + sent)
        received = b""
        try:
            while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
        return received


def test_a_chunked_event_is_refused_as_soon_as_it_passes_the_limit(
    so_stack: Stack, store: str
) -> None:
    """No Content-Length: the receiver stops reading past the limit and answers at once, while
    the sender still has more to send (a stalled sender holds no more than the limit)."""
    piece = b"x" * 8192
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(10))  # 80 KiB
    head = (
        f"POST /webhooks/shipping_orders?store={store} HTTP/1.1\r\nHost: shiphub\r\n"
        "Content-Type: application/json\r\nX-DS-Signature: 00\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )

    answer = stalled_request(so_stack, head, chunks)

    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert "65536" in body["notifications"][0]["description"]


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    so_stack: Stack, store: str
) -> None:
    head = (
        f"POST /webhooks/shipping_orders?store={store} HTTP/1.1\r\nHost: shiphub\r\n"
        "Content-Type: application/json\r\nX-DS-Signature: 00\r\n"
        f"Content-Length: {200 * 1024}\r\n\r\n"
    )

    answer = stalled_request(so_stack, head, b'{"orderExternalId": "')

    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"204800" in answer


# ---------------------------------------------------------------------------------------------
# A store's events are verified with its own secret, and taken for that store only


def test_an_event_is_taken_only_for_the_store_whose_secret_signed_it(
    so_stack: Stack, hub: HubServer, store: str
) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}"  # a store with no secret of its own
    event = vendor_event()
    number = event["orderExternalId"]

    taken = post_event(so_stack, event, secret_of(store), store)
    assert taken.status_code == 200, taken.text
    message_id = taken.json()["message_id"]
    hub.wait_for(message_id)
    assert {p["store"] for p in hub.pushes_of(message_id)} == {store}

    # Replayed to another store, after its record expired: refused, naming the store.
    so_stack.redis.client().delete(record_key("shipping_orders", message_id))
    for elsewhere in (other, HUB_STORE, None):
        replayed = post_event(so_stack, event, secret_of(store), elsewhere)
        assert replayed.status_code == 401, replayed.text
        assert f"store {elsewhere or HUB_STORE!r}" in refusal(replayed)
        assert not recorded(so_stack, message_id)
    assert "No webhook secret" in refusal(post_event(so_stack, event, secret_of(store), other))
    assert len(shipments_told(hub, number, "ORDER_DISPATCHED")) == 1

    # HUB_STORE's secret (SHIPPING_ORDERS_WEBHOOK_SECRET) verifies HUB_STORE's events only.
    assert post_event(so_stack, event, WEBHOOK_SECRET, store).status_code == 401
    for_hub_store = post_event(so_stack, event, WEBHOOK_SECRET, None)
    assert for_hub_store.status_code == 200, for_hub_store.text
    hub_store_id = for_hub_store.json()["message_id"]
    hub.wait_for(hub_store_id)
    assert [p["store"] for p in hub.pushes_of(hub_store_id)] == [HUB_STORE]


def test_the_same_event_from_two_stores_is_reported_to_each(
    so_stack: Stack, hub: HubServer
) -> None:
    """Two stores are two provider accounts: each may have an order of the same number reach the
    same status at the same moment. Each store's event is its own message, reported for it."""
    first, second = next_store(), next_store()
    event = vendor_event()

    taken = [post_event(so_stack, event, secret_of(s), s) for s in (first, second)]

    assert [t.status_code for t in taken] == [200, 200], [t.text for t in taken]
    assert [t.json()["status"] for t in taken] == ["queued", "queued"]
    ids = [t.json()["message_id"] for t in taken]
    assert ids[0] != ids[1]
    for message_id, store in zip(ids, (first, second), strict=True):
        hub.wait_for(message_id)
        assert {p["store"] for p in hub.pushes_of(message_id)} == {store}


def test_webhook_secrets_that_cannot_verify_a_store_stop_the_receiver_at_start(
    redis_server: RedisServer,
) -> None:
    for value, problem in [
        ('{"store-a": "secret-a"', "not a JSON object"),
        ('{"store-a": "same-secret-ab", "store-b": "same-secret-ab"}', "the same secret"),
        ('{"store-a": " "}', "blank"),
        ('{"store-a": "secret-a"}', "shorter than 12 characters"),
        ('{"shop:eu": "secret-a"}', "':'"),
    ]:
        stack = Stack(redis_server, {"SHIPPING_ORDERS_WEBHOOK_SECRETS": value})
        try:
            with pytest.raises(AssertionError, match="exited at start-up"):
                stack.start_web()
            web = stack.services["web"]
            assert web.process.wait(30) == ConfigurationError.EXIT_STATUS, web.output()
            assert "SHIPPING_ORDERS_WEBHOOK_SECRETS" in web.output(), web.output()
            assert problem in web.output(), web.output()
            assert "same-secret-ab" not in web.output() and "secret-a" not in web.output()
        finally:
            stack.stop()


# ---------------------------------------------------------------------------------------------
# The hub cannot take an event's id


def test_a_hub_message_cannot_take_the_id_of_a_future_event(
    so_stack: Stack, hub: HubServer, store: str
) -> None:
    event = vendor_event()
    number = event["orderExternalId"]
    message_id = f"webhook:{store}:{number}:ORDER_DISPATCHED:{event['lastUpdatedAt']}"
    squatter = {**about(number, "shipping_orders:shipment:get"), "message_id": message_id}

    refused = so_stack.post("/shipping_orders/get_shipment", squatter, store=store)

    assert refused.status_code == 400, refused.text
    assert "message_id" in refusal(refused) and "webhook:" in refusal(refused)
    assert not recorded(so_stack, message_id)
    taken = post_event(so_stack, event, secret_of(store), store)
    assert taken.json() == {"message_id": message_id, "status": "queued"}
    hub.wait_for(message_id)
    assert len(shipments_told(hub, number, "ORDER_DISPATCHED")) == 1


# ---------------------------------------------------------------------------------------------
# What an event tells the hub


def test_an_event_about_a_shipment_never_sent_is_reported_with_a_warning(
    so_stack: Stack, vendor_sim: ShippingOrdersSimulator, hub: HubServer, store: str
) -> None:
    stranger = vendor_event()
    taken = post_event(so_stack, stranger, secret_of(store), store)
    told = hub.wait_for(taken.json()["message_id"])
    (warning,) = [w for w in notes(told, "warn") if w.startswith(NOT_SENT)]
    assert stranger["orderExternalId"] in warning

    number, _ = send(so_stack, store)  # sent by this endpoint: its events warn of nothing
    vendor_sim.advance(number, "ESTIMATES_RECEIVED")
    wait_until(lambda: shipments_told(hub, number, "ESTIMATES_RECEIVED"))
    with hub.lock:
        answers = list(hub.answers)
    ours = f"webhook:{store}:{number}:"
    from_webhook = [a for a in answers if str(a.get("message_id")).startswith(ours)]
    assert from_webhook and all(not notes(a, "warn") for a in from_webhook), from_webhook


def test_no_field_of_an_event_reaches_the_hub_unbounded(
    so_stack: Stack, hub: HubServer, store: str
) -> None:
    """A 15 KB tracking number, tracking URL and hub order number (under the body limit): left
    out with a warning naming each and its bound, as any field that cannot be read; the pushes
    stay small."""
    huge = "9" * 15_000
    event = vendor_event(
        trackingNumber=huge,
        trackingUrl=f"https://track.example.com/{huge}",
        orderAttributes={"hubOrderNumber": huge, "shippingMethod": "UPS Ground"},
    )
    number = event["orderExternalId"]

    taken = post_event(so_stack, event, secret_of(store), store)

    assert taken.status_code == 200, taken.text
    told = hub.wait_for(taken.json()["message_id"])
    (warning,) = [w for w in notes(told, "warn") if not w.startswith(NOT_SENT)]
    for field in ("trackingNumber", "trackingUrl", "orderAttributes.hubOrderNumber"):
        assert field in warning, warning
    assert "at most" in warning and huge not in warning
    (update,) = shipments_told(hub, number, "ORDER_DISPATCHED")
    assert (update["tracking"], update["tracking_url"], update["order_number"]) == (None,) * 3
    assert all(p["size"] < 8192 for p in hub.pushes_of(taken.json()["message_id"]))


@pytest.mark.parametrize(
    ("field", "value"),
    [("orderExternalId", "H" * 101), ("status", "ORDER_" * 20)],
)
def test_an_event_whose_order_or_status_is_unfit_is_refused_naming_it(
    so_stack: Stack, hub: HubServer, store: str, field: str, value: str
) -> None:
    event = vendor_event(**{field: value})

    refused = post_event(so_stack, event, secret_of(store), store)

    assert refused.status_code == 422, refused.text
    assert f"payload.{field}" in refused.text
    assert not [m for m in hub_messages(hub, value)]
