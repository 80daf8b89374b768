"""One AMI session per PBX: login, keep-alive, reconnect with backoff, resync of live calls.

panoramisk 1.4 parses the protocol and matches responses to actions; the session
lifecycle is ours, because 1.4 reconnects through fire-and-forget `call_later`
callbacks with a fixed delay and its keep-alive never notices a silent peer.
Quirks of 1.4 handled here (see shared/fixtures/asterisk22/README.md):
- event callbacks must be plain functions (coroutines are ensure_future'd and lost):
  ours only enqueues;
- `Shutdown` closes the session from inside the protocol: we notice through
  `connection_lost` and reconnect;
- OriginateResponse never reaches '*' handlers: we send no Originate.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import panoramisk
import structlog
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message
from pydantic import SecretStr

from cti_bridge.ami.mapping import (
    live_channel_names,
    map_live_channels,
    map_queue_members,
    wanted,
    worth_parsing,
)
from cti_bridge.calls import events as ev
from cti_bridge.config import reveal
from cti_bridge.config.model import PbxConfig
from cti_bridge.config.tls import TlsSetupError, context_for

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 5.0
ACTION_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class AmiFrame:
    """An AMI event as read off the socket, not yet mapped."""

    pbx: str
    message: Any  # panoramisk Message: case-insensitive headers
    received_at: float


Sink = Callable[["AmiFrame | ev.CallEvent"], None]


class AmiLoginFailed(Exception):
    pass


class _Session(panoramisk.Manager):
    """panoramisk's Manager with its own reconnect and pinger switched off."""

    def __init__(self, lost: asyncio.Future[str], **config: Any) -> None:
        super().__init__(**config)
        self._lost = lost

    def connection_lost(self, exc: object) -> None:
        self._connected = False
        if not self._lost.done():
            reason = (
                "PBX shut down"
                if exc is not None and not isinstance(exc, Exception)
                else str(exc or "closed")
            )
            self._lost.set_result(reason)

    def ping(self) -> None:
        """Keep-alive is AmiClient's: it also checks that an answer comes back."""


class AmiClient:
    """Keeps one PBX's AMI session up and feeds its events to `sink`."""

    def __init__(self, config: PbxConfig, secret: SecretStr, sink: Sink) -> None:
        self._config = config
        self._secret = secret
        self._sink = sink
        # The VarSets worth reading: IVR choices and the ticket a click-to-dial names.
        self._variables = frozenset(config.ivr_variables) | (
            {config.ticket_variable} if config.ticket_variable else set()
        )
        self._session: _Session | None = None
        self.connected = asyncio.Event()
        self.sessions = 0  # completed logins, for health and tests
        self.events_received = 0  # every event read off the socket, handled or not

    @property
    def name(self) -> str:
        return self._config.name

    async def run(self) -> None:
        """Connect, and reconnect with exponential backoff and jitter, until cancelled."""
        initial = self._config.reconnect.initial_delay.total_seconds()
        ceiling = self._config.reconnect.max_delay.total_seconds()
        delay = initial
        bound = log.bind(pbx=self.name, host=self._config.host, port=self._config.port)
        while True:
            started = time.monotonic()
            try:
                reason = await self._run_session(bound)
            except (OSError, TimeoutError, AmiLoginFailed, TlsSetupError) as exc:
                # An ssl.SSLCertVerificationError is an OSError: its text names what failed.
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                self.connected.clear()
                self._close()
            self._sink(ev.PbxDisconnected(pbx=self.name, at=time.time(), reason=reason))
            # A session that lasted a while resets the backoff: this is a new outage.
            if time.monotonic() - started > ceiling:
                delay = initial
            bound.warning("ami.disconnected", reason=reason, retry_in=round(delay, 2))
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, ceiling)

    async def _run_session(self, bound: structlog.typing.FilteringBoundLogger) -> str:
        session, lost = await open_session(
            self._config.host,
            self._config.port,
            self._config.username,
            self._secret,
            timeout=CONNECT_TIMEOUT,
            protocol=lambda: _FilteringProtocol(self._variables, self._count_dropped),
            on_event=self._on_event,
            tls=await tls_context(self._config),
        )
        self._session = session
        self.sessions += 1
        bound.info("ami.connected", session=self.sessions)
        await self._resync(session, lost)
        self.connected.set()
        return await self._keep_alive(session, lost)

    async def _resync(self, session: _Session, lost: asyncio.Future[str]) -> None:
        """Ask which channels are live: calls that began or ended while we were away."""
        requested_at = time.time()
        action = session.send_action({"Action": "CoreShowChannels"})
        messages = await asyncio.wait_for(_shielded(action, lost), ACTION_TIMEOUT)
        if not isinstance(messages, list):
            messages = [messages]
        recordings = await self._recordings_of(session, live_channel_names(messages), lost)
        self._sink(map_live_channels(self.name, messages, requested_at, time.time(), recordings))
        await self._resync_queue_members(session, lost)

    async def _resync_queue_members(self, session: _Session, lost: asyncio.Future[str]) -> None:
        """Ask who is in which queue and who is paused: logins and pauses made while we were away.

        A PBX without app_queue answers with an error: its agents' states stay unknown.
        """
        action = session.send_action({"Action": "QueueStatus"})
        try:
            messages = await asyncio.wait_for(_shielded(action, lost), ACTION_TIMEOUT)
        except TimeoutError:
            # Agents' states stay as the events tell them; the calls' resync is done already.
            log.warning("ami.queue_status_timeout", pbx=self.name, seconds=ACTION_TIMEOUT)
            return
        if not isinstance(messages, list):
            messages = [messages]
        if messages and messages[0].get("Response") == "Error":
            log.info("ami.queue_status_unavailable", pbx=self.name, message=messages[0].get("Message"))
            return
        self._sink(map_queue_members(self.name, messages, time.time()))

    async def _recordings_of(
        self, session: _Session, channels: list[str], lost: asyncio.Future[str]
    ) -> dict[str, str]:
        """MIXMONITOR_FILENAME of each live channel: a call that began while we were away set
        it then, and CoreShowChannels does not carry variables."""

        async def one(channel: str) -> tuple[str, str]:
            action = session.send_action(
                {"Action": "Getvar", "Channel": channel, "Variable": "MIXMONITOR_FILENAME"}
            )
            response = await asyncio.wait_for(_shielded(action, lost), ACTION_TIMEOUT)
            # panoramisk drops an empty last header: no Value means the variable is unset.
            return channel, str(response.get("Value", "")) if response.success else ""

        found = await asyncio.gather(*(one(channel) for channel in channels))
        return {channel: path for channel, path in found if path}

    async def _keep_alive(self, session: _Session, lost: asyncio.Future[str]) -> str:
        interval = self._config.ping_interval.total_seconds()
        while True:
            done, _ = await asyncio.wait({lost}, timeout=interval)
            if done:
                return lost.result()
            try:
                await asyncio.wait_for(_shielded(session.send_action({"Action": "Ping"}), lost), interval)
            except TimeoutError:
                return f"no answer to Ping within {interval:g}s"
            if lost.done():
                return lost.result()

    def _on_event(self, _session: object, message: Any) -> None:
        # Runs inside panoramisk's data_received: enqueue and nothing else.
        self.events_received += 1
        if wanted(message, self._variables):
            self._sink(AmiFrame(self.name, message, time.time()))

    def _count_dropped(self) -> None:
        self.events_received += 1

    def _close(self) -> None:
        if self._session is not None:
            self._session.awaiting_actions.clear()  # resync replaces anything left unanswered
            self._session.close()
            self._session = None

    async def close(self) -> None:
        self._close()


