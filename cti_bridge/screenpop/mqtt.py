"""Publishes to MQTT, over TLS if set: a buffered, reconnecting publisher with a retained status and will."""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
import socket
import ssl

import aiomqtt
import structlog
from pydantic import SecretStr

from cti_bridge.config import reveal
from cti_bridge.config.model import MqttConfig
from cti_bridge.config.tls import TlsSetupError, context_for
from cti_bridge.screenpop.outputs import OutboundMessage

log = structlog.get_logger(__name__)

_ONLINE, _OFFLINE = b"online", b"offline"
_IN_FLIGHT = 20  # paho's default limit of unacknowledged QoS 1 messages


class MqttPublisher:
    """Queues messages and publishes them in order, across broker restarts.

    `publish` never waits on the network: callers on the event path enqueue and go
    on. While the broker is away up to `max_pending` messages wait (oldest dropped
    first, and counted).
    """

    def __init__(self, config: MqttConfig, password: SecretStr | None) -> None:
        self._config = config
        self._password = password
        self._pending: collections.deque[OutboundMessage] = collections.deque()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.connected = asyncio.Event()
        self.published = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def topic(self, suffix: str) -> str:
        return f"{self._config.topic_prefix}/{suffix}"

    def publish(self, message: OutboundMessage) -> None:
        if len(self._pending) >= self._config.max_pending:
            self._pending.popleft()
            self.dropped += 1
            log.warning("mqtt.dropped_oldest", pending=len(self._pending), dropped=self.dropped)
        self._pending.append(message)
        self._wakeup.set()

    async def run(self) -> None:
        """Stay connected and drain the queue until `stop()`; then say offline and return."""
        initial = self._config.reconnect.initial_delay.total_seconds()
        ceiling = self._config.reconnect.max_delay.total_seconds()
        delay = initial
        status = self.topic("status")
        while True:
            try:
                tls = await self._tls_context()
                async with self._client(status, tls) as client:
                    delay = initial
                    await client.publish(status, _ONLINE, qos=1, retain=True)
                    self.connected.set()
                    log.info(
                        "mqtt.connected", host=self._config.host, port=self._config.port, tls=tls is not None
                    )
                    await self._drain(client)
                    await client.publish(status, _OFFLINE, qos=1, retain=True)
                    return
            except (aiomqtt.MqttError, TlsSetupError) as exc:
                self.connected.clear()
                if self._stopping:
                    log.warning("mqtt.unsent_at_stop", pending=len(self._pending), error=str(exc))
                    return
                self._log_failure(exc, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, ceiling)

    def stop(self) -> None:
        """Ask `run` to publish what is queued, mark the bridge offline and return."""
        self._stopping = True
        self._wakeup.set()

    async def _drain(self, client: aiomqtt.Client) -> None:
        while True:
            while self._pending:
                await self._publish_window(client)
            if self._stopping:
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _publish_window(self, client: aiomqtt.Client) -> None:
        """Publish up to `_IN_FLIGHT` of the oldest messages at once.

        A QoS 1 publish waits for the broker's PUBACK; one at a time, the queue would move
        at one message per broker round trip, and a pop would wait behind every notice
        before it. paho sends them in order on the one connection. A message leaves the
        queue only once the broker has it: after a failure, any that did get through may
        be sent again (QoS 1 is at-least-once anyway).
        """
        window = list(itertools.islice(self._pending, _IN_FLIGHT))
        sends = [
            asyncio.create_task(self._send(client, message), name=f"mqtt-publish-{n}")
            for n, message in enumerate(window)
        ]
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        for message, outcome in zip(window, outcomes, strict=True):
            if outcome is not None:
                raise outcome
            if self._pending and self._pending[0] is message:  # unless dropped meanwhile
                self._pending.popleft()
                self.published += 1

    async def _send(self, client: aiomqtt.Client, message: OutboundMessage) -> None:
        await client.publish(
            self.topic(message.topic), message.payload, qos=self._config.qos, retain=message.retain
        )

    async def _tls_context(self) -> ssl.SSLContext | None:
        """A fresh context per connection (certificates renewed on disk are picked up), made off
        the event loop: it reads the CA, certificate and key files and the key's passphrase."""
        tls = self._config.tls
        if tls is None:
            return None
        return await asyncio.to_thread(context_for, tls, reveal)

    def _log_failure(self, exc: Exception, delay: float) -> None:
        """One line that says what to fix when TLS is the cause; aiomqtt keeps only the text of
        the SSL error, as the context of its own."""
        retry_in = round(delay, 2)
        cause = exc.__context__ if isinstance(exc, aiomqtt.MqttError) else None
        if isinstance(exc, TlsSetupError):
            log.error("mqtt.tls_unusable", key=f"mqtt.tls.{exc.key}", error=str(exc), retry_in=retry_in)
        elif isinstance(cause, ssl.SSLCertVerificationError):
            log.error(
                "mqtt.tls_verify_failed",
                error=f"certificate verify failed: {cause.verify_message or cause}",
                hint="the broker's certificate is not signed by mqtt.tls.ca, or does not name mqtt.host "
                "(mqtt.tls.verify_hostname)",
                host=self._config.host,
                port=self._config.port,
                retry_in=retry_in,
            )
        elif isinstance(cause, ssl.SSLError):
            log.error("mqtt.tls_failed", error=str(cause), port=self._config.port, retry_in=retry_in)
        else:
            log.warning("mqtt.disconnected", error=str(exc), retry_in=retry_in)

    def _client(self, status_topic: str, tls: ssl.SSLContext | None) -> aiomqtt.Client:
        config = self._config
        return aiomqtt.Client(
            config.host,
            config.port,
            username=config.username,
            password=self._password.get_secret_value() if self._password else None,
            identifier=config.client_id or f"cti-bridge-{socket.gethostname()}",
            keepalive=config.keepalive,
            will=aiomqtt.Will(status_topic, _OFFLINE, qos=1, retain=True),
            timeout=10,
            tls_context=tls,
        )
