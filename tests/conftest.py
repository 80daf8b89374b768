"""Test-wide set-up: asyncio debug mode (slow callbacks and unawaited coroutines are reported)."""

import os

os.environ.setdefault("PYTHONASYNCIODEBUG", "1")

pytest_plugins = ["tests.support.fixtures"]
