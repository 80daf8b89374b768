"""Request bodies past their limit, on the real uvicorn server: refused before they fill the disk.

The form parser spools an upload to the temporary folder as it reads it (unnamed files on
Linux); what it wrote is measured by a thread that looks at every file open under that
folder while the upload runs. Past the limit the application reads no more; uvicorn receives
and drops the rest for at most its keep-alive timeout, so the client still gets its 413
(closing at once would reset the connection under the unread bytes, and lose the answer).
"""

import asyncio
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest

from cti_bridge.config.model import WebConfig
from cti_bridge.web.app import MAX_JSON_BODY
from cti_bridge.web.server import WebServer
from cti_bridge.web.tickets import MAX_UPLOAD

MIB = 1 << 20
_CHUNK = MIB
_PAST_THE_LIMIT = 200 * MIB  # what the client offers beyond the limit


@pytest.fixture
async def served(site):
    server = WebServer(site.app, WebConfig(port=0))
    serving = asyncio.create_task(server.run(), name="web-under-limits")
    try:
        yield server
    finally:
        server.stop()
        await serving


class _DiskUse:
    """The largest total size of the files open or present under `folder`, sampled every few ms."""

    def __init__(self, folder: Path) -> None:
        self._folder = str(folder)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="disk-use-sampler", daemon=True)

    def __enter__(self) -> "_DiskUse":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._now())

    def _now(self) -> int:
        sizes: dict[tuple[int, int], int] = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}").startswith(self._folder):
                    st = os.stat(f"/proc/self/fd/{fd}")
                    sizes[st.st_dev, st.st_ino] = st.st_size
            except OSError:  # closed between the listing and the look
                continue
        for root, _, files in os.walk(self._folder):
            for name in files:
                try:
                    st = os.stat(os.path.join(root, name))
                except OSError:
                    continue
                sizes[st.st_dev, st.st_ino] = st.st_size
        return sum(sizes.values())


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The process's temporary folder, for the form parser's spool files and the upload's copy."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


async def test_an_upload_declared_too_large_is_refused_before_its_body_is_read(site, served):
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(
            f"POST /api/tickets/{site.ticket('a1')}/attachments HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {site.tokens['a1']}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {1500 * MIB}\r\n\r\n".encode()
        )
        await writer.drain()
        # Not one byte of the body sent: the answer comes from the header alone.
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert status_line.startswith(b"HTTP/1.1 413 "), status_line
    finally:
        writer.close()


async def test_a_chunked_upload_past_the_limit_is_cut_off_while_it_streams(site, served, scratch):
    async def body():
        sent = 0
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        chunk = b"x" * _CHUNK
        while sent < MAX_UPLOAD + _PAST_THE_LIMIT:
            sent += len(chunk)
            yield chunk
        yield b"\r\n--b--\r\n"

    client = site.as_user("a1", url=served.url)
    started = time.monotonic()
    with _DiskUse(scratch) as disk:
        response = await client.post(
            f"/api/tickets/{site.ticket('a1')}/attachments",
            content=body(),  # no Content-Length: sent chunked
            headers={"Content-Type": "multipart/form-data; boundary=b"},
            timeout=60,
        )
    # Spooled to disk: the limit at most, and one chunk more; never what was offered.
    assert disk.peak <= MAX_UPLOAD + 2 * _CHUNK, disk.peak
    assert disk.peak >= MAX_UPLOAD // 2, disk.peak  # the sampler did see the spool file grow
    assert response.status_code == 413, response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert time.monotonic() - started < 30
    assert (await client.get(f"/api/tickets/{site.ticket('a1')}/attachments")).json() == []


async def test_a_file_at_the_limit_still_goes_up(site, served, scratch):
    content = os.urandom(1024) * (MAX_UPLOAD // 1024)
    response = await site.as_user("a1", url=served.url).post(
        f"/api/tickets/{site.ticket('a1')}/attachments",
        files={"file": ("exactly-the-limit.bin", content)},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] == MAX_UPLOAD


async def test_a_json_body_past_its_limit_is_refused(site):
    sup = site.as_user("sup")
    body = '{"title": "big", "body": "' + "x" * MAX_JSON_BODY + '"}'
    refused = await sup.post("/api/kb/articles", content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 413
    assert refused.headers["x-content-type-options"] == "nosniff"
    # The largest article the schema allows, every character escaped, fits.
    article = {"title": "大" * 500, "body": "文" * 100_000, "tags": ["标签" * 50] * 50}
    assert (await sup.post("/api/kb/articles", json=article)).status_code == 201
