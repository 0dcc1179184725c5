"""Screenshots of the review app for docs/review.md, taken in headless Chromium.

Builds a store the way a deployment would: a reviewer key pair (`bleepline keygen`), the project's own
fixture calls redacted with `bleepline redact` (real speech, real redactions and transcripts), a few users
and tags; then runs `bleepline review` on 127.0.0.1 and drives Debian's chromium through chromedriver.

    .venv/bin/python tools/review_screenshots.py [--out docs]

Writes review-list.png, review-call.png, review-analytics.png, review-audit.png and review-retention.png.
Needs the Debian packages chromium and chromium-driver, and selenium (the dev extra). Nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import os
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from bleepline.review.catalog import TagStore
from bleepline.review.users import UserStore

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "audio"
CALLS = (
    "card_kal_8k",
    "phone_awb_8k",
    "keypad_dtmf_8k",
    "ssn_dob_rms_16k",
    "name_email_slt_16k",
    "address_kal_8k",
    "no_pii_awb_8k",
)
SHOWN_CALL = "card_kal_8k"
PASSWORD = "correct horse battery"


def bleepline(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "bleepline", *args], check=True, stdout=subprocess.DEVNULL)


def build_store(work: Path) -> Path:
    """Keys, a redacted store, users and tags; returns the review.toml."""
    bleepline("keygen", "--out", str(work / "keys"))
    inputs = [str(FIXTURES / f"{name}.wav") for name in CALLS]
    bleepline(
        "redact", *inputs, "--recipient", str(work / "keys" / "recipient.pub"), "--out", str(work / "store")
    )
    users = UserStore(work / "state" / "users.db")
    users.add("alice", PASSWORD, "reviewer")
    users.add("sam", PASSWORD, "supervisor")
    users.add("otto", PASSWORD, "reviewer", {"outsourced"})
    users.add("audrey", PASSWORD, "auditor")
    users.add("adam", PASSWORD, "admin")
    tags = TagStore.in_state(work / "state")
    tags.set("phone_awb_8k", {"outsourced"})
    tags.set("address_kal_8k", {"outsourced", "emea"})
    tags.set("card_kal_8k", {"payments"})
    config = work / "review.toml"
    identity = work / "keys" / "identity.key"
    config.write_text(
        f'store = "{work / "store"}"\nstate = "{work / "state"}"\nidentity = "{identity}"\n'
        "[retention]\ndays = 90\nby_tag = { outsourced = 30 }\n"
    )
    return config


def serve(config: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bleepline", "review", "--config", str(config), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(60):
            process.kill()
            raise SystemExit("bleepline review did not start in time")
    line = process.stdout.readline().strip()
    return process, line.removeprefix("review app on ").rstrip("/")


def chromium(profile: Path, height: int) -> WebDriver:
    os.environ["SE_OFFLINE"] = "true"  # Selenium must not look for, let alone fetch, a driver
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--autoplay-policy=no-user-gesture-required",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--window-size=1280,{height}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def sign_in(browser: WebDriver, base: str, name: str, landing: str) -> None:
    browser.get(f"{base}/login")
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "signin").click()
    wait_for(lambda: browser.current_url.endswith(landing), f"{name}'s first page")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the PNGs go (default docs/)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="review-shots-") as temp:
        work = Path(temp)
        process, base = serve(build_store(work))
        browser = chromium(work / "profile", 1000)
        try:
            sign_in(browser, base, "alice", "/calls")
            browser.save_screenshot(str(args.out / "review-list.png"))

            browser.get(f"{base}/calls/{SHOWN_CALL}")
            browser.find_element(By.ID, "play").click()
            wait_for(
                lambda: browser.execute_script("return document.getElementById('audio').currentTime > 0.5"),
                "playback",
            )
            browser.find_element(By.ID, "play").click()  # pause, then show a seek to the last line
            browser.find_elements(By.CSS_SELECTOR, "#transcript .line")[-1].click()
            time.sleep(0.5)
            browser.save_screenshot(str(args.out / "review-call.png"))

            browser.find_element(By.ID, "logout").click()
            wait_for(lambda: browser.current_url.endswith("/login"), "signing out")
            sign_in(browser, base, "sam", "/calls")
            browser.get(f"{base}/analytics")
            browser.save_screenshot(str(args.out / "review-analytics.png"))

            for name, landing, page, shot in (
                ("audrey", "/audit", "/audit", "review-audit.png"),
                ("adam", "/calls", "/admin/retention", "review-retention.png"),
            ):
                browser.find_element(By.ID, "logout").click()
                wait_for(lambda: browser.current_url.endswith("/login"), "signing out")
                sign_in(browser, base, name, landing)
                browser.get(f"{base}{page}")
                browser.save_screenshot(str(args.out / shot))
        finally:
            browser.quit()
            process.terminate()
            process.wait(timeout=10)
    print(f"wrote review-list, -call, -analytics, -audit and -retention .png in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
