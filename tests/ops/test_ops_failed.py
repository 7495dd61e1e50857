"""The /ops page over the real stack (gunicorn, a Celery worker, redis-server, the Acme provider
over HTTP), in headless Chromium and over plain HTTP: the view of failed, dead and retrying
messages, filtered and paged; and its Replay forms, which say only what the server did, come
only from this very origin, and work once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.ops.conftest import OPS_PASSWORD, basic_auth
from tests.pipeline.conftest import provider, stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import Stack, serving, wait_until
from tests.test_ops import Page

__all__ = ["provider"]  # the pipeline tests' Acme provider, started again for this module

REFUSED = {"status": 422, "errors": ["Acme refused: unknown SKU"]}
UNAVAILABLE = {"status": 503, "errors": ["maintenance"]}
OPS = {"Authorization": basic_auth(OPS_PASSWORD)}


@pytest.fixture(scope="module")
def acme_ops(provider: ProviderServer, hub: HubServer) -> Iterator[Stack]:
    """Receiver and worker for Acme with an operations password, on a Redis of their own; a
    provider's Retry-After is honoured up to a minute, so a message answered "503, Retry-After:
    40" stays retrying."""
    env = {**stack_env(provider, hub), "OPS_PASSWORD": OPS_PASSWORD, "RETRY_MAX_SECONDS": "60"}
    with serving(None, env) as running:
        yield running


def a_store() -> str:
    return f"shop-{uuid.uuid4().hex[:8]}"


def send(stack: Stack, provider: ProviderServer, store: str, *actions: dict[str, Any]) -> str:
    body = order_message()
    provider.script(body["payload"]["order"]["number"], *actions)
    assert stack.post("/acme/send_order", body, store=store).status_code == 200
    return body["message_id"]


def listed_rows(browser: WebDriver) -> list[list[str]]:
    return [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "tr.listed-message")
    ]


def click_and_load(browser: WebDriver, control: WebElement) -> None:
    """Click ``control`` (a link or a form's button) and wait for the page it opens: a click
    returns before the next document is there, and rows read meanwhile are the old page's."""
    page = browser.find_element(By.TAG_NAME, "html")
    control.click()

    def replaced() -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return browser.execute_script("return document.readyState") == "complete"
        return False

    wait_until(replaced, timeout=30)


def show(browser: WebDriver, store: str, statuses: set[str], limit: str) -> None:
    """Fill the view's filter form and submit it."""
    for box in browser.find_elements(By.CSS_SELECTOR, "input[name=status]"):
        if box.is_selected() != (box.get_attribute("value") in statuses):
            box.click()
    Select(browser.find_element(By.NAME, "integration")).select_by_value("acme")
    for name, value in (("store", store), ("limit", limit)):
        field = browser.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    click_and_load(browser, browser.find_element(By.ID, "show"))


def test_failed_and_retrying_messages_are_filtered_paged_and_replayed_in_the_browser(
    acme_ops: Stack, provider: ProviderServer, browser: WebDriver
) -> None:
    shop, other = a_store(), a_store()
    failed = []
    for _ in range(3):  # one after the other: the last is the newest failure
        failed.append(send(acme_ops, provider, shop, REFUSED))
        acme_ops.wait_status("acme", failed[-1], "failed")
    elsewhere = send(acme_ops, provider, other, REFUSED)
    retrying = send(acme_ops, provider, shop, {"status": 503, "retry_after": 40})
    acme_ops.wait_status("acme", elsewhere, "failed")
    acme_ops.wait_status("acme", retrying, "retrying")

    browser.get(f"{acme_ops.url}/ops")
    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Failed and retrying messages"))
    show(browser, shop, {"failed", "dead"}, "2")

    first = listed_rows(browser)
    assert [row[:4] for row in first] == [
        ["failed", "acme", failed[2], shop],
        ["failed", "acme", failed[1], shop],
    ]
    assert "unknown SKU" in first[0][7]
    click_and_load(browser, browser.find_element(By.ID, "older"))
    second = listed_rows(browser)
    assert [row[2] for row in second] == [failed[0]]
    assert not browser.find_elements(By.ID, "older")  # the last page

    show(browser, shop, {"retrying"}, "50")
    (trying,) = listed_rows(browser)
    assert trying[:4] == ["retrying", "acme", retrying, shop] and "503" in trying[7]
    assert not trying[-1]  # nothing to replay: it is still being tried

    show(browser, shop, {"failed"}, "50")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.listed-message")
    row = next(r for r in rows if failed[0] in r.text)
    click_and_load(browser, row.find_element(By.CSS_SELECTOR, "button"))  # Acme takes it now
    notice = wait_until(lambda: browser.find_element(By.ID, "notice").text, timeout=30)
    assert notice == f"Message {failed[0]} of acme: replayed, queued for a worker."
    assert urlsplit(browser.current_url).path == "/ops/failed"
    acme_ops.wait_status("acme", failed[0], "succeeded")
    browser.get(f"{acme_ops.url}/ops/failed?store={shop}&status=failed")
    assert [r[2] for r in listed_rows(browser)] == [failed[2], failed[1]]


