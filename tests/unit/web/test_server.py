"""The embedded uvicorn server: where it listens, and that kept-alive connections answer at once."""

import asyncio
import statistics
import time

import pytest

from cti_bridge.config.model import WebConfig
from cti_bridge.web.server import WebServer


async def test_a_kept_alive_connection_gets_each_answer_without_a_delayed_ack_wait(site):
    server = WebServer(site.app, WebConfig(port=0))
    serving = asyncio.create_task(server.run(), name="web-under-test")
    try:
        client = site.client(url=server.url)
        assert (await client.get("/api/health")).status_code == 200
        took = []
        for _ in range(10):  # one connection, kept alive
            started = time.perf_counter()
            assert (await client.get("/api/health")).status_code == 200
            took.append(time.perf_counter() - started)
        # Without TCP_NODELAY each answer after the first waits ~40 ms on the client's ACK.
        assert statistics.median(took) < 0.02, took
    finally:
        server.stop()
        await serving


async def test_a_port_in_use_is_named_in_the_error(site):
    first = WebServer(site.app, WebConfig(port=0))
    assert first.url == f"http://127.0.0.1:{first.port}" and first.port > 0
    with pytest.raises(OSError, match=rf"^web: cannot listen on 127.0.0.1:{first.port}: "):
        WebServer(site.app, WebConfig(port=first.port))
    serving = asyncio.create_task(first.run(), name="web-under-test")
    await asyncio.sleep(0)
    first.stop()
    await asyncio.wait_for(serving, 5)
