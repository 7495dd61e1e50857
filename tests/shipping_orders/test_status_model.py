"""The canonical status model and the Shipping Order API's statuses mapped to it (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from worker.basics.errors import HardError
from worker.hub.messages import ShipmentChanges, ShipmentReady
from worker.hub.status import FINAL, RANK, Observation, Progress, ShipmentStatus, advance, is_news
from worker.integrations.shipping_orders.mapping import (
    STATUSES,
    HistoryEntry,
    canonical_status,
    create_body,
    edit_body,
    order_of,
    poll_windows,
    report,
    since_last,
)

S = ShipmentStatus
ROOT = Path(__file__).resolve().parents[2]
# Every status providers.md lists for the API.
DOCUMENTED = [
    "REQUEST_RECEIVED",
    "PENDING_DISPATCH",
    "PENDING_RELEASE",
    "PENDING_AUTORETRY",
    "ESTIMATES_RECEIVED",
    "ORDER_DISPATCHED",
    "STAGED",
    "ORDER_ASSIGNED",
    "ORDER_UNASSIGNED",
    "PICKUP_STARTED",
    "PICKUP_COMPLETED",
    "IN_TRANSIT",
    "OUT_FOR_DELIVERY",
    "ORDER_AT_LOCATION",
    "ORDER_DELAYED",
    "ORDER_REDELIVERY",
    "ESTIMATES_FAILED",
    "ORDER_FAILED",
    "ORDER_DELIVERED",
    "ORDER_UNDELIVERABLE",
    "ERROR_EXCEPTION",
    "ORDER_CANCELLED",
]


def seen(status: ShipmentStatus, at: int | None, raw: str = "") -> Observation:
    return Observation(status, raw or status.value.upper(), at)


def told(*observations: Observation) -> Progress | None:
    progress = None
    for observation in observations:
        progress = advance(progress, observation)
    return progress


def test_the_canonical_set_is_finer_than_karrios_twelve() -> None:
    required = {
        "pending", "accepted", "dispatched", "assigned", "picked_up", "in_transit",
        "out_for_delivery", "delivered", "delayed", "attempted", "undeliverable", "returned",
        "failed", "cancelled", "exception", "unknown",
    }  # fmt: skip
    assert {s.value for s in ShipmentStatus} >= required
    assert len(ShipmentStatus) > 12
    assert set(RANK) == set(ShipmentStatus)


@pytest.mark.parametrize("raw", DOCUMENTED)
def test_every_documented_status_has_a_canonical_one(raw: str) -> None:
    assert raw in STATUSES
    assert canonical_status(raw) is not S.UNKNOWN


def test_lifecycle_statuses_map_as_the_hub_expects() -> None:
    assert canonical_status("ORDER_DISPATCHED") is S.DISPATCHED
    assert canonical_status("PICKUP_STARTED") is S.ASSIGNED  # on the way to the pickup
    assert canonical_status("PICKUP_COMPLETED") is S.PICKED_UP
    assert canonical_status("ORDER_REDELIVERY") is S.ATTEMPTED
    assert canonical_status("ORDER_UNDELIVERABLE") is S.UNDELIVERABLE
    assert canonical_status("ORDER_UNDELIVERABLE", "RETURN_AT_LOCATION") is S.RETURNED
    assert canonical_status("ORDER_DELAYED") is S.DELAYED
    assert canonical_status("ERROR_EXCEPTION") is S.EXCEPTION
    assert canonical_status("ESTIMATES_FAILED") is S.FAILED
    assert canonical_status("ORDER_TELEPORTED") is S.UNKNOWN


def test_the_same_status_again_is_not_news_whatever_its_time() -> None:
    last = told(seen(S.PICKED_UP, 2000))
    assert not is_news(last, seen(S.PICKED_UP, 2000))
    assert not is_news(last, seen(S.PICKED_UP, 2500))  # the poll's copy, another clock


def test_an_older_event_arriving_late_never_moves_a_shipment_back() -> None:
    last = told(seen(S.DISPATCHED, 1000), seen(S.IN_TRANSIT, 3000))
    assert not is_news(last, seen(S.PICKED_UP, 2000))
    assert is_news(last, seen(S.OUT_FOR_DELIVERY, 4000))


def test_a_redelivery_goes_out_again_and_is_reported_each_time() -> None:
    last = told(seen(S.OUT_FOR_DELIVERY, 1000), seen(S.ATTEMPTED, 2000))
    assert is_news(last, seen(S.OUT_FOR_DELIVERY, 3000))


def test_final_statuses_hold_except_delivered_then_returned() -> None:
    assert S.CANCELLED in FINAL
    cancelled = told(seen(S.CANCELLED, 1000))
    assert not is_news(cancelled, seen(S.IN_TRANSIT, 5000))
    delivered = told(seen(S.DELIVERED, 1000))
    assert not is_news(delivered, seen(S.OUT_FOR_DELIVERY, 5000))
    assert is_news(delivered, seen(S.RETURNED, 5000))


def test_without_times_only_a_higher_rank_is_news() -> None:
    last = told(seen(S.PICKED_UP, None))
    assert not is_news(last, seen(S.DISPATCHED, None))
    assert is_news(last, seen(S.IN_TRANSIT, None))


def test_progress_counts_updates_and_remembers_the_confirm() -> None:
    progress = told(seen(S.DISPATCHED, 1), seen(S.PICKED_UP, 2), seen(S.IN_TRANSIT, 3))
    assert progress is not None
    assert (progress.sequence, progress.confirmed) == (3, True)
    assert Progress.from_json(json.loads(json.dumps(progress.to_json()))) == progress


ORDER = {
    "orderExternalId": "H1",
    "status": "IN_TRANSIT",
    "lastUpdatedAt": "2026-11-23T10:00:03.000Z",
    "trackingId": "1ZTRACK",
    "provider": {"name": "UPS", "displayName": "UPS", "serviceType": "Ground"},
    "actualPickupTime": 1795428002000,
    "orderAttributes": {"hubOrderNumber": "R1"},
}


def entry(status: str, at: int, sub: str | None = None) -> HistoryEntry:
    return HistoryEntry(status=status, updatedAtEpoch=at, subStatus=sub)


def test_a_poll_fills_the_gap_a_lost_webhook_left_in_order_with_one_confirm() -> None:
    order = order_of(ORDER)
    last = told(seen(S.DISPATCHED, 1000, "ORDER_DISPATCHED"))
    history = [
        entry("REQUEST_RECEIVED", 998),
        entry("ORDER_DISPATCHED", 1000),
        entry("PICKUP_COMPLETED", 2000),
        entry("IN_TRANSIT", 3000),
    ]
    result = report(order, last, history)
    assert [(u.status, u.provider_status, u.sequence) for u in result.updates] == [
        (S.PICKED_UP, "PICKUP_COMPLETED", 2),
        (S.IN_TRANSIT, "IN_TRANSIT", 3),
    ]
    assert result.confirm is not None
    assert (result.confirm.tracking, result.confirm.carrier) == ("1ZTRACK", "UPS")
    assert result.confirm.order_number == "R1"
    assert result.progress is not None and result.progress.confirmed

    again = report(order, result.progress)
    assert (again.updates, again.confirm, again.progress) == ([], None, None)


def test_an_unmapped_status_is_reported_as_unknown_with_the_raw_word() -> None:
    order = order_of({**ORDER, "status": "ORDER_TELEPORTED"})
    result = report(order, None)
    (update,) = result.updates
    assert (update.status, update.provider_status) == (S.UNKNOWN, "ORDER_TELEPORTED")
    assert result.unknown == ["ORDER_TELEPORTED"]


def shipment_ready() -> ShipmentReady:
    raw = json.loads((ROOT / "tests/fixtures/dotcom/shipment_ready.json").read_text())
    return ShipmentReady.model_validate(raw["payload"])


def test_a_hub_shipment_becomes_an_order_keyed_by_its_number() -> None:
    body = create_body(shipment_ready(), "store-1")
    assert body["orderExternalId"] == "H67606710123"
    assert body["locationExternalId"] == "store-1"
    assert body["orderValue"] == 56.0
    assert body["deliveryAddress"] == {
        "street1": "2 Wisconsin Cir.",
        "street2": "",
        "city": "Chevy Chase",
        "state": "MD",
        "postalCode": "20815",
        "countryCode": "US",
    }
    assert body["deliveryContact"]["name"] == "Brian Quinn"
    assert [i["sku"] for i in body["itemList"]] == ["9011CC", "2001SSBM"]
    assert body["package"]["itemQuantity"] == 2
    assert body["orderAttributes"]["hubOrderNumber"] == "R805661123"


def test_a_shipment_that_cannot_be_sent_names_each_field() -> None:
    ready = shipment_ready()
    ready.shipment.shipping_address.country = "USA"
    ready.shipment.number = "H" * 101
    with pytest.raises(HardError) as caught:
        create_body(ready, "store-1")
    reasons = " ".join(caught.value.reasons)
    assert "shipment.number is 101 characters" in reasons
    assert "country 'USA' is not a two-letter code" in reasons


def test_an_update_sends_only_what_changed() -> None:
    changes = ShipmentChanges.model_validate(
        {"number": "H1", "items": [{"sku": "A", "quantity": 2, "price": "1.25"}]}
    )
    body = edit_body(changes)
    assert set(body) == {"itemList", "package", "orderValue"}
    assert body["orderValue"] == float(Decimal("2.50"))
    with pytest.raises(HardError, match="Nothing to change"):
        edit_body(ShipmentChanges(number="H1"))


def test_polls_read_in_windows_of_at_most_thirty_days_and_within_a_year() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    windows = poll_windows(now - timedelta(days=75), now, timedelta(0), timedelta(hours=24))
    spans = windows.each()
    assert len(spans) == 3
    assert all(end - start <= timedelta(days=30) for start, end in spans)
    assert spans[0][0] == now - timedelta(days=75) and spans[-1][1] == now
    old = poll_windows(now - timedelta(days=500), now, timedelta(0), timedelta(hours=24))
    assert old.clamped and now - old.start < timedelta(days=365)


def test_steps_of_one_millisecond_are_reported_in_the_historys_order() -> None:
    """The API can record several steps at once: their place in the history counts."""
    order = order_of({**ORDER, "status": "PICKUP_COMPLETED", "lastUpdatedAt": None})
    last = told(seen(S.DISPATCHED, 1000, "ORDER_DISPATCHED"))
    history = [
        entry("ORDER_DISPATCHED", 1000),
        entry("ORDER_ASSIGNED", 2000),
        entry("PICKUP_STARTED", 2000),
        entry("PICKUP_COMPLETED", 2000),
    ]
    result = report(order, last, history)
    assert [u.provider_status for u in result.updates] == [
        "ORDER_ASSIGNED",
        "PICKUP_STARTED",
        "PICKUP_COMPLETED",
    ]


def test_history_without_the_last_status_told_is_filtered_by_time() -> None:
    order = order_of(ORDER)
    last = told(seen(S.PICKED_UP, 2000, "PICKUP_COMPLETED"))
    _, anchored = since_last([entry("ORDER_ASSIGNED", 1500)], last)
    assert not anchored
    assert report(order, last, [entry("ORDER_ASSIGNED", 1500)]).updates[0].provider_status == (
        "IN_TRANSIT"
    )
