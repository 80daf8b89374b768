"""A loopback AMI server that replays recorded Asterisk bytes to a real AMI client.

It speaks enough of the protocol for cti-bridge's client (banner, Login, Ping,
CoreShowChannels, Getvar) and then streams a capture's events verbatim, so the
bytes go through panoramisk's real parser.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

EOL = b"\r\n"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def events_of_capture(path: Path) -> list[bytes]:
    """The `Event:` messages of a raw capture, each ending with a blank line."""
    # Asterisk sometimes sends an extra CRLF between messages; keep it, as the PBX did,
    # only attached to the message it precedes.
    messages = path.read_bytes().split(EOL + EOL)
    return [m + EOL + EOL for m in messages if m.lstrip(EOL).startswith(b"Event:")]


class AmiReplayServer:
    """Serves one capture (or any list of raw messages) to each client that logs in."""

    def __init__(
        self,
        events: list[bytes],
        *,
        live_channels: list[dict[str, str]] | None = None,
        recordings: dict[str, str] | None = None,
        secret: str = "replay-secret",
    ) -> None:
        self.events = events
        self.live_channels = live_channels or []
        self.recordings = recordings or {}  # MIXMONITOR_FILENAME by channel, for Getvar
        self.secret = secret
        self.port = 0
        self.logins = 0
        self.actions: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.streamed = asyncio.Event()

    async def __aenter__(self) -> AmiReplayServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop_clients()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def drop_clients(self) -> None:
        """Cut every session, as a network failure would."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        writer.write(BANNER)
        try:
            while True:
                raw = await reader.readuntil(EOL + EOL)
                action = _headers(raw)
                self.actions.append(action)
                await self._answer(action, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, action: dict[str, str], writer: asyncio.StreamWriter) -> None:
        name = action.get("Action", "").lower()
        action_id = action.get("ActionID", "")
        if name == "login":
            if action.get("Secret") != self.secret:
                writer.write(_message(Response="Error", ActionID=action_id, Message="Authentication failed"))
                return
            self.logins += 1
            writer.write(_message(Response="Success", ActionID=action_id, Message="Authentication accepted"))
            writer.write(_message(Event="FullyBooted", Privilege="system,all", Status="Fully Booted"))
        elif name == "getvar":
            value = self.recordings.get(action.get("Channel", ""), "")
            # As Asterisk does: an unset variable comes back as an empty Value.
            writer.write(
                _message(
                    Response="Success", ActionID=action_id, Variable=action.get("Variable", ""), Value=value
                )
            )
        elif name == "ping":
            writer.write(_message(Response="Success", ActionID=action_id, Ping="Pong"))
        elif name == "coreshowchannels":
            writer.write(
                _message(
                    Response="Success",
                    ActionID=action_id,
                    EventList="start",
                    Message="Channels will follow",
                )
            )
            for channel in self.live_channels:
                writer.write(_message(Event="CoreShowChannel", ActionID=action_id, **channel))
            writer.write(
                _message(
                    Event="CoreShowChannelsComplete",
                    ActionID=action_id,
                    EventList="Complete",
                    ListItems=str(len(self.live_channels)),
                )
            )
            await writer.drain()
            # The capture follows the resync, as live events follow a real login.
            for event in self.events:
                writer.write(event)
            await writer.drain()
            self.streamed.set()
        else:
            writer.write(_message(Response="Error", ActionID=action_id, Message="Invalid/unknown command"))
        await writer.drain()


def _headers(raw: bytes) -> dict[str, str]:
    headers = {}
    for line in raw.decode().split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            headers[key] = value
    return headers


def _message(**headers: str) -> bytes:
    return b"".join(f"{k}: {v}".encode() + EOL for k, v in headers.items()) + EOL


def messages_of_capture(path: Path) -> list[object]:
    """A capture's events parsed by panoramisk's own parser, as the daemon receives them."""
    from panoramisk.message import Message

    parsed = (
        Message.from_line(raw.decode().strip()) for raw in events_of_capture(path)
    )  # as panoramisk does
    return [message for message in parsed if message is not None]
