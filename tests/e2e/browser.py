"""Debian's Chromium under Playwright, for every browser test (tests/e2e, tests/sandbox).

Never a downloaded browser: ``executable_path``. Fails loudly (never skips) when it cannot start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


class _Chromium:
    """One Playwright and one Chromium per test process: tests/e2e and tests/sandbox each import
    the fixture, and a second sync Playwright in the same process refuses to start."""

    playwright = None
    browser = None
    users = 0


@pytest.fixture(scope="session")
def browser():
    if _Chromium.users == 0:
        from playwright.sync_api import sync_playwright

        if not os.path.exists(CHROMIUM):
            pytest.fail(f"{CHROMIUM} not found: run scripts/test-setup.d/chromium.sh (apt-get install chromium)")
        playwright = sync_playwright().start()
        try:
            _Chromium.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        except Exception as exc:
            playwright.stop()
            pytest.fail(f"Chromium did not start: {exc}")
        _Chromium.playwright = playwright
    _Chromium.users += 1
    try:
        yield _Chromium.browser
    finally:
        _Chromium.users -= 1
        if _Chromium.users == 0:
            _Chromium.browser.close()
            _Chromium.playwright.stop()


@contextmanager
def browser_page(browser, locale: str) -> Iterator[Page]:
    """A page in a fresh browser context with the given language (navigator.language, Accept-Language)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale=locale)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def page(browser):
    with browser_page(browser, "en-GB") as page:
        yield page


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
