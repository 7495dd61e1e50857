"""tracking (dotcom:shipment_results:poll) through the real pieces: windows, confirmations,
de-duplication across overlapping windows, and a failed poll that keeps the cursor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.dotcom.conftest import (
    DotcomSimulator,
    poll_message,
    post,
    shipment_message,
    shipment_number,
)
from tests.support.servers import HubServer
from tests.support.stack import RedisServer, Stack, wait_until
from worker.integrations.dotcom.mapping import dotcom_time, parse_cursor

NEW_YORK = ZoneInfo("America/New_York")
CURSOR = "dotcom.last_polling_datetime"


def confirms(answer: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """shipment:confirm payloads by (shipment number, Dotcom release)."""
    assert {m["message"] for m in answer["messages"]} <= {"shipment:confirm"}
    found = {}
    for message in answer["messages"]:
        shipment = message["payload"]["shipment"]
        key = (shipment["number"], shipment["dotcom_release"])
        assert key not in found, f"{key} confirmed twice"
        found[key] = shipment
    return found


def cursor_value(answer: dict[str, Any]) -> str:
    (parameter,) = answer["parameters"]
    assert parameter["name"] == CURSOR
    return parameter["value"]


def stored_cursor(redis_server: RedisServer, store: str) -> str | None:
    raw = redis_server.client().hget(f"shiphub:cursor:dotcom:{store}", "last_polling_datetime")
    return json.loads(raw) if raw is not None else None


def hour_ago() -> str:
    return dotcom_time(datetime.now(UTC) - timedelta(hours=1), NEW_YORK)


def wait_for_window(cursor: str) -> None:
    """Until the next window after ``cursor`` is open (lag 1 s, whole seconds)."""
    opens = parse_cursor(cursor, NEW_YORK) + timedelta(seconds=2.1)
    wait_until(lambda: datetime.now(UTC) > opens, timeout=10)


def item(sku: str, quantity: str = "1.00", **fields: Any) -> dict[str, Any]:
    return {"sku": sku, "quantity_shipped": quantity, **fields}


def test_poll_confirms_every_shipped_release_with_every_tracking_number(
    dotcom_stack: Stack,
    sim: DotcomSimulator,
    store: str,
    redis_server: RedisServer,
    hub: HubServer,
) -> None:
    sent = shipment_message()
    number = sent["payload"]["shipment"]["number"]
    order_number = sent["payload"]["shipment"]["order_number"]
    assert post(dotcom_stack, "send_shipment", sent, store).status_code == 200
    shipped = datetime.now(UTC) - timedelta(minutes=2)
    sim.inject(  # replaces the release the simulator made: two cartons, two tracking numbers
        number,
        "01",
        shipped,
        [
            item("9011CC", "2.00", tracking_number="1ZCARTON0001", carton_id="C1"),
            item("2001SSBM", "1.00", tracking_number="1ZCARTON0002", carton_id="C2"),
            item("9011CC", "1.00", tracking_number="1ZCARTON0002", carton_id="C2"),
        ],
    )
    sim.inject(  # a back-order release by a carrier without tracking numbers
        number,
        "02",
        shipped + timedelta(seconds=1),
        [item("HAT-01", carrier="DCD Truck", service="LTL", tracking_number=None)],
    )
    sim.inject(number, "03", shipped, [item("SKU-1", "0.00"), item("SKU-2", "0.00")])
    stranger = shipment_number()  # shipped by Dotcom, never sent through this endpoint
    sim.inject(stranger, "01", shipped, [item("SKU-3", tracking_number="1ZSTRANGER01")])
    before = datetime.now(UTC)
    poll = poll_message(last_polling_datetime=hour_ago())

    response = post(dotcom_stack, "tracking", poll, store)

    assert response.status_code == 200, response.text
    answer = response.json()
    found = confirms(answer)
    assert set(found) == {(number, "01"), (number, "02"), (stranger, "01")}
    dcd = next(o for o in sim.orders()["orders"] if o["order_number"] == number)
    day = shipped.astimezone(NEW_YORK).date()
    assert found[number, "01"] == {
        "number": number,
        "order_number": order_number,
        "status": "shipped",
        "tracking": "1ZCARTON0001",
        "tracking_numbers": ["1ZCARTON0001", "1ZCARTON0002"],
        "tracking_url": None,  # Dotcom gives none
        "carrier": "UPS",
        "carriers": ["UPS"],
        "service": "UPS Ground",  # Dotcom's service names its carrier
        "service_code": "03",
        "shipping_method": "UPS Ground (USD)",
        "shipped_at": datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).isoformat(),
        "items": [{"sku": "9011CC", "quantity": 3}, {"sku": "2001SSBM", "quantity": 1}],
        "cartons": [
            {"carton_id": "C1", "tracking_number": "1ZCARTON0001"},
            {"carton_id": "C2", "tracking_number": "1ZCARTON0002"},
        ],
        "dotcom_order_number": dcd["dcd_order_number"],
        "dotcom_release": "01",
    }
    back_order = found[number, "02"]
    assert (back_order["tracking"], back_order["tracking_numbers"]) == (None, [])
    assert (back_order["carrier"], back_order["order_number"]) == ("DCD Truck", order_number)
    assert back_order["items"] == [{"sku": "HAT-01", "quantity": 1}]
    assert found[stranger, "01"]["order_number"] is None
    assert found[stranger, "01"]["tracking"] == "1ZSTRANGER01"

    levels = {n["level"]: n for n in answer["notifications"]}
    assert stranger in levels["warn"]["description"]
    assert number not in levels["warn"]["description"]
    assert levels["info"]["description"].startswith("3 new shipment(s) from ")

    cursor = cursor_value(answer)
    end = parse_cursor(cursor, NEW_YORK)
    assert before - timedelta(seconds=3) <= end <= datetime.now(UTC)
    assert stored_cursor(redis_server, store) == cursor
    pushed = hub.wait_for(poll["message_id"])
    assert pushed["messages"] == answer["messages"]


def test_overlapping_polls_never_emit_a_release_twice(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    number = shipment_number()
    now = datetime.now(UTC)
    sim.inject(number, "01", now - timedelta(minutes=3), [item("SKU-1", tracking_number="1ZA")])
    cursor = hour_ago()

    first = post(dotcom_stack, "tracking", poll_message(last_polling_datetime=cursor), store)
    assert first.status_code == 200, first.text
    assert set(confirms(first.json())) == {(number, "01")}

    sim.inject(number, "02", now - timedelta(minutes=2), [item("SKU-2", tracking_number="1ZB")])
    second = post(dotcom_stack, "tracking", poll_message(last_polling_datetime=cursor), store)

    assert second.status_code == 200, second.text
    assert set(confirms(second.json())) == {(number, "02")}  # the same window again: only new

    wait_for_window(cursor_value(second.json()))
    third = post(dotcom_stack, "tracking", poll_message(), store)  # stored cursor, overlapping

    assert third.status_code == 200, third.text
    answer = third.json()
    assert answer["messages"] == []
    (note,) = answer["notifications"]
    assert note["level"] == "info"
    assert note["description"].startswith("No new shipments from ")
    assert note["description"].endswith("; 2 already confirmed")


def test_a_failed_poll_keeps_the_cursor_and_the_next_poll_covers_its_window(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str, redis_server: RedisServer
) -> None:
    first = post(dotcom_stack, "tracking", poll_message(last_polling_datetime=hour_ago()), store)
    assert first.status_code == 200, first.text
    kept = cursor_value(first.json())
    number = shipment_number()
    shipped = datetime.now(UTC)
    assert shipped > parse_cursor(kept, NEW_YORK)  # after the stored cursor
    sim.inject(number, "01", shipped, [item("SKU-1", tracking_number="1ZLATE")])
    requests_before = sim.orders()["shipment_requests"]
    sim.fault("http_500", "shipment", count=3)  # every attempt (TASK_MAX_ATTEMPTS=3) fails
    wait_for_window(kept)

    failed = post(dotcom_stack, "tracking", poll_message(), store)

    assert failed.status_code == 500
    answer = failed.json()
    assert answer["parameters"] == [] and answer["messages"] == []
    (note,) = answer["notifications"]
    assert note["level"] == "error"
    assert note["subject"].startswith("Gave up after 3 attempts over ")
    assert "HTTP 500" in note["description"]
    assert sim.orders()["shipment_requests"] == requests_before + 3
    assert stored_cursor(redis_server, store) == kept

    wait_for_window(dotcom_time(shipped, NEW_YORK))  # the window now reaches the shipment
    recovered = post(dotcom_stack, "tracking", poll_message(), store)

    assert recovered.status_code == 200, recovered.text
    assert set(confirms(recovered.json())) == {(number, "01")}
    advanced = cursor_value(recovered.json())
    assert parse_cursor(advanced, NEW_YORK) > parse_cursor(kept, NEW_YORK)
    assert stored_cursor(redis_server, store) == advanced


def test_an_html_page_instead_of_xml_is_retried(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    number = shipment_number()
    sim.inject(number, "01", datetime.now(UTC) - timedelta(minutes=1), [item("SKU-1")])
    sim.fault("html_error_page", "shipment")
    poll = poll_message(last_polling_datetime=hour_ago())

    response = post(dotcom_stack, "tracking", poll, store)

    assert response.status_code == 200, response.text
    assert set(confirms(response.json())) == {(number, "01")}
    record = dotcom_stack.record("dotcom", poll["message_id"])
    assert record["attempts"] == 2
    assert record["last_error"] is None
    assert "an HTML page (HTTP 200) instead of XML" in record["earlier_error"]


def test_a_cursor_too_recent_makes_no_call_and_keeps_the_cursor(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    recent = dotcom_time(datetime.now(UTC) + timedelta(minutes=5), NEW_YORK)

    response = post(dotcom_stack, "tracking", poll_message(last_polling_datetime=recent), store)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["messages"] == []
    assert answer["parameters"] == [{"name": CURSOR, "value": recent}]
    assert "Nothing to poll yet" in answer["notifications"][0]["description"]
    assert sim.orders()["shipment_requests"] == 0


def test_an_unreadable_cursor_is_a_hard_error_naming_it(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    response = post(
        dotcom_stack, "tracking", poll_message(last_polling_datetime="last tuesday"), store
    )

    assert response.status_code == 500
    (note,) = response.json()["notifications"]
    assert "last_polling_datetime 'last tuesday'" in note["description"]
    assert sim.orders()["shipment_requests"] == 0


def test_poll_without_a_cursor_looks_back_a_day(
    dotcom_stack: Stack, sim: DotcomSimulator, store: str
) -> None:
    number = shipment_number()
    sim.inject(number, "01", datetime.now(UTC) - timedelta(hours=20), [item("SKU-1")])
    sim.inject(shipment_number(), "01", datetime.now(UTC) - timedelta(hours=30), [item("SKU-1")])

    response = post(dotcom_stack, "tracking", poll_message(), store)

    assert response.status_code == 200, response.text
    assert set(confirms(response.json())) == {(number, "01")}
