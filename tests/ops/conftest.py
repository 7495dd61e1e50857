"""Fixtures for the /ops browser tests: a real stack (redis-server, gunicorn, a Celery worker)
pointed at the Dotcom simulator and a hub, with an operations password, and a headless Chromium
driven by Selenium."""

from __future__ import annotations

import base64
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.dotcom.conftest import DotcomSimulator, dotcom_env, sim, simulator_process, store
from tests.pipeline.conftest import hub, redis_server
from tests.support.servers import HubServer
from tests.support.stack import RedisServer, Stack, serving

# Session fixtures imported here start their own instances for this directory.
__all__ = ["hub", "redis_server", "sim", "simulator_process", "store"]

OPS_PASSWORD = "ops-browser-password"
# Where browser tests save their screenshots for review: $SHIPHUB_SCREENSHOTS, else this folder
# (ignored by git; kept after the run).
SCREENSHOTS = Path(
    os.environ.get("SHIPHUB_SCREENSHOTS")
    or Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
)
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The machine has no internet: without the background-networking flags Chromium stalls.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def ops_stack(
    redis_server: RedisServer, simulator_process: DotcomSimulator, hub: HubServer
) -> Iterator[Stack]:
    """Receiver and one worker for the Dotcom simulator, with OPS_PASSWORD; a push fails for
    good after two tries, so a dead delivery comes within seconds."""
    env = {
        **dotcom_env(simulator_process, hub),
        "OPS_PASSWORD": OPS_PASSWORD,
        "HUB_PUSH_MAX_ATTEMPTS": "2",
        "HUB_PUSH_RETRY_MAX_SECONDS": "1",
    }
    with serving(redis_server, env) as running:
        yield running


def basic_auth(password: str, user: str = "ops") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def chromium(profile: str) -> WebDriver:
    """Debian's headless Chromium through its chromedriver. A missing one fails the test: bin/test
    installs both (SHIPHUB_BROWSER_TESTS=1 in bin/setup)."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run bin/test, which installs chromium"
    assert CHROMEDRIVER.exists(), f"{CHROMEDRIVER} is missing: run bin/test (chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """A browser that sends the operations password with every request (CDP), as a browser
    does once its user has typed it into the basic auth prompt."""
    with tempfile.TemporaryDirectory(prefix="shiphub-chromium-") as profile:
        driver = chromium(profile)
        try:
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd(
                "Network.setExtraHTTPHeaders",
                {"headers": {"Authorization": basic_auth(OPS_PASSWORD)}},
            )
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def bare_browser() -> Iterator[WebDriver]:
    """A browser that sends no credentials."""
    with tempfile.TemporaryDirectory(prefix="shiphub-chromium-") as profile:
        driver = chromium(profile)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, browser: WebDriver) -> Callable[[str], Path]:
    """Save what the browser shows now as ``<test>-<view>.png`` in ``SCREENSHOTS`` (the whole
    page's width, 1280 pixels); the file's path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 1000)
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)

    def save(view: str) -> Path:
        path = SCREENSHOTS / f"{test}-{view}.png"
        assert browser.save_screenshot(str(path)), f"no screenshot saved at {path}"
        return path

    return save
