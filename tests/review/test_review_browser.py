"""The review app in a real browser: headless Chromium (Debian's ``chromium``) driven by Selenium through
Debian's ``chromedriver``. `bleepline review` runs as a subprocess on 127.0.0.1; the test signs in, opens a
call, presses play, seeks by clicking a transcript line and the timeline, checks the highlighted line,
signs out, and checks the call page then sends it back to the sign-in page.

Selenium must never fetch a driver or a browser: the driver's path is given, ``SE_OFFLINE`` is set, and
Selenium Manager (its downloader) is replaced by a function that fails the test if it is called.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Selenium is a dev dependency (the quick start installs it): imported plainly, so a broken install fails
# the run instead of skipping the one test that drives a real browser.
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager

from bleepline.review.audit import AuditLog
from bleepline.review.config import ReviewConfig
from tests.review.conftest import password_of

CALL = "c-0001"  # 12 s; transcript lines start at 0.0, 2.6, 4.2, 6.0 and 9.5 s
SEEK_TOLERANCE_S = 0.3
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # running as root
    "--autoplay-policy=no-user-gesture-required",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


def browser_binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        # CI installs both (.ci/run); there a missing one is a failure, not a skip.
        if os.environ.get("CI"):
            raise RuntimeError("chromium and chromedriver must be installed: .ci/run installs them")
        pytest.skip("needs the Debian packages chromium and chromium-driver")
    return chromium, driver


@pytest.fixture
def review_server(review_config_file: Path) -> Iterator[str]:
    """`bleepline review` on 127.0.0.1, any free port; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bleepline", "review", "--config", str(review_config_file), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield _read_address(process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_address(process: subprocess.Popen[str], timeout: float = 60.0) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise RuntimeError("bleepline review did not say where it listens in time")
    line = process.stdout.readline().strip()
    prefix = "review app on "
    if not line.startswith(prefix):
        _, errors = process.communicate(timeout=10)
        raise RuntimeError(f"bleepline review did not start: {line!r} {errors[-500:]!r}")
    return line[len(prefix) :].rstrip("/")


def start_chromium(profile: Path, monkeypatch: pytest.MonkeyPatch) -> WebDriver:
    chromium, driver = browser_binaries()
    monkeypatch.setenv("SE_OFFLINE", "true")

    def no_downloads(*args: object, **kwargs: object) -> dict[str, str]:
        raise AssertionError("Selenium Manager was called: it would try to download a driver")

    monkeypatch.setattr(SeleniumManager, "binary_paths", no_downloads)
    options = Options()
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to see CSP refusals and JS errors
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    browser: WebDriver = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.set_page_load_timeout(30)
    return browser


@pytest.fixture
def chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    browser = start_chromium(tmp_path / "profile", monkeypatch)
    try:
        yield browser
    finally:
        browser.quit()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def audio_time(browser: WebDriver) -> float:
    return float(browser.execute_script("return document.getElementById('audio').currentTime"))


def sign_in(browser: WebDriver, base: str, name: str) -> None:
    browser.get(f"{base}/calls")
    wait_for(lambda: browser.current_url.endswith("/login"), "the sign-in page")
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(password_of(name))
    browser.find_element(By.ID, "signin").click()
    wait_for(lambda: browser.current_url.endswith("/calls"), "the call list")


def test_sign_in_play_seek_and_sign_out_in_chromium(
    review_server: str, chromium: WebDriver, review_store: ReviewConfig, tmp_path: Path
) -> None:
    base, browser = review_server, chromium
    sign_in(browser, base, "alice")
    assert "c-0004" in browser.page_source
    browser.save_screenshot(str(tmp_path / "list.png"))

    browser.find_element(By.CSS_SELECTOR, f'a[href="/calls/{CALL}"]').click()
    wait_for(lambda: browser.current_url.endswith(f"/calls/{CALL}"), "the call page")
    lines = browser.find_elements(By.CSS_SELECTOR, "#transcript .line")
    assert [line.get_attribute("data-start") for line in lines] == [
        "0.000",
        "2.600",
        "4.200",
        "6.000",
        "9.500",
    ]

    # Play with the page's own button; the position must start to move.
    browser.find_element(By.ID, "play").click()
    wait_for(lambda: audio_time(browser) > 0, "playback to start")
    assert browser.find_element(By.ID, "play").text == "Pause"
    assert not browser.execute_script("return document.getElementById('audio').error")

    # Click the fourth line: the player jumps to its start, and that line is highlighted.
    lines[3].click()
    assert abs(audio_time(browser) - 6.0) <= SEEK_TOLERANCE_S
    wait_for(lambda: "current" in (lines[3].get_attribute("class") or ""), "the line to be highlighted")
    assert lines[3].get_attribute("aria-current") == "true"
    highlighted = browser.find_elements(By.CSS_SELECTOR, "#transcript .line.current")
    assert len(highlighted) == 1
    wait_for(lambda: audio_time(browser) > 6.0 + 0.05, "playback to go on from the new position")

    # Pause, then seek by clicking the timeline three quarters along: 9 s of the 12.
    browser.find_element(By.ID, "play").click()
    wait_for(lambda: browser.execute_script("return document.getElementById('audio').paused"), "a pause")
    timeline = browser.find_element(By.ID, "timeline")
    width = timeline.size["width"]
    ActionChains(browser).move_to_element_with_offset(timeline, int(width * 0.25), 0).click().perform()
    assert abs(audio_time(browser) - 9.0) <= SEEK_TOLERANCE_S
    wait_for(lambda: "current" in (lines[3].get_attribute("class") or ""), "the line at 9 s (6.0-9.0)")
    browser.save_screenshot(str(tmp_path / "call.png"))
    assert (tmp_path / "call.png").stat().st_size > 10_000
    # Nothing refused by the Content-Security-Policy, no script error, no failed request.
    logged: list[dict[str, Any]] = browser.get_log("browser")  # type: ignore[no-untyped-call]  # selenium's
    problems = [entry["message"] for entry in logged if entry["level"] == "SEVERE"]
    assert problems == []

    # Sign out: the call page now sends the browser back to sign in.
    browser.find_element(By.ID, "logout").click()
    wait_for(lambda: browser.current_url.endswith("/login"), "the sign-in page after signing out")
    browser.get(f"{base}/calls/{CALL}")
    wait_for(lambda: browser.current_url.endswith("/login"), "the redirect to sign in")
    assert browser.find_elements(By.ID, "signin")

    events = [(r.event, r.user, r.call_id) for r in AuditLog(review_store.state).records()]
    assert events == [
        ("login_ok", "alice", None),
        ("view", "alice", CALL),
        ("play", "alice", CALL),
        ("decrypt", "alice", CALL),
        ("logout", "alice", None),
    ]
