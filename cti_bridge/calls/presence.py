"""Agents' states as the PBX's queues know them: logged in (a queue member), paused, and why.

Fed by QueueMemberAdded / Removed / Pause events and, after every (re)connect, the QueueStatus
list, which replaces what was known of that PBX. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cti_bridge.calls import events as ev
from cti_bridge.calls.agents import AgentDirectory


class AgentStatus(StrEnum):
    LOGGED_IN = "logged_in"  # a member of at least one queue, not paused in all of them
    PAUSED = "paused"  # paused in every queue they are in
    LOGGED_OUT = "logged_out"  # in no queue (after having been seen in one)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMembership:
    queue: str
    paused: bool
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentState:
    agent_id: str
    status: AgentStatus
    queues: tuple[QueueMembership, ...] = ()
    since: float = 0.0  # when the status last changed

    @property
    def pause_reason(self) -> str:
        return next((m.reason for m in self.queues if m.paused and m.reason), "")


@dataclass(slots=True)
class _Agent:
    queues: dict[tuple[str, str], QueueMembership] = field(default_factory=dict)  # (pbx, queue) ->
    status: AgentStatus = AgentStatus.LOGGED_OUT
    since: float = 0.0


class AgentPresence:
    """Who is logged in and who is paused, per agent, across the PBXs."""

    def __init__(self, agents: AgentDirectory) -> None:
        self._directory = agents
        self._agents: dict[str, _Agent] = {}

    def apply(self, event: ev.QueueMemberChanged | ev.QueueMembersListed) -> list[AgentState]:
        """Apply a change or a PBX's full list; the agents whose status or queues changed."""
        if isinstance(event, ev.QueueMembersListed):
            touched = {a for a, entry in self._agents.items() if any(p == event.pbx for p, _ in entry.queues)}
            for entry in self._agents.values():
                entry.queues = {k: v for k, v in entry.queues.items() if k[0] != event.pbx}
            for member in event.members:
                agent = self._member_agent(member)
                if agent is not None:
                    self._set(agent, member)
                    touched.add(agent)
            return [self._settle(agent, event.at) for agent in sorted(touched)]
        agent = self._member_agent(event)
        if agent is None:
            return []
        if event.logged_in:
            self._set(agent, event)
        else:
            self._agents.setdefault(agent, _Agent()).queues.pop((event.pbx, event.queue), None)
        return [self._settle(agent, event.at)]

    def state(self, agent_id: str) -> AgentState | None:
        """None: the queues never mentioned this agent (the PBX may not use queue logins)."""
        entry = self._agents.get(agent_id)
        return None if entry is None else self._view(agent_id, entry)

    def states(self) -> list[AgentState]:
        return [self._view(agent, entry) for agent, entry in sorted(self._agents.items())]

    def unavailable(self) -> dict[str, AgentStatus]:
        """Agents known to be logged out or paused everywhere: no callbacks for them."""
        return {a: e.status for a, e in self._agents.items() if e.status is not AgentStatus.LOGGED_IN}

    def _member_agent(self, member: ev.QueueMemberChanged) -> str | None:
        return self._directory.agent_of_channel(
            member.pbx, member.interface
        ) or self._directory.agent_of_channel(member.pbx, member.state_interface)

    def _set(self, agent: str, member: ev.QueueMemberChanged) -> None:
        entry = self._agents.setdefault(agent, _Agent())
        entry.queues[(member.pbx, member.queue)] = QueueMembership(
            queue=member.queue, paused=member.paused, reason=member.reason if member.paused else ""
        )

    def _status(self, entry: _Agent) -> AgentStatus:
        if not entry.queues:
            return AgentStatus.LOGGED_OUT
        return AgentStatus.PAUSED if all(m.paused for m in entry.queues.values()) else AgentStatus.LOGGED_IN

    def _settle(self, agent: str, at: float) -> AgentState:
        entry = self._agents.setdefault(agent, _Agent())
        status = self._status(entry)
        if status is not entry.status:
            entry.status, entry.since = status, at
        return self._view(agent, entry)

    def _view(self, agent: str, entry: _Agent) -> AgentState:
        queues = tuple(sorted(entry.queues.values(), key=lambda m: m.queue))
        return AgentState(agent_id=agent, status=entry.status, queues=queues, since=entry.since)
