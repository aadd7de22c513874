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
