"""The /ops page in a real browser (headless Chromium) over the real stack: a message driven dead
by the Dotcom simulator is listed with its last error and replayed with its button once the fault
is cleared; a delivery that died while the hub was down is pushed again with its button; without
credentials the page answers 401."""

from __future__ import annotations

import requests
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.dotcom.conftest import DotcomSimulator, post, shipment_message
from tests.ops.conftest import OPS_PASSWORD, basic_auth
from tests.support.servers import HubServer
from tests.support.stack import Stack, wait_until

SCRIPT_ID = "<script>alert(1)</script>"


def row_of(browser: WebDriver, kind: str, message_id: str) -> WebElement | None:
    """The table row of this kind (``dead-message``, ``recent-message`` ...) whose message id
    cell reads ``message_id``, on the page as it is loaded now."""
    for row in browser.find_elements(By.CSS_SELECTOR, f"tr.{kind}"):
        if row.find_elements(By.TAG_NAME, "td")[1].text == message_id:
            return row
    return None


def cells(row: WebElement) -> list[str]:
    return [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]


def shown_after_reload(
    browser: WebDriver, url: str, kind: str, message_id: str, timeout: float = 60
) -> list[str]:
    """Reload the page until a row of ``kind`` for the message is there; its cells."""

    def look() -> list[str] | None:
        browser.get(url)
        found = row_of(browser, kind, message_id)
        return cells(found) if found is not None else None

    return wait_until(look, timeout=timeout, every=1)


def test_a_dead_message_is_listed_with_its_error_and_replayed_with_its_button(
    ops_stack: Stack, sim: DotcomSimulator, browser: WebDriver, store: str
) -> None:
    sim.fault("http_500", "order", count=100)  # every attempt fails until the fault is cleared
    body = shipment_message()
    message_id = body["message_id"]
    assert post(ops_stack, "send_shipment", body, store, wait=0).status_code == 200
    ops_stack.wait_status("dotcom", message_id, "dead", timeout=60)
    page = f"{ops_stack.url}/ops"

    browser.get(page)

    dead = row_of(browser, "dead-message", message_id)
    assert dead is not None, browser.page_source[-3000:]
    integration, _, message, _, attempts, last_error, _ = cells(dead)
    assert (integration, message, attempts) == ("dotcom", "shipment:ready", "3")
    assert "HTTP 500" in last_error
    recent = row_of(browser, "recent-message", message_id)
    assert recent is not None and cells(recent)[3] == "dead"

    sim.reset()  # the fault is cleared
    dead.find_element(By.CSS_SELECTOR, "button").click()

    notice = wait_until(lambda: browser.find_element(By.ID, "notice").text, timeout=30)
    assert notice == f"Message {message_id} of dotcom: replayed, queued for a worker."
    assert browser.current_url.startswith(page)  # redirected back (POST/redirect/GET)
    assert row_of(browser, "dead-message", message_id) is None
    wait_until(
        lambda: shown_after_reload(browser, page, "recent-message", message_id)[3] == "succeeded",
        timeout=60,
        every=1,
    )
    assert sim.orders()["orders"][0]["order_number"] == body["payload"]["shipment"]["number"]


def test_a_dead_delivery_is_pushed_again_with_its_button(
    ops_stack: Stack, sim: DotcomSimulator, hub: HubServer, browser: WebDriver, store: str
) -> None:
    body = shipment_message()
    message_id = body["message_id"]
    page = f"{ops_stack.url}/ops"
    with hub.lock:
        hub.down = True
    try:
        assert post(ops_stack, "send_shipment", body, store).status_code == 200
        wait_until(
            lambda: ops_stack.record("dotcom", message_id)["delivery"]["status"] == "dead",
            timeout=60,
        )
        listed = shown_after_reload(browser, page, "dead-delivery", message_id)
    finally:
        with hub.lock:
            hub.down = False
    assert listed[0] == "dotcom" and listed[4] == "2"
    assert listed[5].startswith("hub answered HTTP 503")
    assert hub.received(message_id) == []

    dead = row_of(browser, "dead-delivery", message_id)
    assert dead is not None
    dead.find_element(By.CSS_SELECTOR, "button").click()

    notice = wait_until(lambda: browser.find_element(By.ID, "notice").text, timeout=30)
    assert notice.endswith("delivery replayed, its answer is pushed to the hub shortly.")
    answer = hub.wait_for(message_id, timeout=60)
    assert answer["notifications"][0]["description"].startswith("Successfully Sent Shipment")

    def delivered() -> bool:
        browser.get(f"{ops_stack.url}/ops/messages/dotcom/{message_id}")
        return browser.find_element(By.ID, "delivery-status").text == "delivered"

    wait_until(delivered, timeout=60, every=1)
    assert browser.find_element(By.ID, "status").text == "succeeded"
    browser.get(page)
    assert row_of(browser, "dead-delivery", message_id) is None


def test_a_hostile_message_id_is_shown_as_text(
    ops_stack: Stack, browser: WebDriver, store: str
) -> None:
    body = {**shipment_message(), "message_id": SCRIPT_ID}
    assert post(ops_stack, "send_shipment", body, store).status_code == 200

    recent = shown_after_reload(browser, f"{ops_stack.url}/ops", "recent-message", SCRIPT_ID)

    assert recent[1] == SCRIPT_ID
    try:
        alert = browser.switch_to.alert.text
    except NoAlertPresentException:
        alert = None
    assert alert is None
    browser.find_element(By.LINK_TEXT, SCRIPT_ID).click()
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Message {SCRIPT_ID} of dotcom"


def test_without_credentials_the_page_answers_401(
    ops_stack: Stack, bare_browser: WebDriver
) -> None:
    url = f"{ops_stack.url}/ops"

    refused = requests.get(url, timeout=10)
    wrong = requests.get(url, headers={"Authorization": basic_auth("wrong")}, timeout=10)
    endpoint_key = requests.get(
        url, headers={"Authorization": basic_auth(Stack.ENDPOINT_KEY)}, timeout=10
    )
    allowed = requests.get(url, headers={"Authorization": basic_auth(OPS_PASSWORD)}, timeout=10)
    bare_browser.get(url)

    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    assert wrong.status_code == 401
    assert endpoint_key.status_code == 401  # OPS_PASSWORD is set: it alone opens the page
    assert allowed.status_code == 200 and "Dead messages" in allowed.text
    assert "Dead messages" not in bare_browser.page_source
