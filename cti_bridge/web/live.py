"""The browser's live stream: every message the daemon publishes to MQTT, fanned out to the
Server-Sent Events streams of the users allowed to see it.

It is one more output beside MQTT (screenpop.outputs.Fanout), so a pop reaches the page from
the same event as the MQTT topic, not by polling the store. SSE rather than WebSocket: the
stream only goes one way, EventSource reconnects by itself, and it rides the session cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import structlog

from cti_bridge.screenpop.outputs import OutboundMessage
from cti_bridge.web.auth import Principal

log = structlog.get_logger(__name__)

_BACKLOG = 256  # messages a slow browser may fall behind by before it is told to reload
_HEARTBEAT_SECONDS = 15.0  # a comment line now and then keeps proxies from closing the stream


@dataclass(eq=False)
class _Subscriber:
    principal: Principal
    queue: asyncio.Queue[OutboundMessage | None] = field(default_factory=lambda: asyncio.Queue(_BACKLOG))
    lagged: bool = False


class LiveHub:
    """Publisher for the browser: `publish` never waits, like MqttPublisher's."""

    def __init__(self) -> None:
        self._subscribers: set[_Subscriber] = set()
        self._closed = False
        self.delivered = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, message: OutboundMessage) -> None:
        # A ticket notice is read once for all the agents' pages, not once per page.
        assignee = functools.cache(lambda: _assignee(message))
        for subscriber in self._subscribers:
            if not _may_see(subscriber.principal, message.topic, assignee):
                continue
            try:
                subscriber.queue.put_nowait(message)
                self.delivered += 1
            except asyncio.QueueFull:
                subscriber.lagged = True

    def close(self) -> None:
        """End every stream: the server can then stop without waiting on open pages."""
        self._closed = True
        for subscriber in self._subscribers:
            # A full queue needs no wake-up: its stream sees `_closed` at its next message.
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.queue.put_nowait(None)

    async def stream(self, principal: Principal) -> AsyncIterator[str]:
        """The SSE text for one page, until the page goes or the hub closes."""
        subscriber = _Subscriber(principal)
        self._subscribers.add(subscriber)
        try:
            yield "retry: 2000\n\n"
            yield _event("hello", {"user": principal.user.id})
            while not self._closed:
                try:
                    message = await asyncio.wait_for(subscriber.queue.get(), _HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if message is None:
                    return
                yield _message_event(message)
                if subscriber.lagged:
                    # What was dropped is gone: the page reloads its state from the API instead.
                    subscriber.lagged = False
                    log.warning("live.lagged", user=principal.user.id)
                    yield _event("lagged", {})
        finally:
            self._subscribers.discard(subscriber)


def may_see(principal: Principal, message: OutboundMessage) -> bool:
    """Supervisors see everything; an agent their own topics and their team's tickets."""
    return _may_see(principal, message.topic, lambda: _assignee(message))


def _may_see(principal: Principal, topic: str, assignee: Callable[[], str | None]) -> bool:
    if principal.sees_agents is None:
        return True
    parts = topic.split("/")
    if parts[0] == "agents":
        return len(parts) > 1 and parts[1] in (principal.agent_id, principal.user.id)
    if parts[0] == "tickets":
        return assignee() in principal.sees_agents
    return parts[0] == "status"


def _assignee(message: OutboundMessage) -> str | None:
    """Whose ticket a `tickets/...` notice is about."""
    ticket = _json(message.payload).get("ticket") or {}
    return ticket.get("assignee")


def _kind(topic: str) -> str:
    parts = topic.split("/")
    if parts[0] == "agents":
        return parts[-1]  # screenpop, callbacks, notifications
    if parts[0] == "tickets":
        return "sla" if parts[-1] == "sla" else "ticket"
    return parts[0]


def _json(payload: bytes) -> dict:
    try:
        decoded = json.loads(payload)
    except ValueError:
        return {"text": payload.decode(errors="replace")}
    return decoded if isinstance(decoded, dict) else {"value": decoded}


def _message_event(message: OutboundMessage) -> str:
    """The message as an SSE event. Its payload is JSON on one line already (pydantic's
    compact dump), so it goes in as it is: no parse and dump again per page and message."""
    payload = message.payload.decode(errors="replace")
    if payload[:1] != "{" or "\n" in payload:  # `online`, or text an SSE line cannot hold
        payload = json.dumps(_json(message.payload), ensure_ascii=False)
    data = f'{{"topic": {json.dumps(message.topic)}, "payload": {payload}}}'
    return f"event: {_kind(message.topic)}\ndata: {data}\n\n"


def _event(kind: str, data: dict) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
