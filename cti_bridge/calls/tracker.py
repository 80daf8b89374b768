"""Assembles calls from channel events keyed by Linkedid. Pure: no I/O, no clock, no logging.

Feed it domain events in arrival order; it answers with what happened to calls
(`CallUpdate`s) for the services to act on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from cti_bridge.calls import events as ev
from cti_bridge.calls.agents import AgentDirectory, interface_of
from cti_bridge.calls.model import (
    AgentAnswered,
    AgentRang,
    Call,
    CallEnded,
    CallKey,
    CallQualified,
    CallUpdate,
    Direction,
    Outcome,
    RecordingAnnounced,
)

# Applications on the far half of a Local channel or an outgoing leg: these channels
# do not run the inbound dialplan themselves.
_OUTGOING_LEG_APPS = frozenset({"AppDial", "AppDial2", "AppQueue"})

# The IVR's UserEvent (asterisk/extensions.conf, [ivr-main]):
#   UserEvent(IvrChoice,Menu: main,Choice: ${EXTEN})
IVR_CHOICE_EVENT = "IvrChoice"
IVR_MENU_HEADER = "Menu"
IVR_CHOICE_HEADER = "Choice"


@dataclass(frozen=True, slots=True)
class PbxRouting:
    """What the tracker must know of one PBX's dialplan: how to tell an inbound call, and
    which channel variables hold the caller's IVR choices."""

    inbound_contexts: frozenset[str]
    outbound_contexts: frozenset[str] = frozenset()
    inbound_dids: frozenset[str] = frozenset()
    ivr_variables: frozenset[str] = frozenset()

    def is_inbound(self, context: str, exten: str) -> bool:
        return context in self.inbound_contexts or exten in self.inbound_dids


@dataclass(slots=True)
class _Channel:
    channel: str
    context: str
    exten: str
    caller_number: str | None
    caller_name: str | None
    last_seen: float


@dataclass(slots=True)
class _CallState:
    key: CallKey
    started_at: float
    last_seen: float
    channels: dict[str, _Channel] = field(default_factory=dict)  # live ones, by uniqueid
    inbound_uniqueid: str | None = None
    inbound_confirmed: bool = False  # seen running dialplan, not just created there
    caller_number: str | None = None
    caller_name: str | None = None
    did: str | None = None
    queue: str | None = None
    outbound: bool = False
    qualified: bool = False
    answered_at: float | None = None
    agent_id: str | None = None
    rang: list[str] = field(default_factory=list)
    answered_by: set[str] = field(default_factory=set)
    queued: bool = False
    abandoned: bool = False
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    recordings: list[str] = field(default_factory=list)
    transfers: int = 0
    ivr_choices: list[tuple[str, str]] = field(default_factory=list)

    @property
    def direction(self) -> Direction:
        if self.inbound_uniqueid is not None:
            return Direction.INBOUND
        return Direction.OUTBOUND if self.outbound else Direction.INTERNAL

    def snapshot(self, **changes: object) -> Call:
        call = Call(
            key=self.key,
            direction=self.direction,
            caller_number=self.caller_number,
            caller_name=self.caller_name,
            did=self.did,
            queue=self.queue,
            started_at=self.started_at,
            answered_at=self.answered_at,
            agent_id=self.agent_id,
            hangup_cause=self.hangup_cause,
            hangup_cause_text=self.hangup_cause_text,
            recordings=tuple(self.recordings),
            rang_agents=tuple(self.rang),
            transfers=self.transfers,
            ivr_choices=tuple(self.ivr_choices),
        )
        return dataclasses.replace(call, **changes) if changes else call

    def final_outcome(self) -> Outcome:
        if self.answered_at is not None:
            return Outcome.ANSWERED
        if self.abandoned:
            return Outcome.ABANDONED
        if self.rang or self.queued:
            return Outcome.MISSED
        return Outcome.IVR


