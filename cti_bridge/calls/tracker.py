"""Assembles calls from channel events keyed by Linkedid. Pure: no I/O, no clock, no logging.

Feed it domain events in arrival order; it answers with what happened to calls
(`CallUpdate`s) for the services to act on.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from cti_bridge.calls import events as ev
from cti_bridge.calls.agents import AgentDirectory, interface_of
from cti_bridge.calls.model import (
    AgentAnswered,
    AgentRang,
    AgentRingStopped,
    Call,
    CallEnded,
    CallKey,
    CallQualified,
    CallUpdate,
    DialplanReported,
    Direction,
    Outcome,
    RecordingAnnounced,
    RingEnd,
    Transfer,
    TransferKind,
    Transferred,
)
from cti_bridge.calls.user_events import UserEventRules

# Applications on the far half of a Local channel or an outgoing leg: these channels
# do not run the inbound dialplan themselves.
_OUTGOING_LEG_APPS = frozenset({"AppDial", "AppDial2", "AppQueue"})
# DialEnd statuses that mean the phone rang out or could not ring; CANCEL waits for what
# explains it (another agent answered, the caller hung up, the queue moved on).
_RANG_OUT = frozenset({"NOANSWER", "BUSY", "CHANUNAVAIL", "CONGESTION"})
# The called number inside a dial string: `5551234@trunk`, `trunk/+8613800138000`,
# `trunk/sip:5551234@10.0.0.1:5060`. The longest run of digits (an address's are short).
_DIGIT_RUN = re.compile(r"\+?\d{3,}")


@dataclass(frozen=True, slots=True)
class PbxRouting:
    """What the tracker must know of one PBX's dialplan: how to tell an inbound call, which
    channel variables hold the caller's IVR choices, and which names the call's ticket."""

    inbound_contexts: frozenset[str]
    outbound_contexts: frozenset[str] = frozenset()
    inbound_dids: frozenset[str] = frozenset()
    ivr_variables: frozenset[str] = frozenset()
    ticket_variable: str | None = "CTI_TICKET"

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
    origin_agent: str | None = None  # the call began on this agent's phone
    customer_uniqueid: str | None = None  # an outbound call's leg to the customer
    qualified: bool = False
    answered_at: float | None = None
    agent_id: str | None = None  # with the caller now
    agent_uniqueid: str | None = None  # that agent's leg, while it lasts
    rang: list[str] = field(default_factory=list)
    ringing: dict[str, str] = field(default_factory=dict)  # agent -> their ringing leg
    consulted: dict[str, str] = field(default_factory=dict)  # agent -> answered consultation leg
    queued: bool = False
    abandoned: bool = False
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    recordings: list[str] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    pending_transfer: Transfer | None = None  # made, nobody has taken the caller yet
    transfer_untold: bool = False  # a blind transfer waits to be told until it has somewhere
    ivr_choices: list[tuple[str, str]] = field(default_factory=list)
    reported_fields: dict[str, str] = field(default_factory=dict)
    ticket_hint: str | None = None

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
            placed_by=self.origin_agent if self.direction is not Direction.INBOUND else None,
            transfers=tuple(self.transfers),
            ivr_choices=tuple(self.ivr_choices),
            reported_fields=tuple(self.reported_fields.items()),
            ticket_hint=self.ticket_hint,
        )
        return dataclasses.replace(call, **changes) if changes else call

    def final_outcome(self) -> Outcome:
        if self.answered_at is not None:
            return Outcome.ANSWERED
        if self.direction is Direction.OUTBOUND:
            return Outcome.NO_ANSWER
        if self.abandoned:
            return Outcome.ABANDONED
        if self.rang or self.queued:
            return Outcome.MISSED
        return Outcome.IVR

    @property
    def agent_on_line(self) -> bool:
        """An agent is with the caller now (their leg is still up)."""
        return self.agent_id is not None and self.agent_uniqueid in self.channels


class CallTracker:
    """Live calls of every PBX, assembled from their channels' events."""

    def __init__(
        self,
        routing: dict[str, PbxRouting],
        agents: AgentDirectory,
        user_events: UserEventRules | None = None,
    ) -> None:
        self._routing = routing
        self._agents = agents
        self._user_events = user_events or UserEventRules()
        self._calls: dict[CallKey, _CallState] = {}
        self._booted_at: dict[str, float] = {}  # PBX -> when it last started (FullyBooted)
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
            ev.QueueAgentRingNoAnswer: self._on_ring_no_answer,
            ev.QueueCallerAbandoned: self._on_queue_caller_abandoned,
            ev.ChannelHungUp: self._on_channel_hung_up,
            ev.CallTransferred: self._on_call_transferred,
            ev.UserEventReceived: self._on_user_event,
            ev.ChannelVariableSet: self._on_variable_set,
            ev.PbxBooted: self._on_pbx_booted,
            ev.LiveChannelsListed: self._on_live_channels_listed,
        }

    def handle(self, event: ev.CallEvent) -> list[CallUpdate]:
        """Apply one event; return what it changed, in order."""
        handler = self._handlers.get(type(event))
        return handler(event) if handler is not None else []

    @property
    def live_calls(self) -> list[Call]:
        return [state.snapshot() for state in self._calls.values()]

    def open_unrouted(self) -> list[CallUpdate]:
        """Qualify every live call that is not yet (still in the IVR, say): the daemon is
        stopping. Such a call is known only here until it reaches a queue or an agent or ends;
        one that ended while the daemon was down would never get a ticket. Opened now, the
        next start finds it in the store and the resync closes or continues it."""
        updates: list[CallUpdate] = []
        for state in self._calls.values():
            updates += self._qualify(state)
        return updates

    def booted_at(self, pbx: str) -> float | None:
        """When the PBX last started, as it said at our last login (None: not known)."""
        return self._booted_at.get(pbx)

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
        if event.uniqueid == event.linkedid:
            # The call's first channel: an agent's phone here means the agent placed the call.
            state.origin_agent = self._agents.agent_of_channel(event.pbx, event.channel)
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
        updates: list[CallUpdate] = []
        for consulted, leg in list(state.consulted.items()):
            if leg == event.uniqueid:
                # The consultation ended without a transfer: the colleague's pop is withdrawn.
                del state.consulted[consulted]
                updates += self._ring_stopped(state, consulted, RingEnd.CONSULTATION_ENDED)
        if event.uniqueid == state.inbound_uniqueid or state.hangup_cause is None:
            state.hangup_cause, state.hangup_cause_text = event.cause, event.cause_text
        if event.uniqueid == state.inbound_uniqueid:
            updates += self._stop_ringing(state, RingEnd.CALLER_HUNG_UP)
        if state.channels:
            return updates
        return updates + self._end(state, event.at, state.final_outcome())

    # -- routing to agents ---------------------------------------------------

    def _on_dial_started(self, event: ev.DialStarted) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        agent = self._agents.agent_of_channel(event.pbx, event.dest_channel)
        if agent is not None:
            if agent == state.origin_agent and state.direction is not Direction.INBOUND:
                return []  # a click-to-dial rings the agent's own phone first
            if state.origin_agent is not None and not state.qualified:
                return []  # an agent calling another: an internal call
            # Also the agent with the caller consulting a colleague (an attended transfer's
            # first half): the colleague's phone rings for this call.
            return self._ring(state, agent, event.dest_uniqueid)
        if state.direction is Direction.INBOUND:
            return []
        if state.customer_uniqueid is not None:
            # A dial through a Local channel (an outbound macro, a dial-out context) reaches the
            # trunk in a second dial: that one names the number as the trunk gets it.
            through_local = _is_local(state.channels.get(state.customer_uniqueid))
            if not through_local or _is_local_name(event.dest_channel):
                return []
            state.customer_uniqueid = event.dest_uniqueid
            state.caller_number = _dialled_number(event) or state.caller_number
            return []
        if state.origin_agent is None and not state.outbound:
            return []
        # An agent's call (or one from an outbound context) dials out: that is the customer.
        state.outbound = True
        state.customer_uniqueid = event.dest_uniqueid
        state.caller_number = _dialled_number(event) or state.caller_number
        state.caller_name = None
        updates = self._qualify(state)
        if state.origin_agent is not None:
            updates += self._agent_rang(state, state.origin_agent)
        return updates

    def _on_dial_ended(self, event: ev.DialEnded) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        if state.customer_uniqueid is not None and event.dest_uniqueid == state.customer_uniqueid:
            if event.status != "ANSWER" or state.origin_agent is None:
                return []
            # The agent's leg is the call's first channel, their phone (its uniqueid is the Linkedid).
            return self._agent_answered(state, state.origin_agent, event.at, state.key.linkedid)
        agent = self._agents.agent_of_channel(event.pbx, event.dest_channel)
        if agent is None or agent not in state.ringing:
            return []
        if event.status == "ANSWER":
            if state.agent_on_line and agent != state.agent_id:
                del state.ringing[agent]
                state.consulted[agent] = event.dest_uniqueid
                return []
            return self._agent_answered(state, agent, event.at, event.dest_uniqueid)
        if event.status in _RANG_OUT:
            del state.ringing[agent]
            return self._ring_stopped(state, agent, RingEnd.NO_ANSWER)
        return []

    def _on_queue_joined(self, event: ev.QueueJoined) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        updates: list[CallUpdate] = []
        if state.answered_at is not None and state.agent_id is not None:
            # An answered caller routed to a queue again: a blind transfer (known from its
            # event) or a redirect (which sends no transfer event at all).
            transfer = state.pending_transfer
            if transfer is None:
                transfer = Transfer(
                    kind=TransferKind.REDIRECT, at=event.at, from_agent=state.agent_id, to_queue=event.queue
                )
                updates += self._transferred(state, transfer)
            else:
                self._replace_transfer(state, dataclasses.replace(transfer, to_queue=event.queue))
                updates += self._tell_transfer(state)
        state.queue, state.queued = event.queue, True
        return updates + self._qualify(state)

    def _on_queue_agent_ringing(self, event: ev.QueueAgentRinging) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        state.queue = state.queue or event.queue
        agent = self._agent_of_member(event.pbx, event.interface, event.dest_channel)
        return self._ring(state, agent, event.dest_uniqueid)

    def _on_queue_agent_connected(self, event: ev.QueueAgentConnected) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        agent = self._agent_of_member(event.pbx, event.interface, event.dest_channel)
        return self._agent_answered(state, agent, event.at, event.dest_uniqueid or None)

    def _on_ring_no_answer(self, event: ev.QueueAgentRingNoAnswer) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        agent = self._agent_of_member(event.pbx, event.interface, event.dest_channel)
        if agent is None or state.ringing.pop(agent, None) is None:
            return []
        return self._ring_stopped(state, agent, RingEnd.NO_ANSWER)

    def _on_queue_caller_abandoned(self, event: ev.QueueCallerAbandoned) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None or state.answered_at is not None:
            return []
        state.abandoned = True
        return self._stop_ringing(state, RingEnd.CALLER_HUNG_UP)

    def _on_call_transferred(self, event: ev.CallTransferred) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        from_agent = self._agents.agent_of_channel(event.pbx, event.transferer_channel) or state.agent_id
        if event.kind == TransferKind.BLIND:
            transfer = Transfer(
                kind=TransferKind.BLIND, at=event.at, from_agent=from_agent, target=event.target
            )
            # Told once it is known where the caller went: the queue they join, or the agent
            # who takes them (or the call's end, if they hang up first).
            self._transferred(state, transfer)
            state.transfer_untold = True
            return []
        # Attended: the caller is now with the colleague the agent consulted, who got no
        # AgentConnect of their own: the target channel's agent, else the one consulted last.
        target = self._agents.agent_of_channel(event.pbx, event.target_channel)
        if target in (None, from_agent):
            target = next(reversed(state.consulted), None)
        leg = state.consulted.get(target) if target is not None else None
        transfer = Transfer(
            kind=TransferKind.ATTENDED,
            at=event.at,
            from_agent=from_agent,
            to_agent=target,
            target=event.target,
        )
        updates = self._transferred(state, transfer)
        if target is not None:
            state.consulted.pop(target, None)
            updates += self._agent_answered(state, target, event.at, leg)
        return updates

    # -- what the dialplan says about the call ------------------------------------
    # Recorded on the call as it goes; made before the call is routed (the usual case), an IVR
    # choice is in the CallQualified snapshot that the ticket is prefilled from.

    def _on_user_event(self, event: ev.UserEventReceived) -> list[CallUpdate]:
        reading = self._user_events.read(event)
        if not (reading.ivr_choices or reading.fields):
            return []
        state, _ = self._find(event)
        if state is None:
            return []
        state.ivr_choices += reading.ivr_choices
        state.reported_fields.update(reading.fields)
        # Told after the ticket was opened: the ticket learns it now.
        return [DialplanReported(state.snapshot())] if state.qualified else []

    def _on_variable_set(self, event: ev.ChannelVariableSet) -> list[CallUpdate]:
        routing = self._routing.get(event.pbx)
        if routing is None:
            return []
        if event.variable in routing.ivr_variables:
            return self._record_ivr_choice(event, event.variable, event.value)
        if event.variable == routing.ticket_variable:
            state, _ = self._find(event)
            if state is not None:
                state.ticket_hint = event.value.strip() or None
        return []

    def _record_ivr_choice(self, event: ev.ChannelEvent, menu: str, choice: str) -> list[CallUpdate]:
        state, _ = self._find(event)
        if state is None:
            return []
        state.ivr_choices.append((menu, choice))
        return [DialplanReported(state.snapshot())] if state.qualified else []

    # -- resync after (re)connect -------------------------------------------

    def _on_pbx_booted(self, event: ev.PbxBooted) -> list[CallUpdate]:
        self._booted_at[event.pbx] = event.booted_at
        return []

    def _on_live_channels_listed(self, event: ev.LiveChannelsListed) -> list[CallUpdate]:
        by_call: dict[str, list[ev.LiveChannel]] = {}
        for live in event.channels:
            by_call.setdefault(live.linkedid, []).append(live)
        booted_at = self._booted_at.get(event.pbx)
        updates: list[CallUpdate] = []
        for key, state in list(self._calls.items()):
            if key.pbx != event.pbx or key.linkedid in by_call:
                continue
            # Seen after we asked: born after the list was made, not gone.
            if state.last_seen >= event.requested_at:
                continue
            if booted_at is not None and state.last_seen < booted_at:
                # The PBX restarted since we last heard of the call: it was cut then, and no
                # hangup will ever come. It lasted as far as its last event.
                updates += self._end(state, state.last_seen, Outcome.INTERRUPTED)
            else:
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
        if state.direction is not Direction.INBOUND:
            return updates
        for live in lives:
            agent = self._agents.agent_of_channel(event.pbx, live.channel)
            if agent is None:
                continue
            if live.up and live.bridged:
                updates += self._agent_answered(state, agent, event.at, live.uniqueid)
            else:
                updates += self._ring(state, agent, live.uniqueid)
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
            and self._agents.agent_of_channel(pbx, live.channel) is None
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
        if channel.context in routing.outbound_contexts and state.inbound_uniqueid is None:
            state.outbound = True
        if state.inbound_confirmed or state.qualified or state.origin_agent is not None:
            return  # a call an agent placed is theirs, whatever contexts it passes through
        if not routing.is_inbound(channel.context, channel.exten):
            return
        if self._agents.agent_of_channel(state.key.pbx, channel.channel) is not None:
            return  # an agent's own leg is never the caller's
        if state.inbound_uniqueid is None or confirmed:
            state.inbound_uniqueid, state.inbound_confirmed = uniqueid, confirmed
            state.outbound = False
            state.did = channel.exten
            state.caller_number, state.caller_name = channel.caller_number, channel.caller_name

    def _qualify(self, state: _CallState) -> list[CallUpdate]:
        if state.qualified:
            return []
        if state.inbound_uniqueid is None and not (state.outbound and state.caller_number):
            return []
        state.qualified = True
        return [CallQualified(state.snapshot())]

    def _agent_of_member(self, pbx: str, interface: str, dest_channel: str) -> str | None:
        return self._agents.agent_for(pbx, interface) or self._agents.agent_for(
            pbx, interface_of(dest_channel)
        )

    def _ring(self, state: _CallState, agent: str | None, leg: str) -> list[CallUpdate]:
        """The agent's phone rings for the call (again, after a ring-out: a new pop)."""
        if agent is None or agent in state.ringing or (agent == state.agent_id and state.agent_on_line):
            return []
        state.ringing[agent] = leg
        if agent not in state.rang:
            return self._agent_rang(state, agent)
        return [AgentRang(state.snapshot(), agent)] if state.qualified else []

    def _agent_rang(self, state: _CallState, agent: str | None) -> list[CallUpdate]:
        if agent is None or agent in state.rang:
            return []
        updates = self._qualify(state)
        state.rang.append(agent)
        if state.qualified:
            updates.append(AgentRang(state.snapshot(), agent))
        return updates

    def _ring_stopped(self, state: _CallState, agent: str, why: RingEnd) -> list[CallUpdate]:
        return [AgentRingStopped(state.snapshot(), agent, why)] if state.qualified else []

    def _stop_ringing(self, state: _CallState, why: RingEnd, but: str | None = None) -> list[CallUpdate]:
        """Every agent still ringing for the call stops (but `but`, who took it)."""
        stopped = [agent for agent in state.ringing if agent != but]
        for agent in stopped:
            del state.ringing[agent]
        return [update for agent in stopped for update in self._ring_stopped(state, agent, why)]

    def _agent_answered(
        self, state: _CallState, agent: str | None, at: float, leg: str | None
    ) -> list[CallUpdate]:
        if agent is None:
            return []
        if agent == state.agent_id and (state.agent_on_line or state.pending_transfer is None):
            if leg is not None:
                state.agent_uniqueid = leg
            return []  # already with the caller (a resync, or a DialEnd before AgentConnect)
        updates: list[CallUpdate] = []
        if state.agent_id is not None and agent != state.agent_id:
            # Someone else takes a caller another agent had: a transfer, told or not.
            transfer = state.pending_transfer or next(
                (t for t in reversed(state.transfers) if t.to_agent == agent), None
            )
            if transfer is None:
                transfer = Transfer(kind=TransferKind.REDIRECT, at=at, from_agent=state.agent_id)
                updates += self._transferred(state, transfer)
            if transfer.to_agent != agent:
                self._replace_transfer(state, dataclasses.replace(transfer, to_agent=agent))
            updates += self._tell_transfer(state)
        state.pending_transfer = None
        state.ringing.pop(agent, None)
        updates += self._stop_ringing(state, RingEnd.ANSWERED_ELSEWHERE)
        updates += self._agent_rang(state, agent)
        state.agent_id, state.agent_uniqueid = agent, leg
        if state.answered_at is None:
            state.answered_at = at
        if state.qualified:
            updates.append(AgentAnswered(state.snapshot(), agent))
        return updates

    def _transferred(self, state: _CallState, transfer: Transfer) -> list[CallUpdate]:
        state.transfers.append(transfer)
        state.pending_transfer = transfer if transfer.to_agent is None else None
        return [Transferred(state.snapshot(), transfer)] if state.qualified else []

    def _tell_transfer(self, state: _CallState) -> list[CallUpdate]:
        """Announce the latest transfer if it was held back until its destination was known."""
        if not state.transfer_untold or not state.transfers:
            return []
        state.transfer_untold = False
        return [Transferred(state.snapshot(), state.transfers[-1])] if state.qualified else []

    def _replace_transfer(self, state: _CallState, transfer: Transfer) -> None:
        """Complete the latest transfer with what became known (the queue, the agent)."""
        if state.transfers:
            state.transfers[-1] = transfer
        if state.pending_transfer is not None:
            state.pending_transfer = transfer if transfer.to_agent is None else None

    def _end(self, state: _CallState, at: float, outcome: Outcome) -> list[CallUpdate]:
        del self._calls[state.key]
        updates = self._qualify(state)
        updates += self._tell_transfer(state)
        updates += self._stop_ringing(state, RingEnd.CALLER_HUNG_UP)
        updates.append(CallEnded(state.snapshot(ended_at=at, outcome=outcome)))
        return updates


def _is_local_name(channel: str) -> bool:
    return channel.startswith("Local/")


def _is_local(channel: _Channel | None) -> bool:
    return channel is not None and _is_local_name(channel.channel)


def _dialled_number(event: ev.DialStarted) -> str | None:
    """The number an outbound dial calls: from its dial string, else the far leg's caller id."""
    runs = _DIGIT_RUN.findall(event.dial_string)
    if runs:
        return max(runs, key=lambda run: len(run.lstrip("+")))
    return event.dest_caller_number


def _uniqueid_order(uniqueid: str) -> tuple[int, int]:
    epoch, _, sequence = uniqueid.partition(".")
    try:
        return int(epoch), int(sequence or 0)
    except ValueError:
        return 0, 0
