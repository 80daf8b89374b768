"""The store's filesystem full while calls come in: a real 16 MiB tmpfs, filled with a ballast file.

Every call gets exactly one ticket once the disk has room again, none is dropped, /api/health
says the store is down while writes fail and up again after. Mounting needs root: CI runs the
suite as root, and a run that is not root fails here rather than skipping.
"""

import asyncio
import errno
import os
import subprocess
import time
from pathlib import Path

import pytest
import structlog

from cti_bridge.store import StoreUnavailable
from tests.support.store_faults import call_path, linkedids


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs of its own for the store (unmounted after the test)."""
    if os.geteuid() != 0:
        pytest.fail("mounting the store's small tmpfs needs root (CI runs the suite as root)")
    folder = tmp_path / "disk"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Write a ballast file until the filesystem has no byte left; its path."""
    ballast = folder / "ballast"
    with open(ballast, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            block = b"\0" * size
            try:
                while True:
                    f.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return ballast


async def test_calls_while_the_disk_is_full_all_get_their_ticket_once_it_has_room(small_disk):
    async with call_path(small_disk) as path:
        path.submit_calls(range(10))
        await path.pipeline.drain()
        assert (await path.health())["store"] is True

        ballast = await asyncio.to_thread(fill, small_disk)
        with structlog.testing.capture_logs() as logs:
            # 600 calls in 2 s while nothing can be written.
            for start in range(10, 610, 60):
                path.submit_calls(range(start, start + 60))
                await asyncio.sleep(0.2)
                path.health_seen.append((await path.health())["store"])
            while_full = await path.tickets_per_call()
            assert len(while_full) < 610, "the full disk took every write: the test proves nothing"
            assert path.health_seen[-3:] == [False] * 3  # red while writes fail
            assert path.pipeline.backlog > 0

            await asyncio.to_thread(ballast.unlink)
            await asyncio.wait_for(path.pipeline.drain(), 60)

        assert await path.tickets_per_call() == dict.fromkeys(linkedids(range(610)), 1)
        assert len(await path.store.list_tickets(limit=1000)) == 610
        health = await path.health()
        assert (health["store"], health["status"]) == (True, "ok")
        assert (path.pipeline.failed, path.pipeline.dropped) == (0, 0)
        failing = [e for e in logs if e["event"] == "store.writes_failing"]
        assert failing and failing[0]["log_level"] == "error" and "SQLITE_FULL" in failing[0]["error"]
        assert [e["event"] for e in logs if e["event"] == "store.writes_recovered"]


async def test_an_idle_store_turns_green_by_itself_once_the_disk_is_freed(small_disk):
    async with call_path(small_disk) as path:
        database = path.store.database
        ballast = await asyncio.to_thread(fill, small_disk)
        # A write from outside the call path (an agent's, say) is refused; nothing else writes.
        with pytest.raises(StoreUnavailable, match="SQLITE_FULL"):
            for i in range(100_000):
                await database.execute(
                    "INSERT INTO store_probe (id, written_at) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
                    (i,),
                )
        assert (await path.health())["store"] is False  # the health check's own write fails too
        assert (await path.health())["status"] == "degraded"
        await asyncio.to_thread(ballast.unlink)
        assert (await path.health())["store"] is True  # ... and succeeds now: no traffic needed
        assert database.write_health.ok


async def test_a_full_backlog_drops_updates_loudly_and_keeps_what_it_holds(small_disk):
    async with call_path(small_disk, backlog_limit=40) as path:
        ballast = await asyncio.to_thread(fill, small_disk)
        with structlog.testing.capture_logs() as logs:
            path.submit_calls(range(5))
            await asyncio.sleep(0.3)  # the store refuses them
            path.submit_calls(range(5, 30))  # 4 updates a call: 120 for a backlog of 40
            await asyncio.sleep(0.3)
            assert path.pipeline.backlog == 40
            await asyncio.to_thread(ballast.unlink)
            await asyncio.wait_for(path.pipeline.drain(), 30)
        assert path.pipeline.dropped == 80 and path.pipeline.failed == 0
        [first, *_] = [e for e in logs if e["event"] == "pipeline.backlog_full"]
        assert (
            first["log_level"] == "error" and first["limit"] == 40 and "SQLITE_FULL" in first["store_error"]
        )
        # The calls whose updates got in have their ticket, one each.
        per_call = await path.tickets_per_call()
        assert per_call and set(per_call.values()) == {1}


async def test_a_stop_while_the_disk_is_full_gives_up_on_the_backlog_loudly(small_disk):
    async with call_path(small_disk) as path:
        ballast = await asyncio.to_thread(fill, small_disk)
        path.submit_calls(range(20))
        with structlog.testing.capture_logs() as logs:
            started = time.monotonic()
            left = await path.pipeline.drain_for_stop(grace=0.5)
        assert left > 0 and time.monotonic() - started < 5
        [given_up] = [e for e in logs if e["event"] == "pipeline.stopped_with_backlog"]
        assert given_up["log_level"] == "error" and given_up["backlog"] == left
        await asyncio.to_thread(ballast.unlink)
        # With room again the next retry (backoff at most 2 s) gets through within the grace.
        assert await path.pipeline.drain_for_stop(grace=3) == 0