def test_a_crafted_link_puts_no_notice_on_the_page(
    acme_ops: Stack, provider: ProviderServer, browser: WebDriver
) -> None:
    message_id = send(acme_ops, provider, a_store(), REFUSED)
    acme_ops.wait_status("acme", message_id, "failed")
    lure = quote("account locked: call +1 555 0100 to unlock")

    for path in (
        f"/ops?kind=message&replayed=queued&integration=acme&message_id={lure}",
        f"/ops/messages/acme/{message_id}?kind=message&replayed=queued",
        f"/ops/failed?kind=message&replayed=queued&integration=acme&message_id={lure}",
    ):
        browser.get(acme_ops.url + path)
        assert browser.find_elements(By.TAG_NAME, "h1"), browser.page_source[-2000:]
        assert browser.find_elements(By.ID, "notice") == [], path
        assert "call +1 555" not in browser.page_source


def replay_form(stack: Stack, message_id: str) -> dict[str, str]:
    """The Replay form of a message, as its page shows it."""
    page = requests.get(f"{stack.url}/ops/messages/acme/{message_id}", headers=OPS, timeout=10)
    assert page.status_code == 200, page.text
    form = Page(page.text).form_for("message", message_id)
    return {k: v for k, v in form.items() if k != "action"}


def submit(stack: Stack, form: dict[str, str], origin: str) -> requests.Response:
    return requests.post(
        f"{stack.url}/ops/replay",
        data=form,
        headers={**OPS, "Origin": origin},
        allow_redirects=False,
        timeout=10,
    )


def test_a_replay_from_another_scheme_or_port_is_refused(
    acme_ops: Stack, provider: ProviderServer
) -> None:
    message_id = send(acme_ops, provider, a_store(), *[UNAVAILABLE] * 3)
    acme_ops.wait_status("acme", message_id, "dead")
    form = replay_form(acme_ops, message_id)
    port = urlsplit(acme_ops.url).port

    for origin in (f"https://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"):
        refused = submit(acme_ops, form, origin)
        assert refused.status_code == 403, (origin, refused.text[-500:])
        assert "another site" in refused.text
    assert acme_ops.record("acme", message_id)["replays"] == 0

    taken = submit(acme_ops, form, acme_ops.url)
    assert taken.status_code == 303, taken.text[-500:]
    acme_ops.wait_status("acme", message_id, "succeeded")


def test_a_replay_form_works_once(acme_ops: Stack, provider: ProviderServer) -> None:
    message_id = send(acme_ops, provider, a_store(), *[UNAVAILABLE] * 6)
    acme_ops.wait_status("acme", message_id, "dead")
    form = replay_form(acme_ops, message_id)

    first = submit(acme_ops, form, acme_ops.url)
    assert first.status_code == 303, first.text[-500:]
    wait_until(lambda: acme_ops.record("acme", message_id)["replays"] == 1)
    acme_ops.wait_status("acme", message_id, "dead")  # dead again: replayable again

    again = submit(acme_ops, form, acme_ops.url)

    assert again.status_code == 403, again.text[-500:]
    assert "already used" in again.text
    record = acme_ops.record("acme", message_id)
    assert (record["status"], record["replays"]) == ("dead", 1)
    fresh = submit(acme_ops, replay_form(acme_ops, message_id), acme_ops.url)
    assert fresh.status_code == 303
    acme_ops.wait_status("acme", message_id, "succeeded")
