"""A call as the rest of the product sees it: a frozen snapshot assembled by the tracker."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class Outcome(StrEnum):
    ANSWERED = "answered"  # an agent took the call
    ABANDONED = "abandoned"  # the caller gave up while queued
    MISSED = "missed"  # agents rang, nobody answered, the caller was not queued
    IVR = "ivr"  # handled by the PBX alone (announcement, IVR, voicemail)
    LOST = "lost"  # ended while the daemon was disconnected; cause unknown


@dataclass(frozen=True, slots=True)
class CallKey:
    """Linkedid is unique per PBX, not across PBXs."""

    pbx: str
    linkedid: str

    def __str__(self) -> str:
        return f"{self.pbx}/{self.linkedid}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    key: CallKey
    direction: Direction
    caller_number: str | None
    caller_name: str | None
    did: str | None
    queue: str | None
    started_at: float
    answered_at: float | None = None  # by an agent
    agent_id: str | None = None
    ended_at: float | None = None
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    outcome: Outcome | None = None
    recordings: tuple[str, ...] = ()  # paths as the PBX names them
    rang_agents: tuple[str, ...] = ()
    transfers: int = 0
    # (menu, choice) in the order the caller chose: the Menu of an IvrChoice UserEvent, or
    # the name of a configured IVR variable. A menu can appear twice when the caller went back.
    ivr_choices: tuple[tuple[str, str], ...] = ()

    @property
    def ring_seconds(self) -> float | None:
        """Wait from arrival to an agent's answer, or to hangup when nobody answered."""
        until = self.answered_at if self.answered_at is not None else self.ended_at
        return None if until is None else max(0.0, until - self.started_at)

    @property
    def talk_seconds(self) -> float | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.answered_at)


@dataclass(frozen=True, slots=True)
class CallQualified:
    """An inbound call is far enough along (routed, answered or ended) to deserve its ticket."""

    call: Call


@dataclass(frozen=True, slots=True)
class AgentRang:
    call: Call
    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentAnswered:
    call: Call
    agent_id: str


@dataclass(frozen=True, slots=True)
class RecordingAnnounced:
    call: Call
    path: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    call: Call


CallUpdate = CallQualified | AgentRang | AgentAnswered | RecordingAnnounced | CallEnded
