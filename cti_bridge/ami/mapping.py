"""AMI message -> domain event: one small pure function per event name, in a table."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cti_bridge.calls import events as ev

Message = Mapping[str, Any]

_UNKNOWN = frozenset({"", "<unknown>"})
_RECORDING_VARIABLE = "MIXMONITOR_FILENAME"  # MixMonitor sets it to the file it records into
# Headers every channel event carries; what remains of a UserEvent is its own payload.
_CHANNEL_HEADERS = frozenset(
    h.lower()
    for h in [
        "Event",
        "Privilege",
        "Channel",
        "ChannelState",
        "ChannelStateDesc",
        "CallerIDNum",
        "CallerIDName",
        "ConnectedLineNum",
        "ConnectedLineName",
        "Language",
        "AccountCode",
        "Context",
        "Exten",
        "Priority",
        "Uniqueid",
        "Linkedid",
        "UserEvent",
        "Timestamp",
        "content",
        "SequenceNumber",
        "File",
        "Line",
        "Func",
    ]
)


class MalformedEvent(ValueError):
    """An event we handle lacks a field we need or has one we cannot read."""


def map_message(pbx: str, message: Message, received_at: float) -> ev.CallEvent | None:
    """Map one AMI event to a domain event.

    Args:
        pbx: name of the PBX it came from.
        message: the event's headers (panoramisk's Message or a plain dict).
        received_at: when we read it; used unless the PBX sent a Timestamp header.

    Returns:
        The domain event, or None for events the product does not use.

    Raises:
        MalformedEvent: a handled event is missing a field or has an unreadable one.
    """
    name = _text(message, "Event")
    mapper = _MAPPERS.get(name)
    if mapper is None:
        return None
    try:
        return mapper(pbx, message, _timestamp(message, received_at))
    except (KeyError, ValueError) as exc:
        raise MalformedEvent(f"{name}: {exc}") from exc


def map_live_channels(
    pbx: str,
    messages: Sequence[Message],
    requested_at: float,
    received_at: float,
    recordings: Mapping[str, str] | None = None,
) -> ev.LiveChannelsListed:
    """Map a CoreShowChannels response (its CoreShowChannel events) to one snapshot event.

    Args:
        recordings: MIXMONITOR_FILENAME by channel name, for the channels that have one.
    """
    recordings = recordings or {}
    channels = tuple(
        ev.LiveChannel(
            uniqueid=_required(m, "Uniqueid"),
            linkedid=_required(m, "Linkedid"),
            channel=_required(m, "Channel"),
            context=_text(m, "Context"),
            exten=_text(m, "Exten"),
            application=_text(m, "Application"),
            application_data=_text(m, "ApplicationData"),
            caller_number=_caller(m, "CallerIDNum"),
            caller_name=_caller(m, "CallerIDName"),
            up=_text(m, "ChannelStateDesc") == "Up",
            bridged=bool(_text(m, "BridgeId")),
            duration_seconds=_hms_seconds(_text(m, "Duration")),
            recording=recordings.get(_text(m, "Channel")),
        )
        for m in messages
        if _text(m, "Event") == "CoreShowChannel"
    )
    return ev.LiveChannelsListed(pbx=pbx, at=received_at, requested_at=requested_at, channels=channels)


def map_queue_members(pbx: str, messages: Sequence[Message], received_at: float) -> ev.QueueMembersListed:
    """Map a QueueStatus response (its QueueMember events) to one snapshot of the members.

    Rows that cannot be read (no Queue) are left out: the snapshot is what the PBX said clearly.
    """
    members = []
    for m in messages:
        if _text(m, "Event") != "QueueMember":
            continue
        try:
            members.append(_queuemember(pbx, m, received_at))
        except KeyError:
            continue
    return ev.QueueMembersListed(pbx=pbx, at=received_at, members=tuple(members))


# -- field helpers -------------------------------------------------------------


def live_channel_names(messages: Sequence[Message]) -> list[str]:
    """The channels a CoreShowChannels response lists."""
    return [_text(m, "Channel") for m in messages if _text(m, "Event") == "CoreShowChannel"]


def _text(message: Message, key: str) -> str:
    value = message.get(key, "")
    # Repeated headers arrive as lists; for a channel field clashing with a
    # UserEvent header of the same name the channel's own value comes first.
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value)


def _required(message: Message, key: str) -> str:
    value = _text(message, key)
    if not value:
        raise KeyError(key)
    return value


def _caller(message: Message, key: str) -> str | None:
    value = _text(message, key).strip()
    return None if value in _UNKNOWN else value


def _int_or_none(message: Message, key: str) -> int | None:
    value = _text(message, key).strip()
    return int(value) if value else None


def _finite(text: str, key: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{key} {text!r} is not a finite number")
    return value


def _timestamp(message: Message, received_at: float) -> float:
    stamp = _text(message, "Timestamp")
    return _finite(stamp, "Timestamp") if stamp else received_at


def _hms_seconds(duration: str) -> int:
    try:
        hours, minutes, seconds = (int(part) for part in duration.split(":"))
    except ValueError:
        return 0
    return hours * 3600 + minutes * 60 + seconds


def _ids(message: Message) -> dict[str, str]:
    return {"uniqueid": _required(message, "Uniqueid"), "linkedid": _required(message, "Linkedid")}


# -- one mapper per event --------------------------------------------------------


def _newchannel(pbx: str, m: Message, at: float) -> ev.ChannelCreated:
    return ev.ChannelCreated(
        pbx=pbx,
        at=at,
        **_ids(m),
        channel=_required(m, "Channel"),
        context=_text(m, "Context"),
        exten=_text(m, "Exten"),
        caller_number=_caller(m, "CallerIDNum"),
        caller_name=_caller(m, "CallerIDName"),
    )


def _newcallerid(pbx: str, m: Message, at: float) -> ev.CallerIdChanged:
    return ev.CallerIdChanged(
        pbx=pbx,
        at=at,
        **_ids(m),
        caller_number=_caller(m, "CallerIDNum"),
        caller_name=_caller(m, "CallerIDName"),
    )


def _newexten(pbx: str, m: Message, at: float) -> ev.DialplanEntered:
    return ev.DialplanEntered(
        pbx=pbx,
        at=at,
        **_ids(m),
        channel=_required(m, "Channel"),
        context=_text(m, "Context"),
        exten=_text(m, "Exten"),
        application=_text(m, "Application"),
        caller_number=_caller(m, "CallerIDNum"),
        caller_name=_caller(m, "CallerIDName"),
    )


def _varset(pbx: str, m: Message, at: float) -> ev.RecordingStarted | ev.ChannelVariableSet | None:
    # panoramisk 1.4 drops an empty last header, so a cleared variable has no Value at all.
    variable, value = _text(m, "Variable"), _text(m, "Value")
    if not value:
        return None
    if variable == _RECORDING_VARIABLE:
        return ev.RecordingStarted(pbx=pbx, at=at, **_ids(m), path=value)
    # Only the variables `wanted` let through get here; the tracker knows which mean what.
    return ev.ChannelVariableSet(pbx=pbx, at=at, **_ids(m), variable=variable, value=value)


def _dial_ids(m: Message) -> dict[str, str]:
    # An Originate's DialBegin has no calling channel: only the Dest* side.
    uniqueid = _text(m, "Uniqueid") or _required(m, "DestUniqueid")
    linkedid = _text(m, "Linkedid") or _required(m, "DestLinkedid")
    return {"uniqueid": uniqueid, "linkedid": linkedid}


def _dialbegin(pbx: str, m: Message, at: float) -> ev.DialStarted:
    return ev.DialStarted(
        pbx=pbx,
        at=at,
        **_dial_ids(m),
        dest_uniqueid=_required(m, "DestUniqueid"),
        dest_channel=_required(m, "DestChannel"),
        dial_string=_text(m, "DialString"),
        dest_caller_number=_caller(m, "DestCallerIDNum"),
        from_channel=_text(m, "Channel"),
    )


def _dialend(pbx: str, m: Message, at: float) -> ev.DialEnded:
    return ev.DialEnded(
        pbx=pbx,
        at=at,
        **_dial_ids(m),
        dest_uniqueid=_required(m, "DestUniqueid"),
        dest_channel=_required(m, "DestChannel"),
        status=_text(m, "DialStatus"),
    )


def _queuecallerjoin(pbx: str, m: Message, at: float) -> ev.QueueJoined:
    return ev.QueueJoined(
        pbx=pbx, at=at, **_ids(m), queue=_required(m, "Queue"), position=_int_or_none(m, "Position")
    )


def _member_leg(m: Message) -> dict[str, str]:
    """The queue member an AgentCalled / AgentConnect / AgentRingNoAnswer is about."""
    return {
        "queue": _required(m, "Queue"),
        "interface": _text(m, "Interface"),
        "member_name": _text(m, "MemberName"),
        "dest_uniqueid": _text(m, "DestUniqueid"),
        "dest_channel": _text(m, "DestChannel"),
    }


def _agentcalled(pbx: str, m: Message, at: float) -> ev.QueueAgentRinging:
    return ev.QueueAgentRinging(pbx=pbx, at=at, **_ids(m), **_member_leg(m))


def _agentconnect(pbx: str, m: Message, at: float) -> ev.QueueAgentConnected:
    return ev.QueueAgentConnected(
        pbx=pbx, at=at, **_ids(m), **_member_leg(m), hold_seconds=_int_or_none(m, "HoldTime")
    )


def _queuecallerabandon(pbx: str, m: Message, at: float) -> ev.QueueCallerAbandoned:
    return ev.QueueCallerAbandoned(
        pbx=pbx,
        at=at,
        **_ids(m),
        queue=_required(m, "Queue"),
        hold_seconds=_int_or_none(m, "HoldTime"),
    )


def _hangup(pbx: str, m: Message, at: float) -> ev.ChannelHungUp:
    return ev.ChannelHungUp(
        pbx=pbx,
        at=at,
        **_ids(m),
        channel=_required(m, "Channel"),
        cause=_int_or_none(m, "Cause"),
        cause_text=_text(m, "Cause-txt"),
    )


def _agentringnoanswer(pbx: str, m: Message, at: float) -> ev.QueueAgentRingNoAnswer:
    return ev.QueueAgentRingNoAnswer(pbx=pbx, at=at, **_ids(m), **_member_leg(m))


def _blindtransfer(pbx: str, m: Message, at: float) -> ev.CallTransferred:
    # The transferee (the caller) is the call's own party; its Linkedid names the call even when
    # the transferer's channel belongs to another one (an agent's own outbound call, say).
    return ev.CallTransferred(
        pbx=pbx,
        at=at,
        uniqueid=_text(m, "TransfereeUniqueid") or _required(m, "TransfererUniqueid"),
        linkedid=_text(m, "TransfereeLinkedid") or _required(m, "TransfererLinkedid"),
        kind="blind",
        target=f"{_text(m, 'Extension')}@{_text(m, 'Context')}",
        transferer_channel=_text(m, "TransfererChannel"),
    )


def _attendedtransfer(pbx: str, m: Message, at: float) -> ev.CallTransferred:
    return ev.CallTransferred(
        pbx=pbx,
        at=at,
        uniqueid=_text(m, "TransfereeUniqueid") or _required(m, "OrigTransfererUniqueid"),
        linkedid=_text(m, "TransfereeLinkedid") or _required(m, "OrigTransfererLinkedid"),
        kind="attended",
        # The far end: a channel when DestType is Bridge, a Local pair's far half when it is
        # Link; absent for some (App, Threeway). Never the second transferer: that is the agent.
        target=_text(m, "TransferTargetChannel") or _text(m, "LocalTwoChannel") or _text(m, "DestApp"),
        transferer_channel=_text(m, "OrigTransfererChannel"),
        target_channel=_text(m, "TransferTargetChannel") or _text(m, "LocalTwoChannel"),
    )


def _fullybooted(pbx: str, m: Message, at: float) -> ev.PbxBooted:
    uptime = _finite(_text(m, "Uptime") or "0", "Uptime")
    return ev.PbxBooted(pbx=pbx, at=at, booted_at=at - max(0.0, uptime))


def _queuemember(pbx: str, m: Message, at: float) -> ev.QueueMemberChanged:
    # QueueMemberAdded, QueueMemberPause and QueueStatus's QueueMember rows describe a member
    # that is in the queue; QueueMemberRemoved one that left it.
    return ev.QueueMemberChanged(
        pbx=pbx,
        at=at,
        queue=_required(m, "Queue"),
        interface=_text(m, "Interface") or _text(m, "Location") or _text(m, "StateInterface"),
        member_name=_text(m, "MemberName") or _text(m, "Name"),
        logged_in=_text(m, "Event") != "QueueMemberRemoved",
        paused=_text(m, "Paused") == "1",
        reason=_text(m, "PausedReason") or _text(m, "Reason"),
        state_interface=_text(m, "StateInterface"),
    )


def _userevent(pbx: str, m: Message, at: float) -> ev.UserEventReceived:
    fields = tuple((key, _text(m, key)) for key in m if key.lower() not in _CHANNEL_HEADERS)
    return ev.UserEventReceived(pbx=pbx, at=at, **_ids(m), name=_required(m, "UserEvent"), fields=fields)


_MAPPERS: dict[str, Callable[[str, Message, float], ev.CallEvent | None]] = {
    "Newchannel": _newchannel,
    "NewCallerid": _newcallerid,
    "Newexten": _newexten,
    "VarSet": _varset,
    "DialBegin": _dialbegin,
    "DialEnd": _dialend,
    "QueueCallerJoin": _queuecallerjoin,
    "AgentCalled": _agentcalled,
    "AgentConnect": _agentconnect,
    "QueueCallerAbandon": _queuecallerabandon,
    "AgentRingNoAnswer": _agentringnoanswer,
    "Hangup": _hangup,
    "BlindTransfer": _blindtransfer,
    "AttendedTransfer": _attendedtransfer,
    "UserEvent": _userevent,
    "FullyBooted": _fullybooted,
    "QueueMemberAdded": _queuemember,
    "QueueMemberRemoved": _queuemember,
    "QueueMemberPause": _queuemember,
    "QueueMember": _queuemember,
}

# The events worth reading. A busy PBX sends about as many again that the product ignores
# (Newstate, DeviceStateChange, Cdr, ...), and a quarter of a call's events are VarSets of
# dialplan variables other than the recording's and the IVR's: `wanted` drops those as they arrive.
HANDLED_EVENTS = frozenset(_MAPPERS)


def wanted(message: Message, variables: frozenset[str] = frozenset()) -> bool:
    """Whether the product could make anything of this event (a cheap look at two headers).

    Args:
        message: the event's headers.
        variables: the channel variables the PBX's config reads (IVR variables, the ticket
            hint, custom fields); their VarSets are kept besides the recording's.
    """
    name = message.get("Event")
    if name == "VarSet":
        variable = message.get("Variable")
        return variable == _RECORDING_VARIABLE or variable in variables
    return name in HANDLED_EVENTS


def worth_parsing(frame: str, variables: frozenset[str] = frozenset()) -> bool:
    """Whether an AMI frame, still text, could be one that `wanted` keeps.

    The same test as `wanted`, made on the raw text, so that the rest are dropped before
    panoramisk builds a Message of them: its parse is most of what an event costs, and two
    thirds of a busy PBX's events are refused. It may say yes to a frame `wanted` refuses
    (a variable whose name merely contains a wanted one), never no to one it keeps.
    """
    if not frame.startswith("Event: "):
        return True  # a response, or something odd: panoramisk decides
    end = frame.find("\r\n")
    name = frame[7:end] if end > 0 else frame[7:]
    if name == "VarSet":
        return _RECORDING_VARIABLE in frame or any(variable in frame for variable in variables)
    # Shutdown is read by panoramisk itself; an event carrying an ActionID answers one of our
    # actions (CoreShowChannels lists the live channels as events).
    return name in HANDLED_EVENTS or name == "Shutdown" or "ActionID: " in frame
