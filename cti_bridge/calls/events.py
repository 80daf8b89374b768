"""What the PBX told us, as frozen domain events (mapped from AMI by cti_bridge.ami.mapping)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class PbxEvent:
    pbx: str
    at: float  # seconds since the epoch: the PBX's Timestamp header, else our receive time


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEvent(PbxEvent):
    uniqueid: str
    linkedid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelCreated(ChannelEvent):
    channel: str
    context: str
    exten: str
    caller_number: str | None
    caller_name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerIdChanged(ChannelEvent):
    caller_number: str | None
    caller_name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DialplanEntered(ChannelEvent):
    """Newexten: the channel runs `application` at context/exten."""

    channel: str
    context: str
    exten: str
    application: str
    caller_number: str | None
    caller_name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStarted(ChannelEvent):
    """MixMonitor chose its file (VarSet MIXMONITOR_FILENAME); the path is the PBX's."""

    path: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelVariableSet(ChannelEvent):
    """VarSet of a dialplan variable other than MIXMONITOR_FILENAME (an IVR choice, say)."""

    variable: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DialStarted(ChannelEvent):
    """DialBegin from this channel to `dest_channel`.

    `from_channel` is empty for an Originate's first leg (its DialBegin has only the Dest side).
    """

    dest_uniqueid: str
    dest_channel: str
    dial_string: str = ""  # what Dial() was given after the technology, e.g. 5551234@trunk
    dest_caller_number: str | None = None
    from_channel: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DialEnded(ChannelEvent):
    dest_uniqueid: str
    dest_channel: str
    status: str  # ANSWER, NOANSWER, BUSY, CANCEL, ...


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueJoined(ChannelEvent):
    queue: str
    position: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAgentRinging(ChannelEvent):
    """AgentCalled: a queue member's device rings for this caller."""

    queue: str
    interface: str
    member_name: str
    dest_uniqueid: str
    dest_channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAgentConnected(ChannelEvent):
    queue: str
    interface: str
    member_name: str
    dest_uniqueid: str
    dest_channel: str
    hold_seconds: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerAbandoned(ChannelEvent):
    queue: str
    hold_seconds: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHungUp(ChannelEvent):
    channel: str
    cause: int | None
    cause_text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAgentRingNoAnswer(ChannelEvent):
    """AgentRingNoAnswer: a queue member's phone rang out; the queue tries someone else."""

    queue: str
    interface: str
    member_name: str
    dest_uniqueid: str
    dest_channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred(ChannelEvent):
    """BlindTransfer/AttendedTransfer: the call goes on, maybe to another agent.

    The ids are the transferer's; `transferer_channel` is the agent's side that transferred,
    `target` the exten@context of a blind transfer or the channel of an attended one.
    """

    kind: str  # blind | attended
    target: str
    transferer_channel: str = ""
    target_channel: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PbxBooted(PbxEvent):
    """FullyBooted (sent at every login): the PBX has been up since `booted_at`."""

    booted_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberChanged(PbxEvent):
    """QueueMemberAdded/Removed/Pause, or a QueueMember row of QueueStatus: an agent's
    membership of a queue (login, logout) and pause."""

    queue: str
    interface: str
    member_name: str
    logged_in: bool
    paused: bool
    reason: str = ""
    state_interface: str = ""  # the device whose state the member follows (often the real phone)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserEventReceived(ChannelEvent):
    """A dialplan UserEvent (IVR choice, survey score, ...)."""

    name: str
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMembersListed(PbxEvent):
    """The PBX's QueueStatus after a (re)connect: every queue member now, pauses included."""

    members: tuple[QueueMemberChanged, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveChannel:
    """One row of CoreShowChannels."""

    uniqueid: str
    linkedid: str
    channel: str
    context: str
    exten: str
    application: str
    application_data: str
    caller_number: str | None
    caller_name: str | None
    up: bool
    bridged: bool
    duration_seconds: int
    recording: str | None = None  # MIXMONITOR_FILENAME, asked with Getvar after the list


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveChannelsListed(PbxEvent):
    """The PBX's own list of live channels, asked for after every (re)connect.

    Calls we knew before `requested_at` that the list lacks ended while we were away.
    """

    requested_at: float
    channels: tuple[LiveChannel, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PbxDisconnected(PbxEvent):
    reason: str


CallEvent = (
    ChannelCreated
    | CallerIdChanged
    | DialplanEntered
    | RecordingStarted
    | ChannelVariableSet
    | DialStarted
    | DialEnded
    | QueueJoined
    | QueueAgentRinging
    | QueueAgentConnected
    | QueueCallerAbandoned
    | QueueAgentRingNoAnswer
    | ChannelHungUp
    | CallTransferred
    | UserEventReceived
    | LiveChannelsListed
    | PbxDisconnected
    | PbxBooted
    | QueueMemberChanged
    | QueueMembersListed
)
