"""Small helpers shared by the tests: waiting, an MQTT inbox, and domain objects to start from."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiomqtt

from cti_bridge.calls.model import Call, CallKey, Direction
from cti_bridge.tickets.model import NewTicket, TicketStatus


async def until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `probe` (plain or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


class MqttInbox:
    """Everything published under `{prefix}/#`, in arrival order, with arrival times.

    Use as an async context manager: entering returns once the subscription is in place.
    """

    def __init__(self, port: int, prefix: str, tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.prefix = prefix
        self.tls = tls
        self.messages: list[tuple[str, Any, float]] = []  # (topic below the prefix, body, at)
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def __aenter__(self) -> MqttInbox:
        self._task = asyncio.create_task(self._collect(), name=f"mqtt-inbox-{self.prefix}")
        await asyncio.wait_for(self._subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _collect(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, tls_context=self.tls) as client:
            await client.subscribe(f"{self.prefix}/#", qos=1)
            self._subscribed.set()
            async for message in client.messages:
                payload = message.payload.decode()
                body = json.loads(payload) if payload.startswith("{") else payload
                topic = str(message.topic).removeprefix(f"{self.prefix}/")
                self.messages.append((topic, body, time.time()))

    def topic(self, topic: str) -> list[Any]:
        return [body for t, body, _ in self.messages if t == topic]

    def events(self, topic_part: str) -> list[str]:
        """The `event` of each JSON message whose topic contains `topic_part`."""
        return [body["event"] for t, body, _ in self.messages if topic_part in t and isinstance(body, dict)]

    def pops_for(self, number: str) -> list[tuple[str, dict[str, Any], float]]:
        """(agent, screen-pop, arrival time) for calls from `number`."""
        return [
            (topic.split("/")[-2], body, at)
            for topic, body, at in self.messages
            if topic.endswith("/screenpop") and body["call"]["caller_number"] == number
        ]


def inbound_call(linkedid: str, **fields: Any) -> Call:
    """An inbound call on PBX `main` (fields override the defaults)."""
    defaults: dict[str, Any] = {
        "key": CallKey(fields.pop("pbx", "main"), linkedid),
        "direction": Direction.INBOUND,
        "caller_number": None,
        "caller_name": None,
        "did": "4000",
        "queue": None,
        "started_at": 1_800_000_000.0,
    }
    return Call(**{**defaults, **fields})


def new_ticket(**fields: Any) -> NewTicket:
    """What prefill would hand the store, with plain defaults."""
    defaults: dict[str, Any] = {
        "status": TicketStatus.NEW,
        "priority": "P3",
        "category": None,
        "rule": None,
        "subject": "Phone call",
        "description": "",
        "customer_id": None,
        "caller_number": None,
        "caller_name": None,
        "did": "4000",
        "queue": None,
    }
    return NewTicket(**{**defaults, **fields})
