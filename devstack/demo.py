"""The demo ``bin/run`` plays once the service is up, through the HTTP receiver like the hub would
send it: the seed's sample ``shipment:ready`` (under a shipment number of its own) goes to the
Shipping Order API simulator, which places it with a delivery provider and moves it along (its
webhooks report each step); a ``get`` shows where it is. Then the same sample goes to the Dotcom
simulator, and a later poll answers ``shipment:confirm`` with its tracking numbers."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests

SAMPLE = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "dotcom" / "shipment_ready.json"
)


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def post(base: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{base}{path}", json=body, headers={**headers, "X-Hub-Wait": "60"}, timeout=90
    )


def say_answer(answer: dict[str, Any]) -> None:
    for message in answer.get("messages", []):
        shipment = message["payload"]["shipment"]
        extra = (
            f"status {shipment['status']} ({shipment['provider_status']})"
            if message["message"] == "shipment:update"
            else "tracking "
            + ", ".join(shipment.get("tracking_numbers") or [shipment.get("tracking") or "-"])
        )
        say(f"  {message['message']}: {shipment['number']} {extra}")
    for parameter in answer.get("parameters", []):
        say(f"  parameter {parameter['name']} = {parameter['value']}")
    for note in answer.get("notifications", []):
        say(f"  {note['level']}: {note['description']}")


def sample(number: str) -> dict[str, Any]:
    shipment = json.loads(SAMPLE.read_text())
    shipment["message_id"] = uuid.uuid4().hex[:24]
    shipment["payload"]["shipment"]["number"] = number
    return shipment


def run_demo(base: str, env: dict[str, str]) -> None:
    store = f"demo-{int(time.time())}"
    headers = {"X-Hub-Store": store}
    if env.get("ENDPOINT_KEY"):
        headers["X-Hub-Token"] = env["ENDPOINT_KEY"]
    # The default store (HUB_STORE): the one the simulator's webhooks are taken for (its webhook
    # URL carries no ?store=), so the webhooks and the hub's messages share one shipment history.
    shipping_orders_demo(base, {k: v for k, v in headers.items() if k != "X-Hub-Store"})
    confirm = dotcom_demo(base, env, headers, store)
    if confirm is not None:
        channels_demo(base, headers, confirm)
    say(
        f"done. The stack keeps running: polls every 60 s, Shipping Order API shipments move a "
        f"step every 5 s; the README's commands work now. Records: {base}/messages/<integration>"
        "/<message_id>; Ctrl-C stops everything."
    )


def shipping_orders_demo(base: str, headers: dict[str, str]) -> None:
    number = f"S{int(time.time() * 1000) % 10**11:011d}"
    say(f"POST /shipping_orders/send_shipment  (the seed's sample as shipment {number})")
    sent = post(base, "/shipping_orders/send_shipment", sample(number), headers)
    say(f"  -> {sent.status_code}")
    say_answer(sent.json())
    if sent.status_code != 200:
        return
    say("waiting 12 s: the simulator moves it along and signs a webhook for each step")
    time.sleep(12)
    get = {
        "message_id": uuid.uuid4().hex[:24],
        "message": "shipping_orders:shipment:get",
        "payload": {"shipment": {"number": number}},
    }
    say(f"POST /shipping_orders/get_shipment  ({number})")
    got = post(base, "/shipping_orders/get_shipment", get, headers)
    say(f"  -> {got.status_code}")
    say_answer(got.json())


def dotcom_demo(
    base: str, env: dict[str, str], headers: dict[str, str], store: str
) -> dict[str, Any] | None:
    """Send the sample to Dotcom, poll it; the ``shipment:confirm`` the poll answers."""
    zone = ZoneInfo(env.get("DOTCOM_TIMEZONE", "America/New_York"))
    since = (datetime.now(zone) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S %z")

    # A shipment number of its own: the seed's (H67606710123) stays free for the README's curl.
    number = f"H{int(time.time() * 1000) % 10**11:011d}"
    shipment = sample(number)
    say(f"POST /dotcom/send_shipment  (the seed's sample as shipment {number}, store {store})")
    sent = post(base, "/dotcom/send_shipment", shipment, headers)
    say(f"  -> {sent.status_code} {json.dumps(sent.json().get('notifications'))}")
    if sent.status_code != 200:
        return None

    lag = (
        float(env.get("DOTCOM_SIM_SHIP_AFTER", 0))
        + float(env.get("DOTCOM_SIM_VISIBLE_AFTER", 0))
        + float(env.get("DOTCOM_POLL_LAG_SECONDS", 900))
        + 2
    )
    say(f"waiting {lag:.0f} s: Dotcom ships it, shows it late, and the poll window lags behind")
    time.sleep(lag)

    poll = {
        "message_id": uuid.uuid4().hex[:24],
        "message": "dotcom:shipment_results:poll",
        "payload": {"parameters": [{"name": "dotcom.last_polling_datetime", "value": since}]},
    }
    say(f"POST /dotcom/tracking  (last_polling_datetime {since})")
    polled = post(base, "/dotcom/tracking", poll, headers)
    say(f"  -> {polled.status_code}")
    say_answer(polled.json())
    confirms = [
        m["payload"]["shipment"]
        for m in polled.json().get("messages", [])
        if m["message"] == "shipment:confirm" and m["payload"]["shipment"]["number"] == number
    ]
    return confirms[0] if confirms else None


# What the hub knows of the sample shipment at each sales channel (the simulators' seeded ids):
# the sample's two items are order items 239417 and 239418 of Duoplane's purchase order 987654,
# recipe sets ABCD1234 and EFGH5678 of Spectrum's order R805661123, line items 204051 and 204052
# of ecomdash's shipment 20405.
CHANNEL_IDS: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "ecomdash": (
        {"ecomdash_shipment_id": 20405},
        [{"ecomdash_line_item_id": 204051}, {"ecomdash_line_item_id": 204052}],
    ),
    "duoplane": (
        {"duoplane_purchase_order_id": 987654},
        [{"duoplane_order_item_id": 239417}, {"duoplane_order_item_id": 239418}],
    ),
    "spectrum": (
        {"purchase_order_number": "R805661123"},
        [{"spectrum_recipe_set_id": "ABCD1234"}, {"spectrum_recipe_set_id": "EFGH5678"}],
    ),
}


def channels_demo(base: str, headers: dict[str, str], confirm: dict[str, Any]) -> None:
    """Dotcom's ``shipment:confirm``, as the hub would route it, to every sales channel."""
    for channel, (ids, item_ids) in CHANNEL_IDS.items():
        shipment = {**confirm, **ids}
        shipment["items"] = [
            {**item, **extra} for item, extra in zip(confirm["items"], item_ids, strict=False)
        ]
        message = {
            "message_id": uuid.uuid4().hex[:24],
            "message": "shipment:confirm",
            "payload": {"shipment": shipment},
        }
        say(
            f"POST /{channel}/send_tracking  (shipment {confirm['number']}, tracking "
            f"{', '.join(confirm.get('tracking_numbers') or [])})"
        )
        sent = post(base, f"/{channel}/send_tracking", message, headers)
        say(f"  -> {sent.status_code}")
        say_answer(sent.json())
