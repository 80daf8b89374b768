"""Another process holds the store's write lock for longer than the busy timeout.

The call path waits and retries: every call gets its one ticket once the lock is gone, and
/api/health says the store is down while writes fail. An agent's write gets a clear 503.
The lock is a real one: a Python sqlite3 subprocess inside BEGIN IMMEDIATE.
"""

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cti_bridge.store.database import _BUSY_TIMEOUT_MS
from tests.support.store_faults import call_path, linkedids
from tests.unit.web.conftest import EndpointHits, open_site

_LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute("UPDATE schema_migrations SET name = name WHERE version = 1")
print("locked", flush=True)
sys.stdin.readline()  # until the test says so
connection.execute("ROLLBACK")
"""


class Locker:
    """A sqlite3 subprocess holding the write lock of `path` until release()."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LOCKER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("done\n")
            self.process.stdin.close()
            self.process.wait(10)


@pytest.fixture
def locker():
    started: list[Locker] = []

    def lock(path: Path) -> Locker:
        started.append(Locker(path))
        return started[-1]

    yield lock
    for each in started:
        each.release()


async def test_calls_while_another_process_holds_the_lock_all_get_their_ticket(tmp_path, locker):
    hold = _BUSY_TIMEOUT_MS / 1000 + 2.5  # past the busy timeout, so SQLite gives up at least once
    async with call_path(tmp_path) as path:
        path.submit_calls(range(5))
        await path.pipeline.drain()
        lock = await asyncio.to_thread(locker, tmp_path / "store.db")
        locked_at = time.monotonic()
        path.submit_calls(range(5, 105))
        await path.watch_health(until=lambda: time.monotonic() - locked_at > hold)
        assert False in path.health_seen, "health never said the store was down"
        assert len(await path.tickets_per_call()) < 105
        await asyncio.to_thread(lock.release)
        await asyncio.wait_for(path.pipeline.drain(), 60)

        assert await path.tickets_per_call() == dict.fromkeys(linkedids(range(105)), 1)
        assert (await path.health())["store"] is True
        assert (path.pipeline.failed, path.pipeline.dropped) == (0, 0)
        assert "SQLITE_BUSY" in path.store.database.write_health.last_error


async def test_an_agents_write_under_the_lock_gets_503_and_writes_nothing(tmp_path, locker):
    site = await open_site(tmp_path, EndpointHits(), "x")
    try:
        number = site.ticket("a1")
        a1 = site.as_user("a1")
        # The lock outlasts a short busy timeout here: the point is the answer, not the wait.
        await site.store.database.execute("PRAGMA busy_timeout = 200")
        lock = await asyncio.to_thread(locker, Path(str(site.ctx.config.store.url).removeprefix("sqlite://")))
        refused = await a1.post(f"/api/tickets/{number}/comments", json={"text": "locked out"})
        assert refused.status_code == 503, refused.text
        assert refused.json()["detail"] == "store unavailable, retry"
        assert "SQLITE_BUSY" in refused.json()["reason"] and refused.headers["retry-after"] == "5"
        assert (await site.client().get("/api/health")).json()["store"] is False
        await asyncio.to_thread(lock.release)

        assert (await site.client().get("/api/health")).json()["store"] is True
        again = await a1.post(f"/api/tickets/{number}/comments", json={"text": "in again"})
        assert again.status_code in (200, 201), again.text
        history = (await a1.get(f"/api/tickets/{number}")).text
        assert "in again" in history and "locked out" not in history  # the refused one left no trace
    finally:
        await site.close()