class CallTracker:
    """Live calls of every PBX, assembled from their channels' events."""

    def __init__(self, routing: dict[str, PbxRouting], agents: AgentDirectory) -> None:
        self._routing = routing
        self._agents = agents
        self._calls: dict[CallKey, _CallState] = {}
        self._handlers: dict[type, Callable[[ev.CallEvent], list[CallUpdate]]] = {
            ev.ChannelCreated: self._on_channel_created,
            ev.CallerIdChanged: self._on_caller_id_changed,
            ev.DialplanEntered: self._on_dialplan_entered,
            ev.RecordingStarted: self._on_recording_started,
            ev.DialStarted: self._on_dial_started,
            ev.DialEnded: self._on_dial_ended,
            ev.QueueJoined: self._on_queue_joined,
            ev.QueueAgentRinging: self._on_queue_agent_ringing,
            ev.QueueAgentConnected: self._on_queue_agent_connected,
            ev.QueueCallerAbandoned: self._on_queue_caller_abandoned,
            ev.ChannelHungUp: self._on_channel_hung_up,
            ev.CallTransferred: self._on_call_transferred,
            ev.UserEventReceived: self._on_user_event,
            ev.ChannelVariableSet: self._on_variable_set,
            ev.LiveChannelsListed: self._on_live_channels_listed,
        }

    def handle(self, event: ev.CallEvent) -> list[CallUpdate]:
        """Apply one event; return what it changed, in order."""
        handler = self._handlers.get(type(event))
        return handler(event) if handler is not None else []

    @property
    def live_calls(self) -> list[Call]:
        return [state.snapshot() for state in self._calls.values()]

    # -- channel lifecycle -------------------------------------------------

    def _on_channel_created(self, event: ev.ChannelCreated) -> list[CallUpdate]:
        key = CallKey(event.pbx, event.linkedid)
        state = self._calls.get(key)
        if state is None:
            state = self._calls[key] = _CallState(key=key, started_at=event.at, last_seen=event.at)
        state.channels[event.uniqueid] = _Channel(
            event.channel,
            event.context,
            event.exten,
            event.caller_number,
            event.caller_name,
            event.at,
        )
        state.last_seen = event.at
        self._classify(state, event.uniqueid, confirmed=False)
        return []

    def _on_caller_id_changed(self, event: ev.CallerIdChanged) -> list[CallUpdate]:
        state, channel = self._find(event)
        if channel is None:
            return []
        channel.caller_number, channel.caller_name = event.caller_number, event.caller_name
        if event.uniqueid == state.inbound_uniqueid and not state.qualified:
            state.caller_number, state.caller_name = event.caller_number, event.caller_name
        return []

    def _on_dialplan_entered(self, event: ev.DialplanEntered) -> list[CallUpdate]:
        state, channel = self._find(event)
        if channel is None:
            return []
        channel.context, channel.exten = event.context, event.exten
        if event.caller_number is not None:
            channel.caller_number, channel.caller_name = event.caller_number, event.caller_name
        if event.application not in _OUTGOING_LEG_APPS:
            self._classify(state, event.uniqueid, confirmed=True)
        return []

    def _on_recording_started(self, event: ev.RecordingStarted) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None or event.path in state.recordings:
            return []
        state.recordings.append(event.path)
        if state.qualified:
            return [RecordingAnnounced(state.snapshot(), event.path)]
        return []

    def _on_channel_hung_up(self, event: ev.ChannelHungUp) -> list[CallUpdate]:
        state, channel = self._find(event)
        if channel is None:
            return []
        del state.channels[event.uniqueid]
        if event.uniqueid == state.inbound_uniqueid or state.hangup_cause is None:
            state.hangup_cause, state.hangup_cause_text = event.cause, event.cause_text
        if state.channels:
            return []
        return self._end(state, event.at, state.final_outcome())

    # -- routing to agents ---------------------------------------------------

    def _on_dial_started(self, event: ev.DialStarted) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        return self._agent_rang(state, self._agents.agent_for(event.pbx, interface_of(event.dest_channel)))

    def _on_dial_ended(self, event: ev.DialEnded) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None or event.status != "ANSWER":
            return []
        agent = self._agents.agent_for(event.pbx, interface_of(event.dest_channel))
        return self._agent_answered(state, agent, event.at)

    def _on_queue_joined(self, event: ev.QueueJoined) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        state.queue, state.queued = event.queue, True
        return self._qualify(state)

    def _on_queue_agent_ringing(self, event: ev.QueueAgentRinging) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        state.queue = state.queue or event.queue
        return self._agent_rang(state, self._agent_of_member(event.pbx, event.interface, event.dest_channel))

    def _on_queue_agent_connected(self, event: ev.QueueAgentConnected) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        agent = self._agent_of_member(event.pbx, event.interface, event.dest_channel)
        return self._agent_answered(state, agent, event.at)

    def _on_queue_caller_abandoned(self, event: ev.QueueCallerAbandoned) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is not None and state.answered_at is None:
            state.abandoned = True
        return []

    def _on_call_transferred(self, event: ev.CallTransferred) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is not None:
            state.transfers += 1
        return []

    # -- what the caller chose in the IVR ---------------------------------------
    # Recorded on the call as it goes; made before the call is routed (the usual case), a
    # choice is in the CallQualified snapshot that the ticket is prefilled from.

    def _on_user_event(self, event: ev.UserEventReceived) -> list[CallUpdate]:
        if event.name != IVR_CHOICE_EVENT:
            return []
        # Header names as the dialplan wrote them; compare without case to forgive `menu:`.
        headers = {name.lower(): value for name, value in event.fields}
        menu, choice = headers.get(IVR_MENU_HEADER.lower()), headers.get(IVR_CHOICE_HEADER.lower())
        if menu and choice:
            self._record_ivr_choice(event, menu, choice)
        return []

    def _on_variable_set(self, event: ev.ChannelVariableSet) -> list[CallUpdate]:
        routing = self._routing.get(event.pbx)
        if routing is not None and event.variable in routing.ivr_variables:
            self._record_ivr_choice(event, event.variable, event.value)
        return []

    def _record_ivr_choice(self, event: ev.ChannelEvent, menu: str, choice: str) -> None:
        state, _ = self._find(event)
        if state is not None:
            state.ivr_choices.append((menu, choice))

    # -- resync after (re)connect -------------------------------------------

    def _on_live_channels_listed(self, event: ev.LiveChannelsListed) -> list[CallUpdate]:
        by_call: dict[str, list[ev.LiveChannel]] = {}
        for live in event.channels:
            by_call.setdefault(live.linkedid, []).append(live)
        updates: list[CallUpdate] = []
        for key, state in list(self._calls.items()):
            if key.pbx != event.pbx or key.linkedid in by_call:
                continue
            # Seen after we asked: born after the list was made, not gone.
            if state.last_seen < event.requested_at:
                outcome = Outcome.ANSWERED if state.answered_at is not None else Outcome.LOST
                updates += self._end(state, event.at, outcome)
        for linkedid, lives in by_call.items():
            updates += self._adopt(event, CallKey(event.pbx, linkedid), lives)
        return updates

    def _adopt(
        self, event: ev.LiveChannelsListed, key: CallKey, lives: list[ev.LiveChannel]
    ) -> list[CallUpdate]:
        """Bring a call the PBX says is live up to date, creating it if we never saw it."""
        state = self._calls.get(key)
        if state is None:
            started = event.at - max(live.duration_seconds for live in lives)
            state = self._calls[key] = _CallState(key=key, started_at=started, last_seen=event.at)
        listed = {live.uniqueid for live in lives}
        for uniqueid in [
            u for u, ch in state.channels.items() if u not in listed and ch.last_seen < event.requested_at
        ]:
            del state.channels[uniqueid]
        for live in lives:
            channel = state.channels.get(live.uniqueid)
            if channel is None:
                state.channels[live.uniqueid] = _Channel(
                    live.channel,
                    live.context,
                    live.exten,
                    live.caller_number,
                    live.caller_name,
                    event.at,
                )
            else:
                channel.context, channel.exten = live.context, live.exten
        if state.inbound_uniqueid is None:
            inbound = self._inbound_of_listed(event.pbx, lives)
            if inbound is not None:
                self._classify(state, inbound.uniqueid, confirmed=True)
        announced: list[str] = []
        for live in lives:
            if live.application == "Queue" and state.queue is None:
                state.queue, state.queued = live.application_data.split(",", 1)[0], True
            if live.recording and live.recording not in state.recordings:
                state.recordings.append(live.recording)
                announced.append(live.recording)
        was_qualified = state.qualified
        updates = self._qualify(state)
        if was_qualified:  # a new call carries its recordings in CallQualified
            updates += [RecordingAnnounced(state.snapshot(), path) for path in announced]
        for live in lives:
            agent = self._agents.agent_for(event.pbx, interface_of(live.channel))
            if agent is None:
                continue
            if live.up and live.bridged:
                updates += self._agent_answered(state, agent, event.at)
            else:
                updates += self._agent_rang(state, agent)
        return updates

    def _inbound_of_listed(self, pbx: str, lives: list[ev.LiveChannel]) -> ev.LiveChannel | None:
        routing = self._routing.get(pbx)
        if routing is None:
            return None
        candidates = [
            live
            for live in lives
            if routing.is_inbound(live.context, live.exten)
            and live.application_data != "(Outgoing Line)"
            and self._agents.agent_for(pbx, interface_of(live.channel)) is None
        ]
        # Of a Local pair both parked in the inbound context, the later half runs the dialplan.
        return max(candidates, key=lambda live: _uniqueid_order(live.uniqueid), default=None)

    # -- shared steps --------------------------------------------------------

    def _find(self, event: ev.ChannelEvent) -> tuple[_CallState, _Channel | None] | tuple[None, None]:
        state = self._calls.get(CallKey(event.pbx, event.linkedid))
        if state is None:
            return None, None
        state.last_seen = event.at
        channel = state.channels.get(event.uniqueid)
        if channel is not None:
            channel.last_seen = event.at
        return state, channel

    def _classify(self, state: _CallState, uniqueid: str, *, confirmed: bool) -> None:
        """Decide which channel, if any, is the caller's leg into an inbound context."""
        channel = state.channels[uniqueid]
        routing = self._routing.get(state.key.pbx)
        if routing is None:
            return
        if channel.context in routing.outbound_contexts:
            state.outbound = True
        if state.inbound_confirmed or state.qualified:
            return
        if not routing.is_inbound(channel.context, channel.exten):
            return
        if self._agents.agent_for(state.key.pbx, interface_of(channel.channel)) is not None:
            return  # an agent's own leg is never the caller's
        if state.inbound_uniqueid is None or confirmed:
            state.inbound_uniqueid, state.inbound_confirmed = uniqueid, confirmed
            state.did = channel.exten
            state.caller_number, state.caller_name = channel.caller_number, channel.caller_name

    def _qualify(self, state: _CallState) -> list[CallUpdate]:
        if state.qualified or state.inbound_uniqueid is None:
            return []
        state.qualified = True
        return [CallQualified(state.snapshot())]

    def _agent_of_member(self, pbx: str, interface: str, dest_channel: str) -> str | None:
        return self._agents.agent_for(pbx, interface) or self._agents.agent_for(
            pbx, interface_of(dest_channel)
        )

    def _agent_rang(self, state: _CallState, agent: str | None) -> list[CallUpdate]:
        if agent is None or agent in state.rang:
            return []
        updates = self._qualify(state)
        state.rang.append(agent)
        if state.qualified:
            updates.append(AgentRang(state.snapshot(), agent))
        return updates

    def _agent_answered(self, state: _CallState, agent: str | None, at: float) -> list[CallUpdate]:
        if agent is None or agent in state.answered_by:
            return []
        updates = self._agent_rang(state, agent)
        state.answered_by.add(agent)
        state.agent_id = agent
        if state.answered_at is None:
            state.answered_at = at
        if state.qualified:
            updates.append(AgentAnswered(state.snapshot(), agent))
        return updates

    def _end(self, state: _CallState, at: float, outcome: Outcome) -> list[CallUpdate]:
        del self._calls[state.key]
        updates = self._qualify(state)
        updates.append(CallEnded(state.snapshot(ended_at=at, outcome=outcome)))
        return updates


def _uniqueid_order(uniqueid: str) -> tuple[int, int]:
    epoch, _, sequence = uniqueid.partition(".")
    try:
        return int(epoch), int(sequence or 0)
    except ValueError:
        return 0, 0
