"""The machine's Chromium (Debian package ``chromium``) driven by Playwright, for UI tests.

Playwright's own browser download (``playwright install``) is not used: ``make test`` installs
the Debian package and this module launches ``/usr/bin/chromium``. If it is missing the tests
fail with the install hint; they are never skipped.

>>> with chromium() as browser:                                  # doctest: +SKIP
...     page = browser.new_page()
...     page.goto("http://127.0.0.1:3000")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = Path("/usr/bin/chromium")

# Without the background-networking flags Chromium keeps trying to reach Google services,
# which floods a machine that has no route to them.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed on exit."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make test` (it installs the Debian package 'chromium').")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def dismiss_community_dialog(page: Page) -> None:
    """A fresh Dagster UI greets with "Join the Dagster community" once; press its Skip button."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=5000)
    except PlaywrightTimeout:  # already dismissed in this browser profile
        return
    skip.click()
