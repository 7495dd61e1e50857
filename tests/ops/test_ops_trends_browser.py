"""The operations page's chart and its shipments that stopped moving, in headless Chromium over
the real stack. A Dotcom message that succeeds and one the simulator drives dead are drawn on
``/ops/activity`` (a chart with its title, legend and axis labels, the numbers in a table);
a shipment in transit with no news for ten days is listed on ``/ops/stale``. Each view's
screenshot is saved in ``tests/artifacts/screenshots/`` for review."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import redis
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.dotcom.conftest import DotcomSimulator, post, shipment_message
from tests.support.stack import ROOT, Stack
from worker.store import moving
from worker.store.bundle import Store

SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
DAY = 86400.0


def screenshot(browser: WebDriver, name: str) -> Path:
    """The whole page as it is now (beyond the window too), saved for review."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 1000, f"no screenshot saved at {path}"
    return path


def test_the_chart_draws_messages_handled_and_failed_per_minute_per_integration(
    ops_stack: Stack, sim: DotcomSimulator, browser: WebDriver, store: str
) -> None:
    good, bad = shipment_message(), shipment_message()
    assert post(ops_stack, "send_shipment", good, store, wait=0).status_code == 200
    ops_stack.wait_status("dotcom", good["message_id"], "succeeded", timeout=60)
    sim.fault("http_500", "order", count=100)
    assert post(ops_stack, "send_shipment", bad, store, wait=0).status_code == 200
    ops_stack.wait_status("dotcom", bad["message_id"], "dead", timeout=60)
    sim.reset()

    browser.get(f"{ops_stack.url}/ops/activity?hours=1")

    section = browser.find_element(By.ID, "chart-dotcom")
    heading = section.find_element(By.TAG_NAME, "h2").text
    assert heading.startswith("dotcom: ") and heading.endswith("failed"), heading
    handled, failed = (int(w) for w in heading.removeprefix("dotcom: ").split()[::2])
    assert handled >= 2 and failed >= 1
    svg = section.find_element(By.TAG_NAME, "svg")
    assert svg.get_attribute("role") == "img"
    assert svg.size["width"] > 600 and svg.size["height"] > 150  # drawn, not an empty box
    title = svg.find_element(By.TAG_NAME, "title").get_attribute("textContent")
    assert title == "Messages of dotcom handled and failed per minute, last 1 h"
    labels = [t.get_attribute("textContent") for t in svg.find_elements(By.TAG_NAME, "text")]
    assert {"handled", "failed", "messages per minute"} <= set(labels)
    lines = {
        kind: svg.find_element(By.CSS_SELECTOR, f"polyline.line-{kind}")
        for kind in ("handled", "failed")
    }
    assert all(len(line.get_attribute("points").split()) == 60 for line in lines.values())
    assert not browser.find_elements(By.TAG_NAME, "script")
    screenshot(browser, "ops-activity")

    browser.find_element(By.CSS_SELECTOR, "#numbers summary").click()  # the table, unfolded
    rows = [
        [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "tr.minute")
    ]
    dotcom = [r for r in rows if r[1] == "dotcom"]
    assert sum(int(r[2]) for r in dotcom) >= 1 and sum(int(r[4]) for r in dotcom) >= 1
    screenshot(browser, "ops-activity-table")


def test_a_shipment_with_no_news_for_days_is_listed_as_stopped_moving(
    ops_stack: Stack, browser: WebDriver
) -> None:
    """The stack's own Redis is given a shipment's news as a worker writes it (its path through
    a real worker is ``tests/shipping_orders/test_stale_pipeline.py``)."""
    db = Store.on(redis.Redis.from_url(ops_stack.redis.url, decode_responses=True))
    now = time.time()
    told = [
        ("H-STALE-1", "in_transit", "IN_TRANSIT", now - 10 * DAY),
        ("H-STALE-2", "out_for_delivery", "OUT_FOR_DELIVERY", now - 8 * DAY),
        ("H-FRESH", "in_transit", "IN_TRANSIT", now - DAY),
    ]
    with db.redis.pipeline() as pipe:
        for number, status, raw, at in told:
            news = moving.News(number, status, raw, "UPS", f"1Z{number}", at)
            moving.note(pipe, "dotcom", "shop-9", [news], f"m-{number}")
        pipe.execute()

    browser.get(f"{ops_stack.url}/ops/stale")

    rows = [
        [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "tr.stale-shipment")
    ]
    assert [r[:5] for r in rows] == [
        ["dotcom", "shop-9", "H-STALE-1", "in_transit", "IN_TRANSIT"],
        ["dotcom", "shop-9", "H-STALE-2", "out_for_delivery", "OUT_FOR_DELIVERY"],
    ]
    assert [r[-1] for r in rows] == ["10 d 0 h", "8 d 0 h"]
    assert "no news for 7 days" in browser.find_element(By.TAG_NAME, "body").text
    screenshot(browser, "ops-stale")

    browser.find_element(By.LINK_TEXT, "Activity").click()  # the pages link to each other
    assert browser.current_url.endswith("/ops/activity")
