"""``shiphub send``, ``show``, ``poll``, ``dead`` and ``replay`` as the console script, against
the real stack and the Dotcom simulator."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.cli.conftest import FIXTURES, Shiphub
from tests.dotcom.conftest import LANDS_WITHIN, SENT, DotcomSimulator, shipment_message
from tests.support.servers import HubServer
from tests.support.stack import wait_until

SEED_ID = "51af1dc5fe53543f1200f519"  # tests/fixtures/dotcom/shipment_ready.json's message_id


def message_file(tmp_path: Path, body: dict[str, Any], name: str = "message.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(body, indent=2))
    return path


def record(shiphub: Shiphub, message_id: str) -> dict[str, Any]:
    shown = shiphub("show", "dotcom", message_id, "--json")
    assert shown.code == 0, shown
    return shown.json()


def orders_of(sim: DotcomSimulator, number: str) -> list[dict[str, Any]]:
    return [o for o in sim.orders()["orders"] if o["order_number"] == number]


def dead_ids(shiphub: Shiphub, kind: str) -> list[str]:
    listed = shiphub("dead", "--json")
    assert listed.code == 0, listed
    return [row["message_id"] for row in listed.json()[kind]]


def test_the_seed_sample_is_sent_shown_and_sent_again_as_a_duplicate(
    shiphub: Shiphub, sim: DotcomSimulator, hub: HubServer
) -> None:
    fixture = str(FIXTURES / "shipment_ready.json")

    sent = shiphub("send", fixture, "--to", "dotcom", "--wait", "60")

    assert sent.code == 0, sent
    assert sent.out.splitlines() == [
        f"succeeded  dotcom/send_shipment  {SEED_ID}",
        f"  info: {SENT}",
    ]
    assert len(orders_of(sim, "H67606710123")) == 1
    hub.wait_for(SEED_ID)

    shown = shiphub("show", "dotcom", SEED_ID)

    assert shown.code == 0, shown
    lines = shown.out.splitlines()
    assert lines[0] == f"succeeded  dotcom/send_shipment  {SEED_ID}"
    assert "  message      shipment:ready" in lines
    assert "  attempts     1 (replays 0)" in lines
    assert f"  answer       info: {SENT}" in lines
    assert any(line.startswith("  delivery     delivered after 1 push(es)") for line in lines)
    as_json = record(shiphub, SEED_ID)
    assert (as_json["status"], as_json["attempts"]) == ("succeeded", 1)
    assert as_json["delivery"]["status"] == "delivered"

    again = shiphub("send", fixture, "--to", "dotcom")

    assert again.code == 0, again
    assert again.out.splitlines()[0] == f"duplicate, succeeded  dotcom/send_shipment  {SEED_ID}"
    assert "Duplicate message" in again.out
    assert len(orders_of(sim, "H67606710123")) == 1  # nothing was sent twice


def test_the_message_type_chooses_the_service_and_an_ambiguous_one_is_a_usage_error(
    shiphub: Shiphub, sim: DotcomSimulator, tmp_path: Path
) -> None:
    ambiguous = shiphub("send", str(FIXTURES / "shipment_ready.json"))

    assert ambiguous.code == 2, ambiguous
    assert "'shipment:ready' is taken by dotcom/send_shipment, shipping_orders/send_shipment" in (
        ambiguous.err
    )
    assert "--to" in ambiguous.err

    poll = json.loads((FIXTURES / "shipment_results_poll.json").read_text())
    poll["message_id"] = "cli-routed-poll"
    routed = shiphub("send", str(message_file(tmp_path, poll)), "--wait", "60", "--json")

    assert routed.code == 0, routed
    answer = routed.json()
    assert answer["message_id"] == "cli-routed-poll"
    assert answer["parameters"][0]["name"] == "dotcom.last_polling_datetime"
    assert record(shiphub, "cli-routed-poll")["service"] == "tracking"


def test_a_file_without_message_id_is_sent_under_a_fresh_id_each_time(
    shiphub: Shiphub, sim: DotcomSimulator, tmp_path: Path
) -> None:
    body = shipment_message(shipping_method="Standard")
    del body["message_id"]
    path = str(message_file(tmp_path, body))

    first = shiphub("send", path, "--to", "dotcom/send_shipment", "--json")
    second = shiphub("send", "-", "--to", "dotcom", "--json", input=json.dumps(body))

    assert (first.code, second.code) == (0, 0), (first, second)
    ids = [run.json()["message_id"] for run in (first, second)]
    assert ids[0] != ids[1]
    for run, message_id in zip((first, second), ids, strict=True):
        assert run.json()["status"] == "queued"
        assert f"message_id {message_id} (new: the file has none)" in run.err
    for message_id in ids:
        wait_until(
            lambda m=message_id: record(shiphub, m)["status"] in ("succeeded", "failed"),
            timeout=60,
        )


def test_a_dead_message_is_listed_and_replayed(
    shiphub: Shiphub, sim: DotcomSimulator, tmp_path: Path
) -> None:
    body = shipment_message(shipping_method="Standard")
    message_id, number = body["message_id"], body["payload"]["shipment"]["number"]
    sim.fault("http_500", "order", count=3)  # every attempt (TASK_MAX_ATTEMPTS=3) fails

    sent = shiphub("send", str(message_file(tmp_path, body)), "--to", "dotcom", "--wait", "60")
    dead_at = time.monotonic()

    assert sent.code == 1, sent
    assert sent.out.splitlines()[0] == f"failed  dotcom/send_shipment  {message_id}"
    assert "Gave up after 3 attempts" in sent.out
    assert f"dotcom/send_shipment {message_id}: the message failed" in sent.err
    assert message_id in dead_ids(shiphub, "messages")

    listed = shiphub("dead")

    assert listed.code == 0, listed
    lines = listed.out.splitlines()
    row = next(i for i, line in enumerate(lines) if f"dotcom  {message_id}  since " in line)
    assert lines[row + 1].startswith("    last error: ") and "HTTP 500" in lines[row + 1]
    assert "dead deliveries: " in listed.out
    # Its last POST's outcome is unknown: a replay looks it up once it can no longer land.
    time.sleep(max(0.0, LANDS_WITHIN - (time.monotonic() - dead_at)))

    replayed = shiphub("replay", "--all-dead", "dotcom")

    assert replayed.code == 0, replayed
    assert f"queued  dotcom  {message_id}  queued to be handled again" in replayed.out.splitlines()
    done = wait_until(
        lambda: (r := record(shiphub, message_id))["status"] == "succeeded" and r, timeout=60
    )
    assert (done["attempts"], done["replays"]) == (1, 1)
    assert len(orders_of(sim, number)) == 1
    assert message_id not in dead_ids(shiphub, "messages")

    once_more = shiphub("replay", "dotcom", message_id, "--json")

    assert once_more.code == 1, once_more  # a succeeded message is not replayable
    (outcome,) = once_more.json()["replayed"]
    assert (outcome["message_id"], outcome["outcome"]) == (message_id, "refused")
    assert "Not replayable" in outcome["detail"]


def test_a_dead_delivery_is_listed_and_pushed_again(
    shiphub: Shiphub, sim: DotcomSimulator, healthy_hub: HubServer, tmp_path: Path
) -> None:
    body = shipment_message(shipping_method="Standard")
    message_id = body["message_id"]
    with healthy_hub.lock:
        healthy_hub.down = True  # refuses every push: HUB_PUSH_MAX_ATTEMPTS=2 makes it dead

    sent = shiphub("send", str(message_file(tmp_path, body)), "--to", "dotcom", "--wait", "60")

    assert sent.code == 0, sent
    wait_until(lambda: message_id in dead_ids(shiphub, "deliveries"), timeout=60)
    listed = shiphub("dead")
    lines = listed.out.splitlines()
    row = next(i for i, line in enumerate(lines) if f"dotcom  {message_id}  since " in line)
    assert lines.index(next(x for x in lines if x.startswith("dead deliveries: "))) < row
    assert "hub answered HTTP 503" in lines[row + 1]
    with healthy_hub.lock:
        healthy_hub.down = False

    replayed = shiphub("replay", "--delivery", "dotcom", message_id)

    assert replayed.code == 0, replayed
    assert replayed.out.startswith(f"pending  dotcom  {message_id}  ")
    healthy_hub.wait_for(message_id)
    wait_until(lambda: record(shiphub, message_id)["delivery"]["status"] == "delivered")
    assert message_id not in dead_ids(shiphub, "deliveries")
    nothing = shiphub("replay", "--all-dead", "--delivery", "dotcom")
    assert (nothing.code, nothing.out) == (0, "no dead deliveries of dotcom\n")


def test_poll_runs_a_poll_now_from_the_stores_cursor(
    shiphub: Shiphub, sim: DotcomSimulator, store: str
) -> None:
    body = shipment_message(shipping_method="Standard")
    number = body["payload"]["shipment"]["number"]
    shipped = datetime.now(UTC) - timedelta(minutes=2)
    sim.inject(number, "01", shipped, [{"sku": "9011CC", "quantity_shipped": "1.00"}])

    polled = shiphub("poll", "dotcom", "--store", store, "--wait", "60", "--json")

    assert polled.code == 0, polled
    answer = polled.json()
    assert answer["message_id"].startswith("manual-dotcom-tracking-")
    confirmed = [m["payload"]["shipment"]["number"] for m in answer["messages"]]
    assert confirmed == [number]
    (cursor,) = answer["parameters"]
    assert cursor["name"] == "dotcom.last_polling_datetime"

    again = shiphub("poll", "dotcom", "tracking", "--store", store, "--wait", "60")

    assert again.code == 0, again
    first = again.out.splitlines()[0]
    assert first.startswith("succeeded  dotcom/tracking  manual-dotcom-tracking-")
    assert first.split()[-1] != answer["message_id"]
    assert number not in again.out  # from the store's cursor: nothing twice
    assert "  parameter dotcom.last_polling_datetime = " in again.out

    not_a_poll = shiphub("poll", "dotcom", "send_shipment")
    assert not_a_poll.code == 2, not_a_poll
    assert "dotcom/send_shipment is not a poll; dotcom's: tracking" in not_a_poll.err
