"""The demo ``bin/run`` plays once the service is up, through the HTTP receiver like the hub would
send it: the seed's sample ``shipment:ready`` (under a shipment number of its own) goes to the
Shipping Order API simulator, which places it with a delivery provider and moves it along (its
webhooks report each step); a ``get`` shows where it is. Then the same sample goes to the Dotcom
simulator, and a later poll answers ``shipment:confirm`` with its tracking numbers, which goes to
the sales channels' simulators.

The demo only ever talks to bin/run's own simulators: a provider whose API URL points elsewhere
(an account of yours) is skipped, saying why, and so is what needs it (the channels need Dotcom's
confirmation). It ends with ``[demo] done.`` only when every step ran and succeeded; otherwise
with ``[demo] ended`` naming what was skipped and what failed."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import requests

SAMPLE = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "dotcom" / "shipment_ready.json"
)


T = TypeVar("T")
# The integrations the demo goes through, each on its simulator.
SIMULATED_PROVIDERS = ("shipping_orders", "dotcom", "ecomdash", "duoplane", "spectrum")
API_URL_VARIABLES = {name: f"{name.upper()}_API_URL" for name in SIMULATED_PROVIDERS}


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


class StepFailed(Exception):
    """A demo step did not get the answer it needed."""


@dataclass
class Tally:
    """What became of each part of the demo: skipped (why) or failed (what)."""

    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def skip(self, part: str, why: str) -> None:
        self.skipped[part] = why
        say(f"skipped {part}: {why}")

    def fail(self, part: str, what: str) -> None:
        self.failed[part] = what
        say(f"{part} failed: {what}")

    @property
    def succeeded(self) -> bool:
        return not self.skipped and not self.failed


def post(base: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{base}{path}", json=body, headers={**headers, "X-Hub-Wait": "60"}, timeout=90
    )


def answered(response: requests.Response) -> dict[str, Any]:
    """The receiver's answer to a message the demo waited for; StepFailed unless it is a 200
    with the answer's JSON."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise StepFailed(f"HTTP {response.status_code}, not a JSON answer")
    if response.status_code != 200:
        say_answer(body)
        errors = [n.get("description", "") for n in body.get("notifications", [])]
        raise StepFailed(f"HTTP {response.status_code}: {'; '.join(errors) or 'no answer'}")
    return body


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


def run_demo(base: str, env: dict[str, str], simulated: set[str]) -> bool:
    """Play the demo against bin/run's receiver; True when every step ran and succeeded.
    ``simulated``: the integrations on their simulators; any other is skipped."""
    store = f"demo-{int(time.time())}"
    headers = {"X-Hub-Store": store}
    if env.get("ENDPOINT_KEY"):
        headers["X-Hub-Token"] = env["ENDPOINT_KEY"]
    tally = Tally()
    # The default store (HUB_STORE): the one the simulator's webhooks are taken for (its webhook
    # URL carries no ?store=), so the webhooks and the hub's messages share one shipment history.
    if step(tally, "shipping_orders", simulated):
        attempt(
            tally,
            "shipping_orders",
            lambda: shipping_orders_demo(
                base, {k: v for k, v in headers.items() if k != "X-Hub-Store"}
            ),
        )
    confirm = None
    if step(tally, "dotcom", simulated):
        confirm = attempt(tally, "dotcom", lambda: dotcom_demo(base, env, headers, store))
    for channel in CHANNEL_IDS:
        if not step(tally, channel, simulated):
            continue
        if confirm is None:
            tally.skip(channel, "it takes Dotcom's shipment:confirm, which the demo did not get")
            continue
        attempt(tally, channel, lambda c=channel: channel_demo(base, headers, confirm, c))
    if tally.succeeded:
        say(
            f"done. The stack keeps running: polls every 60 s, Shipping Order API shipments "
            f"move a step every 5 s; the README's commands work now. Records: {base}/messages/"
            "<integration>/<message_id>; Ctrl-C stops everything."
        )
    else:
        parts = [f"skipped {p} ({why})" for p, why in tally.skipped.items()]
        parts += [f"{p} failed ({what})" for p, what in tally.failed.items()]
        say(
            f"ended: {'; '.join(parts)}. The README's commands that use them do not work as "
            "shown. The stack keeps running; Ctrl-C stops everything."
        )
    return tally.succeeded


def step(tally: Tally, part: str, simulated: set[str]) -> bool:
    """Whether the demo may run ``part``: only on bin/run's own simulator."""
    if part in simulated:
        return True
    variable = API_URL_VARIABLES[part]
    tally.skip(part, f"{variable} is not bin/run's simulator, and the demo talks to no other")
    return False


def attempt(tally: Tally, part: str, run: Callable[[], T]) -> T | None:
    """Run one part; a failure is told and counted, and the demo goes on."""
    try:
        return run()
    except StepFailed as exc:
        tally.fail(part, str(exc))
    except requests.RequestException as exc:
        tally.fail(part, f"the receiver did not answer ({exc.__class__.__name__})")
    except Exception as exc:  # an answer of a shape the demo does not know: not a reason to stop
        tally.fail(part, f"{exc.__class__.__name__}: {exc}")
    return None


def shipping_orders_demo(base: str, headers: dict[str, str]) -> None:
    number = f"S{int(time.time() * 1000) % 10**11:011d}"
    say(f"POST /shipping_orders/send_shipment  (the seed's sample as shipment {number})")
    sent = post(base, "/shipping_orders/send_shipment", sample(number), headers)
    say(f"  -> {sent.status_code}")
    say_answer(answered(sent))
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
    say_answer(answered(got))


def dotcom_demo(
    base: str, env: dict[str, str], headers: dict[str, str], store: str
) -> dict[str, Any]:
    """Send the sample to Dotcom, poll it; the ``shipment:confirm`` the poll answers."""
    zone = ZoneInfo(env.get("DOTCOM_TIMEZONE", "America/New_York"))
    since = (datetime.now(zone) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S %z")

    # A shipment number of its own: the seed's (H67606710123) stays free for the README's curl.
    number = f"H{int(time.time() * 1000) % 10**11:011d}"
    shipment = sample(number)
    say(f"POST /dotcom/send_shipment  (the seed's sample as shipment {number}, store {store})")
    sent = post(base, "/dotcom/send_shipment", shipment, headers)
    say(f"  -> {sent.status_code}")
    say_answer(answered(sent))

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
    answer = answered(polled)
    say_answer(answer)
    confirms = [
        m["payload"]["shipment"]
        for m in answer.get("messages", [])
        if m["message"] == "shipment:confirm" and m["payload"]["shipment"]["number"] == number
    ]
    if not confirms:
        raise StepFailed(f"the poll answered no shipment:confirm for {number}")
    return confirms[0]


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


def channel_demo(base: str, headers: dict[str, str], confirm: dict[str, Any], channel: str) -> None:
    """Dotcom's ``shipment:confirm``, as the hub would route it, to one sales channel."""
    ids, item_ids = CHANNEL_IDS[channel]
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
    say_answer(answered(sent))
