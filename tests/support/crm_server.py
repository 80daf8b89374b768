"""A real HTTP/1.1 server on a free loopback port that plays the site's CRM as a test scripts it.

Plain asyncio streams, no framework: each test says how the "CRM" answers a number (fast,
slow, 500, malformed, huge, a redirect) and can make the server go away and come back. Every
request is recorded with the number it asked for, its headers, the connection it came on and
when it arrived and was answered.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_REASONS = {200: "OK", 204: "No Content", 302: "Found", 404: "Not Found", 500: "Internal Server Error"}


@dataclass(frozen=True)
class Answer:
    """How the CRM answers: a status, a body (bytes as they are, anything else as JSON), after a delay."""

    status: int = 200
    body: Any = b""
    delay: float = 0.0  # before the status line
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False  # no Content-Length: the body in chunks of `chunk` bytes
    chunk: int = 65536
    drip: float = 0.0  # pause between chunks

    def payload(self) -> bytes:
        return (
            self.body if isinstance(self.body, bytes) else json.dumps(self.body, ensure_ascii=False).encode()
        )


NOT_FOUND = Answer(404, {"error": "no such customer"})


@dataclass(frozen=True)
class Request:
    phone: str | None
    target: str  # as sent: path and query, still URL-encoded
    path: str
    headers: dict[str, str]  # names lower-cased
    connection: int
    at: float


class CrmServer:
    """`async with CrmServer() as crm:` serves on `crm.url`; `crm.answer(phone, Answer(...))`."""

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[Request] = []
        self.answered: dict[str, list[float]] = {}  # phone -> when each answer was written
        self.default = NOT_FOUND
        self._answers: dict[str, list[Answer]] = {}
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._connections = itertools.count(1)
        self.connections = 0

    @property
    def url(self) -> str:
        """A `crm.url` template for this server."""
        return f"http://127.0.0.1:{self.port}/api/customers?phone={{e164}}"

    def answer(self, phone: str, *answers: Answer) -> None:
        """How requests for `phone` are answered: in this order, the last one from then on."""
        self._answers[phone] = list(answers)

    def asked(self, phone: str) -> list[Request]:
        return [r for r in self.requests if r.phone == phone]

    async def __aenter__(self) -> CrmServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen (again, on the same port once it has one)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Go away: stop listening and drop every open connection (a crashed CRM)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for handler in list(self._handlers):  # one still sleeping in a delay would answer later
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        connection = next(self._connections)
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                _method, target, _version = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        name, value = name.strip().lower(), value.strip()
                        # A header sent twice shows as both values, as HTTP would join them.
                        headers[name] = f"{headers[name]}, {value}" if name in headers else value
                if int(headers.get("content-length", "0")):
                    await reader.readexactly(int(headers["content-length"]))
                parts = urlsplit(target)
                phone = (parse_qs(parts.query).get("phone") or [unquote(parts.path.rsplit("/", 1)[-1])])[0]
                self.requests.append(Request(phone, target, parts.path, headers, connection, time.time()))
                script = self._answers.get(phone) or [self.default]
                answer = script.pop(0) if len(script) > 1 else script[0]
                await self._respond(writer, answer)
                self.answered.setdefault(phone, []).append(time.time())
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.CancelledError):
            # Cancelled by stop(): the server is going away, so this connection ends quietly (a
            # handler task ending in CancelledError makes asyncio's stream callback log noise).
            return
        finally:
            self._handlers.discard(handler)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _respond(self, writer: asyncio.StreamWriter, answer: Answer) -> None:
        if answer.delay:
            await asyncio.sleep(answer.delay)
        body = answer.payload()
        reason = _REASONS.get(answer.status, "Whatever")
        lines = [f"HTTP/1.1 {answer.status} {reason}", "Content-Type: application/json"]
        lines += [f"{name}: {value}" for name, value in answer.headers.items()]
        lines.append("Transfer-Encoding: chunked" if answer.chunked else f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not answer.chunked:
            writer.write(body)
            await writer.drain()
            return
        for start in range(0, len(body), answer.chunk):
            piece = body[start : start + answer.chunk]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            if answer.drip:
                await asyncio.sleep(answer.drip)
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def customer(name: str, **fields: Any) -> dict[str, Any]:
    """A found caller as the scripted CRM answers it (the shape `crm_section` maps)."""
    return {"data": [{"fullName": name, **fields}]}


def crm_section(server: CrmServer, **overrides: Any) -> dict[str, Any]:
    """A `crm:` config section for this server; the token comes from $TEST_CRM_TOKEN."""
    return {
        "url": server.url,
        "headers": {"Authorization": {"env": "TEST_CRM_TOKEN", "prefix": "Bearer "}},
        "timeout": "1s",
        "record": "data",
        "fields": {
            "name": "fullName",
            "company": "company",
            "tier": "level",
            "vip": "vip",
            "external_id": "id",
            "orders": {"path": "orders", "id": "no", "date": "date", "total": "amount", "summary": "item"},
        },
        "vip_tiers": ["gold"],
        "circuit_breaker": {"failures": 3, "open_for": "30s"},
    } | overrides
