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
    NO_ANSWER = "no_answer"  # an outbound call the customer did not pick up (busy, no answer)
    INTERRUPTED = "interrupted"  # cut by a PBX crash or restart: no hangup was ever sent


class TransferKind(StrEnum):
    BLIND = "blind"  # BlindTransfer: the agent sent the caller on without speaking first
    ATTENDED = "attended"  # AttendedTransfer: the agent spoke to the target, then handed over
    REDIRECT = "redirect"  # no transfer event: an answered caller was routed to a queue again


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """The caller moved on from `from_agent`; `to_agent` once someone took them."""

    kind: TransferKind
    at: float
    from_agent: str | None
    to_agent: str | None = None
    to_queue: str | None = None
    target: str | None = None  # what the PBX named: exten@context, or the target channel


class RingEnd(StrEnum):
    """Why an agent's phone stopped ringing without them taking the call."""

    NO_ANSWER = "no_answer"  # rang out (AgentRingNoAnswer, DialEnd NOANSWER/BUSY)
    CALLER_HUNG_UP = "caller_hung_up"  # the caller gave up while it rang
    ANSWERED_ELSEWHERE = "answered_elsewhere"  # another agent took the call
    CONSULTATION_ENDED = "consultation_ended"  # consulted before a transfer that did not happen


@dataclass(frozen=True, slots=True)
class CallKey:
    """Linkedid is unique per PBX, not across PBXs."""

    pbx: str
    linkedid: str

    def __str__(self) -> str:
        return f"{self.pbx}/{self.linkedid}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """`caller_number`/`caller_name` are the outside party's: who called in, or who an agent
    called on an outbound call. `agent_id` is the agent with the caller now."""

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
    placed_by: str | None = None  # the agent whose phone placed the call (outbound)
    transfers: tuple[Transfer, ...] = ()
    # Ticket field values the dialplan reported (a mapped UserEvent), in the order they came.
    reported_fields: tuple[tuple[str, str], ...] = ()
    # The ticket the dialplan or a click-to-dial named for this call (a CTI_TICKET variable).
    ticket_hint: str | None = None
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
    """A call is far enough along to deserve its ticket: an inbound call routed, answered or
    ended; an outbound call dialling the customer."""

    call: Call


@dataclass(frozen=True, slots=True)
class AgentRang:
    """An agent's phone rings for the call (inbound), or the agent dials out (outbound)."""

    call: Call
    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentRingStopped:
    """An agent's phone stopped ringing and they did not take the call."""

    call: Call
    agent_id: str
    why: RingEnd


@dataclass(frozen=True, slots=True)
class AgentAnswered:
    call: Call
    agent_id: str


@dataclass(frozen=True, slots=True)
class RecordingAnnounced:
    call: Call
    path: str


@dataclass(frozen=True, slots=True)
class Transferred:
    """The agent with the caller handed them on; `call.transfers[-1]` is this transfer. An
    `AgentAnswered` follows when the agent who takes the caller is known."""

    call: Call
    transfer: Transfer


@dataclass(frozen=True, slots=True)
class DialplanReported:
    """The dialplan told more about an already ticketed call: IVR choices, field values."""

    call: Call


@dataclass(frozen=True, slots=True)
class CallEnded:
    call: Call


CallUpdate = (
    CallQualified
    | AgentRang
    | AgentRingStopped
    | AgentAnswered
    | Transferred
    | DialplanReported
    | RecordingAnnounced
    | CallEnded
)
