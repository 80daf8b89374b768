"""The one small interface every output (MQTT, and later the browser stream) implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    topic: str  # relative to the configured prefix, e.g. "agents/alice/screenpop"
    payload: bytes
    retain: bool = False


class Publisher(Protocol):
    def publish(self, message: OutboundMessage) -> None:
        """Queue a message for delivery; never waits on the network."""
        ...


class Fanout:
    """Sends every message to each output."""

    def __init__(self, *outputs: Publisher) -> None:
        self._outputs = outputs

    def publish(self, message: OutboundMessage) -> None:
        for output in self._outputs:
            output.publish(message)