async def open_session(
    host: str,
    port: int,
    username: str,
    secret: SecretStr,
    *,
    timeout: float,
    protocol: Callable[[], AMIProtocol] = AMIProtocol,
    on_event: Callable[[object, Any], None] | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[_Session, asyncio.Future[str]]:
    """Connect and log in; the session and a future that completes when it is lost.

    `tls`: connect over TLS with this context (see `tls_context`); plain TCP without.

    Raises:
        OSError, TimeoutError: the PBX could not be reached in time.
        AmiLoginFailed: the PBX refused the login.
    """
    loop = asyncio.get_running_loop()
    lost: asyncio.Future[str] = loop.create_future()
    session = _Session(
        lost,
        loop=loop,
        host=host,
        port=port,
        username=username,
        secret=secret.get_secret_value(),
        ping_delay=10**9,
        reconnect_timeout=10**9,
        log=_QuietLog(),
    )
    if on_event is not None:
        session.register_event("*", on_event)
    try:
        transport, connected_protocol = await asyncio.wait_for(
            loop.create_connection(protocol, host, port, ssl=tls), timeout
        )
        connected: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        connected.set_result((transport, connected_protocol))
        session.connection_made(connected)  # wires the protocol and sends Login
        response = await asyncio.wait_for(_shielded(session.authenticated_future, lost), timeout)
        if not response.success:
            raise AmiLoginFailed(f"login refused: {response.get('Message', '')}")
    except BaseException:
        session.close()
        raise
    return session, lost


async def tls_context(config: PbxConfig) -> ssl.SSLContext | None:
    """The TLS context for a PBX's `tls` section, made off the event loop (it reads files), anew
    for each connection so that a renewed certificate is picked up; None for plain TCP.

    Raises:
        TlsSetupError: a file or the key's passphrase cannot be used.
    """
    if config.tls is None:
        return None
    return await asyncio.to_thread(context_for, config.tls, reveal)


async def _shielded(action: asyncio.Future[Any], lost: asyncio.Future[str]) -> Any:
    """Wait for an action's response, or fail fast if the session drops meanwhile."""
    done, _ = await asyncio.wait({action, lost}, return_when=asyncio.FIRST_COMPLETED)
    if action in done:
        return action.result()
    raise ConnectionError(f"session lost while waiting: {lost.result()}")


class _FilteringProtocol(AMIProtocol):
    """panoramisk 1.4's protocol, except that events the daemon would throw away are dropped
    as text (`mapping.worth_parsing`) instead of being parsed first. The framing is 1.4's
    `AMIProtocol.data_received`, which has no hook between splitting and parsing."""

    def __init__(self, variables: frozenset[str], on_dropped: Callable[[], None]) -> None:
        self._variables = variables
        self._on_dropped = on_dropped

    def data_received(self, data: bytes) -> None:
        # Manager.connection_made sets the encoding; the banner can arrive before it does.
        text = data.decode(getattr(self, "encoding", "ascii"), "ignore")
        if self.version is None and text.startswith("Asterisk Call Manager/"):
            self.version = text.partition("\r\n")[0].partition("/")[2].strip()
        if self.queue:
            text = self.queue.popleft() + text
        frames = text.split("\r\n\r\n")
        self.queue.append(frames.pop())  # the unfinished tail waits for the next read
        for raw in frames:
            frame = raw.strip()  # Asterisk sometimes ends a frame with a lone EOL
            if not worth_parsing(frame, self._variables):
                self._on_dropped()
                continue
            message = Message.from_line(frame)
            if message is not None:
                self.handle_message(message)


class _QuietLog:
    """panoramisk logs through stdlib logging at odd levels; we log the lifecycle ourselves."""

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None
