"""The message tabs of /ops (``/ops/messages``) in headless Chromium over the real stack (gunicorn,
a Celery worker, redis-server, the Dotcom simulator over HTTP): each tab with its count, the
filters, the search by shipment number, paging, and the bulk replay of a filtered list (refused
from another origin, taken from the page). Every view is saved as a screenshot
(``tests/ops/conftest.py``: ``SCREENSHOTS``)."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.dotcom.conftest import DotcomSimulator, post, shipment_message
from tests.ops.test_ops_failed import click_and_load
from tests.support.stack import Stack, wait_until

Screenshot = Callable[[str], Path]
TABS = ("queued", "processing", "retrying", "failed", "dead", "pushes", "dead-pushes")


def rows(browser: WebDriver) -> list[list[str]]:
    return [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "tr.tab-message")
    ]


def tab_count(browser: WebDriver, tab: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, f"#tab-{tab} .count").text


def dead_shipments(
    stack: Stack, sim: DotcomSimulator, stores: list[str], *, in_turn: bool = False
) -> list[dict[str, str]]:
    """A shipment for each of ``stores`` sent while Dotcom answers HTTP 500, each dead: their
    message id and shipment number. ``in_turn``: each dead before the next is sent (the newest
    last); else all at once."""
    sim.fault("http_500", "order", count=100)
    sent = []
    for store in stores:
        body = shipment_message()
        assert post(stack, "send_shipment", body, store, wait=0).status_code == 200
        sent.append({"id": body["message_id"], "number": body["payload"]["shipment"]["number"]})
        if in_turn:
            stack.wait_status("dotcom", sent[-1]["id"], "dead", timeout=60)
    for s in sent:
        stack.wait_status("dotcom", s["id"], "dead", timeout=60)
    return sent


def test_tabs_filters_search_and_paging_in_the_browser(
    ops_stack: Stack,
    sim: DotcomSimulator,
    browser: WebDriver,
    store: str,
    screenshot: Screenshot,
) -> None:
    first, second = dead_shipments(ops_stack, sim, [store, store], in_turn=True)
    sim.reset()

    browser.get(f"{ops_stack.url}/ops")
    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Messages"))
    assert browser.find_element(By.ID, "heading").text == "Failed"  # the first tab shown
    for tab in TABS:
        click_and_load(browser, browser.find_element(By.ID, f"tab-{tab}"))
        current = browser.find_element(By.CSS_SELECTOR, "nav.tabs a[aria-current]")
        assert current.get_attribute("id") == f"tab-{tab}"
        screenshot(f"tab-{tab}")

    # The dead tab, filtered by integration and store, one a page.
    click_and_load(browser, browser.find_element(By.ID, "tab-dead"))
    Select(browser.find_element(By.ID, "integration")).select_by_value("dotcom")
    Select(browser.find_element(By.ID, "store")).select_by_value(store)
    limit = browser.find_element(By.ID, "limit")
    limit.clear()
    limit.send_keys("1")
    click_and_load(browser, browser.find_element(By.ID, "apply"))
    screenshot("dead-filtered-page-1")
    assert tab_count(browser, "dead") == "2"
    (newest,) = rows(browser)
    assert newest[:5] == [second["id"], "dotcom", store, "shipment:ready", "dead"]
    assert "HTTP 500" in newest[8]
    click_and_load(browser, browser.find_element(By.ID, "older"))
    screenshot("dead-filtered-page-2")
    assert [row[0] for row in rows(browser)] == [first["id"]]
    assert not browser.find_elements(By.ID, "older")  # the last page

    # Search by shipment number: the message that sent it, in any state.
    search = browser.find_element(By.ID, "q")
    search.clear()
    search.send_keys(first["number"])
    click_and_load(browser, browser.find_element(By.ID, "apply"))
    screenshot("search-by-shipment-number")
    assert browser.find_element(By.ID, "heading").text == f"Search: {first['number']}"
    (found,) = rows(browser)
    assert found[0] == first["id"] and found[4] == "dead"
    click_and_load(browser, browser.find_element(By.LINK_TEXT, first["id"]))
    assert browser.find_element(By.ID, "status").text == "dead"

    # A bad parameter is a page saying which, never a 500.
    browser.get(f"{ops_stack.url}/ops/messages?tab=lost")
    screenshot("bad-query")
    assert browser.find_element(By.TAG_NAME, "h1").text == "400 Invalid tab"


def test_bulk_replay_is_refused_from_another_origin_and_taken_from_the_page(
    ops_stack: Stack,
    sim: DotcomSimulator,
    browser: WebDriver,
    store: str,
    screenshot: Screenshot,
) -> None:
    *sent, other = dead_shipments(ops_stack, sim, [store, store, f"{store}-other"])
    sim.reset()  # Dotcom takes orders again
    page = f"{ops_stack.url}/ops/messages?tab=dead&store={store}"
    browser.get(page)
    screenshot("dead-before-replay")
    button = browser.find_element(By.CSS_SELECTOR, "#replay-list button")
    assert button.text == "Replay all 2"

    # The very same form (its fresh token included) posted from a page of another origin.
    fields = {
        field.get_attribute("name"): field.get_attribute("value")
        for field in browser.find_elements(By.CSS_SELECTOR, "#replay-list input[type=hidden]")
    }
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in fields.items()
    )
    lure = (
        f'<form method="post" action="{ops_stack.url}/ops/replay-list">{hidden}'
        '<button id="lure">Win a prize</button></form>'
    )
    browser.get("data:text/html," + quote(lure))
    click_and_load(browser, browser.find_element(By.ID, "lure"))
    screenshot("replay-from-another-origin-refused")
    assert browser.find_element(By.TAG_NAME, "h1").text == "403 Forbidden"
    assert "another site" in browser.find_element(By.TAG_NAME, "body").text
    assert [ops_stack.record("dotcom", s["id"])["replays"] for s in sent] == [0, 0]

    browser.get(page)
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "#replay-list button"))
    notice = wait_until(lambda: browser.find_element(By.ID, "notice").text, timeout=30)
    screenshot("dead-after-replay")
    assert notice == (
        "Replay of the dead list: 2 messages replayed (queued for a worker), 0 skipped."
    )
    assert urlsplit(browser.current_url).path == "/ops/messages"
    for s in sent:
        ops_stack.wait_status("dotcom", s["id"], "succeeded", timeout=60)
    assert ops_stack.record("dotcom", other["id"])["status"] == "dead"  # another store's
    browser.get(page)
    assert browser.find_elements(By.ID, "replay-list") == []  # nothing left to replay
    screenshot("dead-emptied")
