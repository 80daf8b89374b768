"""Debian's chromium, driven by Playwright, for the end-to-end tests of the browser pages.

Playwright's own browser download cannot work here (and is not wanted): the tests drive the
chromium that scripts/setup.sh installs from Debian. A missing chromium fails the test with
what to install; it is never a skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"

# As root in a container there is no user namespace for chromium's sandbox. The rest keeps
# chromium from reaching out to Google's services, which a closed network refuses noisily.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # The tests play recordings without a click first; no sound card is needed for that.
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not installed: run scripts/setup.sh (apt-get install chromium)")


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"
