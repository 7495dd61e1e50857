"""The operations page's chart and its stale shipments over fakeredis: messages finished are
counted in their minute by the transaction that stores them, within a bounded window; a
``shipment:update`` in transit or out for delivery is noted with its news and leaves on any
other status; ``/ops/activity`` and ``/ops/stale`` show them (bounds checked, 400 otherwise),
and ``/metrics`` counts stale shipments by integration. The browser tests over a real stack are
``tests/ops/test_ops_trends_browser.py``; the real worker's path is
``tests/shipping_orders/test_stale_pipeline.py``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from endpoint import ops_trends
from endpoint.metrics import render
from tests.conftest import Publisher, settle
from tests.support.records import accept
from tests.test_ops import OPS, OPS_PASSWORD, app_with, page
from worker.integrations import registry
from worker.store.bundle import Store
from worker.store.moving import news_in
from worker.store.per_minute import minute_of
from worker.store.schema import (
    MINUTES_KEPT,
    MOVING_KEPT_SECONDS,
    minute_key,
    moving_key,
    shipment_key,
)

DAY = 86400.0


def recorded(db: Store, message_id: str, store: str = "shop-1") -> None:
    body = {"message_id": message_id, "message": "order:ready", "payload": {}}
    fields = {
        "message": "order:ready",
        "service": "orders",
        "store": store,
        "body": json.dumps(body),
    }
    accept(db, "acme", message_id, "digest", fields)


def update(number: str, status: str, at: float | None = None, **more: Any) -> dict[str, Any]:
    shipment = {"number": number, "status": status, "provider_status": status.upper(), **more}
    if at is not None:
        shipment["status_at"] = datetime.fromtimestamp(at, UTC).isoformat()
    return {"message": "shipment:update", "payload": {"shipment": shipment}}


def finished_with(
    db: Store, message_id: str, *messages: dict[str, Any], store: str = "shop-1"
) -> None:
    recorded(db, message_id, store)
    answer = {"message_id": message_id, "messages": list(messages)}
    assert settle(db, message_id, "succeeded", answer) == "written"


# -- per minute --------------------------------------------------------------------------------
def test_each_finished_message_is_counted_in_its_minute_by_integration_and_outcome(
    db: Store,
) -> None:
    for n, status in enumerate(["succeeded", "succeeded", "failed", "dead"]):
        recorded(db, f"m{n}")
        assert (
            settle(db, f"m{n}", status, error=None if status == "succeeded" else "no") == "written"
        )
    now = minute_of(time.time())
    minutes = db.per_minute.read(now - 2, now)
    assert [m.minute for m in minutes] == [now - 2, now - 1, now]
    assert minutes[-1].counts == {
        ("acme", "succeeded"): 2,
        ("acme", "failed"): 1,
        ("acme", "dead"): 1,
    }
    assert minutes[-1].of("acme") == 4 and minutes[-1].of("acme", ("failed", "dead")) == 2
    assert minutes[0].counts == {}


def test_a_minutes_counts_expire_after_the_longest_window(db: Store) -> None:
    recorded(db, "m")
    settle(db, "m", "succeeded")
    key = minute_key(minute_of(time.time()))
    left = db.redis.ttl(key)
    assert MINUTES_KEPT * 60 - 5 <= left <= (MINUTES_KEPT + 1) * 60 + 5


def test_a_stale_writer_counts_nothing(db: Store) -> None:
    recorded(db, "m")
    db.attempts.begin("acme", "m", "mine")
    written = db.attempts.finish(
        "acme",
        "m",
        "succeeded",
        {"message_id": "m"},
        error=None,
        cursor={},
        push=False,
        lease_token="not-mine",
    )
    assert written == "stale"
    now = minute_of(time.time())
    assert db.per_minute.read(now, now)[0].counts == {}


# -- shipments on the move -----------------------------------------------------------------------
def test_a_shipment_in_transit_is_noted_with_its_news_and_leaves_when_delivered(db: Store) -> None:
    at = time.time() - 3 * DAY
    finished_with(db, "m1", update("N-1", "in_transit", at, carrier="UPS", tracking="1Z9"))
    found, total = db.moving.stale(time.time() - 2 * DAY)
    assert total == 1
    (shipment,) = found
    assert (shipment.integration, shipment.store, shipment.number) == ("acme", "shop-1", "N-1")
    assert (shipment.status, shipment.provider_status) == ("in_transit", "IN_TRANSIT")
    assert (shipment.carrier, shipment.tracking, shipment.message_id) == ("UPS", "1Z9", "m1")
    assert shipment.news_at == pytest.approx(at, abs=1)
    assert db.moving.stale(time.time() - 4 * DAY) == ([], 0)  # news since then: not stale

    finished_with(db, "m2", update("N-1", "delivered"))
    assert db.moving.stale(time.time()) == ([], 0)
    assert not db.redis.exists(shipment_key("acme", "shop-1", "N-1"))
    assert db.redis.zcard(moving_key()) == db.redis.zcard(moving_key("acme")) == 0


@pytest.mark.parametrize("status", ["delivered", "returned", "exception", "attempted", "cancelled"])
def test_only_in_transit_and_out_for_delivery_are_moving(status: str) -> None:
    (told,) = news_in([update("N", status)], time.time())
    assert not told.moving
    assert all(
        t.moving for t in news_in([update("A", "in_transit"), update("B", "out_for_delivery")], 0)
    )


def test_news_is_the_providers_time_never_later_than_now_and_the_last_of_an_answer_counts() -> None:
    now = time.time()
    told = news_in(
        [
            update("N", "in_transit", now - 100),
            update("N", "out_for_delivery", now - 50),
            update("F", "in_transit", now + 999),  # a provider's clock ahead of ours
            update("X", "in_transit")
            | {
                "payload": {
                    "shipment": {"number": "X", "status": "in_transit", "status_at": "soon"}
                }
            },
            {"message": "shipment:confirm", "payload": {"shipment": {"number": "C"}}},
            {"message": "shipment:update", "payload": {"shipment": {"status": "in_transit"}}},
        ],
        now,
    )
    assert [(t.number, t.status) for t in told] == [
        ("N", "out_for_delivery"),
        ("F", "in_transit"),
        ("X", "in_transit"),
    ]
    assert [t.at for t in told] == [pytest.approx(now - 50, abs=1), now, now]


def test_parts_stored_ahead_note_their_shipments_too(db: Store) -> None:
    recorded(db, "poll")
    db.attempts.begin("acme", "poll", "lease")
    part = json.dumps([update("P-1", "out_for_delivery", time.time() - DAY)])
    assert db.attempts.add_part("acme", "poll", [part], lease_token="lease", keep=[]) == "written"
    found, _ = db.moving.stale(time.time())
    assert [s.number for s in found] == ["P-1"]


def test_the_list_is_paged_oldest_news_first_and_counted_by_integration(db: Store) -> None:
    now = time.time()
    for n in range(5):
        finished_with(db, f"m{n}", update(f"N-{n}", "in_transit", now - (10 - n) * DAY))
    first, total = db.moving.stale(now - DAY, offset=0, limit=2)
    second, _ = db.moving.stale(now - DAY, offset=2, limit=2)
    assert total == 5
    assert [s.number for s in first + second] == ["N-0", "N-1", "N-2", "N-3"]
    assert db.moving.counts(["acme", "other"], now - 7.5 * DAY) == {"acme": 3, "other": 0}


def test_what_had_no_news_for_the_kept_time_is_forgotten(db: Store) -> None:
    now = time.time()
    finished_with(db, "old", update("OLD", "in_transit", now - MOVING_KEPT_SECONDS - 60))
    finished_with(db, "new", update("NEW", "in_transit", now - 60))
    assert db.redis.ttl(shipment_key("acme", "shop-1", "OLD")) <= 1  # expired, or about to
    db.moving.prune(["acme"], now)
    assert [s.number for s in db.moving.stale(now)[0]] == ["NEW"]
    assert db.redis.zcard(moving_key("acme")) == 1


# -- /metrics ----------------------------------------------------------------------------------
def stale_gauge(text: str) -> dict[str, float]:
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "shiphub_stale_shipments"
    ]
    assert family.type == "gauge"
    return {s.labels["integration"]: s.value for s in family.samples}


def test_metrics_count_the_stale_shipments_of_each_integration(db: Store) -> None:
    registry.load("tests.support.acme")
    now = time.time()
    finished_with(db, "m1", update("S-1", "in_transit", now - 8 * DAY))
    finished_with(db, "m2", update("S-2", "out_for_delivery", now - 9 * DAY))
    finished_with(db, "m3", update("S-3", "in_transit", now - DAY))
    counted = stale_gauge(render(db, 7 * DAY))
    assert counted["acme"] == 2
    assert set(counted) >= {"acme", "dotcom", "shipping_orders"}  # every integration, at 0
    assert counted["dotcom"] == 0
    assert stale_gauge(render(db, 0.5 * DAY))["acme"] == 3


# -- the pages ---------------------------------------------------------------------------------
@pytest.fixture
def client(db: Store, publisher: Publisher) -> Iterator[FlaskClient]:
    app = app_with(db, publisher, ops_password=OPS_PASSWORD, stale_shipment_days=7)
    with app.test_client() as c:
        yield c


def test_the_activity_page_draws_each_integration_with_a_title_legend_axes_and_a_table(
    db: Store, client: FlaskClient
) -> None:
    recorded(db, "ok")
    settle(db, "ok", "succeeded")
    recorded(db, "bad")
    settle(db, "bad", "failed", error="refused")
    response = client.get("/ops/activity", headers=OPS)
    assert response.status_code == 200
    html = response.text
    assert "<script" not in html
    assert html.count("<svg") == 2  # all integrations, then acme
    assert 'id="title-acme"' in html and 'id="desc-acme"' in html
    assert "Messages of acme handled and failed per minute, last 3 h" in html
    assert "2 handled, 1 failed" in html
    assert "messages per minute" in html and "time (UTC)" in html
    assert 'class="legend"' in html
    shown = page(response)
    assert shown.table("minute") == [[shown.table("minute")[0][0], "acme", "1", "1", "0"]]
    assert html.count("<polyline") == 4
    points = [p.split(",") for p in _points(html, "line-handled")[0].split()]
    assert len(points) == 3 * 60  # one a minute


def _points(html: str, kind: str) -> list[str]:
    import re

    return re.findall(rf'class="{kind}"[^>]*points="([^"]*)"', html)


def test_the_activity_window_is_bounded(client: FlaskClient) -> None:
    assert client.get("/ops/activity?hours=24", headers=OPS).status_code == 200
    one = client.get("/ops/activity?hours=1", headers=OPS)
    assert len(_points(one.text, "line-handled")[0].split()) == 60
    for bad in ("0", "25", "three", "-1", "1.5"):
        response = client.get(f"/ops/activity?hours={bad}", headers=OPS)
        assert response.status_code == 400, bad
        assert "hours must be a whole number from 1 to 24" in response.text
    assert client.get("/ops/activity").status_code == 401


def test_the_stale_page_lists_shipments_with_no_news_for_the_setting_paged(
    db: Store, client: FlaskClient
) -> None:
    now = time.time()
    for n in range(ops_trends.STALE_PER_PAGE + 2):
        finished_with(
            db, f"m{n}", update(f"N-{n:03d}", "in_transit", now - 30 * DAY + n * 60, carrier="DHL")
        )
    finished_with(db, "fresh", update("FRESH", "out_for_delivery", now - DAY), store="shop-2")
    response = client.get("/ops/stale", headers=OPS)
    assert response.status_code == 200
    shown = page(response)
    rows = shown.table("stale-shipment")
    assert len(rows) == ops_trends.STALE_PER_PAGE
    integration, store, number, status, raw, carrier, _, _, silent = rows[0]
    assert (integration, store, number, status, raw, carrier) == (
        "acme",
        "shop-1",
        "N-000",
        "in_transit",
        "IN_TRANSIT",
        "DHL",
    )
    assert silent == "30 d 0 h"
    assert "52 shipments" in shown.text and "no news for 7 days" in shown.text
    assert ["acme", "52"] in shown.table("stale-count")
    older = client.get("/ops/stale?page=2", headers=OPS)
    assert [r[2] for r in page(older).table("stale-shipment")] == ["N-050", "N-051"]
    assert "FRESH" not in older.text
    for bad in ("/ops/stale?page=0", "/ops/stale?page=x", "/ops/stale?integration=nope"):
        assert client.get(bad, headers=OPS).status_code == 400, bad


def test_silent_for_reads_as_an_operator_reads_it() -> None:
    assert ops_trends.silent_for(9 * DAY + 3 * 3600 + 59) == "9 d 3 h"
    assert ops_trends.silent_for(5 * 3600 + 12 * 60) == "5 h 12 min"
    assert ops_trends.silent_for(42) == "42 s"
    assert ops_trends.silent_for(-3) == "0 s"


def test_the_y_axis_tops_at_a_round_number() -> None:
    assert [ops_trends.nice_ceiling(v) for v in (0, 1, 3, 7, 10, 11, 48, 120)] == [
        1,
        1,
        5,
        10,
        10,
        20,
        50,
        200,
    ]
