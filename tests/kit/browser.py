"""Debian's Chromium for Playwright (its own browser download does not work here)."""

import contextlib
import os
import subprocess

import pytest

from tests.kit.demo_server import ROOT

CHROMIUM = "/usr/bin/chromium"
SETUP_SCRIPT = os.path.join(ROOT, "tests", "browser_setup.sh")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium_or_skip() -> str:
    """Chromium's path; installs it with tests/browser_setup.sh if missing."""
    if not os.access(CHROMIUM, os.X_OK):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["bash", SETUP_SCRIPT], timeout=600, check=False, capture_output=True)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing and tests/browser_setup.sh could not install it")
    return CHROMIUM


# Text of an element and everything below it, shadow DOMs included.
DEEP_TEXT_JS = """el => {
  const parts = [];
  const walk = n => {
    if (n.nodeType === Node.TEXT_NODE) parts.push(n.textContent);
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.childNodes) if (!['STYLE', 'SCRIPT'].includes(c.nodeName)) walk(c);
  };
  walk(el);
  return parts.join(' ').replace(/\\s+/g, ' ');
}"""


@contextlib.contextmanager
def lit_page(port: int, query: str, timeout_ms: int, viewport=(1600, 1400)):
    """LIT's UI at `http://127.0.0.1:<port>/?<query>` in headless Chromium; yields
    (page, errors). Every request not to that server is aborted (no network), and
    the page's uncaught errors are collected in `errors`."""
    from playwright.sync_api import sync_playwright  # pylint: disable=g-import-not-at-top

    chromium = chromium_or_skip()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True, timeout=timeout_ms
        )
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.set_default_timeout(timeout_ms)
            local = f"http://127.0.0.1:{port}/"
            page.route(
                "**/*", lambda r: r.continue_() if r.request.url.startswith(local) else r.abort()
            )
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.goto(f"{local}?{query}", wait_until="domcontentloaded")
            yield page, errors
        finally:
            browser.close()
