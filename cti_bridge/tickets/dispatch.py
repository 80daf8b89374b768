"""Which calls need a call back, who takes the callback ticket and why, which pending ticket goes first."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

from cti_bridge.calls.model import Call, Direction
from cti_bridge.calls.model import Outcome as CallOutcome
from cti_bridge.config.model import AgentConfig, Config, DispatchConfig
from cti_bridge.tickets.model import PRIORITIES
from cti_bridge.tickets.sla import BusinessCalendar

_LISTED = 8  # others named in an explanation; the full list stays in `candidates`


class CallbackReason(StrEnum):
    MISSED = "missed"  # agents rang, nobody answered
    ABANDONED = "abandoned"  # the caller gave up while queued
    AFTER_HOURS = "after_hours"  # came in while the business calendar was closed, no agent answered


class BusinessHours(Protocol):
    """When the call centre is open (tickets.sla.BusinessCalendar fits)."""

    def is_open(self, at: float) -> bool: ...


def callback_reason(call: Call, hours: BusinessHours | None) -> CallbackReason | None:
    """Why an ended inbound call needs a call back, or None if it does not.

    Missed and abandoned calls always do. A call that started outside business hours and that
    no agent answered (typically IVR or voicemail) does too; without a calendar (`hours` None)
    no call counts as after hours. A call whose end came in while the daemon was away (LOST)
    is called back only when after hours: during business hours an agent may well have had it.
    """
    if call.direction is not Direction.INBOUND or call.answered_at is not None:
        return None
    if call.outcome is CallOutcome.MISSED:
        return CallbackReason.MISSED
    if call.outcome is CallOutcome.ABANDONED:
        return CallbackReason.ABANDONED
    if call.outcome is not CallOutcome.ANSWERED and hours is not None and not hours.is_open(call.started_at):
        return CallbackReason.AFTER_HOURS
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackPolicy:
    """What the daemon needs to dispatch callbacks: which calls, who takes them, how speed is measured."""

    dispatcher: Dispatcher
    hours: BusinessHours | None  # None: no calendar, so no call is after hours
    response_window: float  # seconds: an agent's median first response is over tickets this recent

    @classmethod
    def from_config(cls, config: Config) -> CallbackPolicy:
        calendar = config.sla.calendar
        return cls(
            dispatcher=Dispatcher.from_config(config),
            hours=BusinessCalendar.from_config(calendar) if calendar is not None else None,
            response_window=config.dispatch.response_window.total_seconds(),
        )

    def reason(self, call: Call) -> CallbackReason | None:
        return callback_reason(call, self.hours)


class Availability(StrEnum):
    AVAILABLE = "available"
    ON_CALL = "on_call"  # can take a callback once the call ends
    PAUSED = "paused"
    LOGGED_OFF = "logged_off"


_CAN_TAKE = frozenset({Availability.AVAILABLE, Availability.ON_CALL})


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoad:
    """An agent's state at dispatch time, as the caller measured it."""

    agent_id: str
    availability: Availability
    open_tickets: int
    median_response: float | None = None  # seconds to first response, recent tickets; None = unknown


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackRequest:
    """What the dispatcher needs to know about the ticket to place."""

    category: str | None  # path, e.g. 技术故障/网络问题/登录异常
    queue: str | None
    vip: bool = False


class Outcome(StrEnum):
    ASSIGNED = "assigned"  # to the best qualified agent
    TO_SUPERVISOR = "to_supervisor"  # nobody qualified: the team's supervisor has it
    QUEUED = "queued"  # nobody qualified: unassigned, in the team's queue (or the general one)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    agent_id: str
    eligible: bool
    score: float | None  # lower is better; None when not eligible
    notes: tuple[str, ...]  # why, e.g. "skill 网络 matches", "load 3/10", "at load cap (10/10)"

    def describe(self) -> str:
        return f"{self.agent_id}: {', '.join(self.notes)}" if self.notes else self.agent_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    outcome: Outcome
    assignee: str | None
    team: str | None
    required_skills: tuple[str, ...]
    candidates: tuple[Candidate, ...]  # eligible best first, then the others by id
    explanation: str  # one line for the ticket history


@dataclass(frozen=True, slots=True, kw_only=True)
class _Agent:
    id: str
    skills: frozenset[str]
    team: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Dispatcher:
    """Chooses among agents by skills, load, response speed and availability.

    Only agents who hold every skill the ticket needs, can take work now and are under
    their load cap are eligible; VIP tickets go to the VIP team, which takes no others. Among the eligible
    the lowest score wins: load weight x open/cap + response weight x speed, speed being
    median/reference (at most 1). An agent with no response history (new, or nothing in the
    window) is scored at the median speed of those in the pool who have one, and when nobody
    has, speed counts for nobody: an unknown must not weigh more than a known load, or a new
    agent with nothing to do loses the callback to a fast one with a pile of tickets. Ties go
    to fewer open tickets, then to the agent id, so the same input always gives the same answer.
    """

    config: DispatchConfig
    agents: tuple[_Agent, ...]
    supervisors: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> Dispatcher:
        return cls(
            config=config.dispatch,
            agents=tuple(_agent(agent) for agent in config.agents),
            supervisors={t.name: t.supervisor for t in config.teams if t.supervisor is not None},
        )

    def required_skills(self, request: CallbackRequest) -> tuple[str, ...]:
        """Skills of the longest configured prefix of the category, plus those of the queue."""
        skills: list[str] = []
        if request.category:
            parts = [p.strip() for p in request.category.split("/")]
            best = max(
                (
                    key
                    for key in self.config.skills.by_category
                    if (keyparts := [p.strip() for p in key.split("/")]) == parts[: len(keyparts)]
                ),
                key=lambda key: len(key.split("/")),
                default=None,
            )
            if best is not None:
                skills += self.config.skills.by_category[best]
        if request.queue:
            skills += self.config.skills.by_queue.get(request.queue, [])
        return tuple(dict.fromkeys(skills))

    def choose(self, request: CallbackRequest, loads: Mapping[str, AgentLoad]) -> Assignment:
        """Pick the assignee of a callback ticket.

        Args:
            request: the ticket's category, queue and whether the customer is a VIP.
            loads: agent id -> availability, open tickets and median response; an agent
                missing here is taken as logged off.

        Returns:
            The outcome, the assignee (None when queued), the team, the skills looked for,
            every candidate with its score and notes, and a one-line explanation.
        """
        needed = self.required_skills(request)
        vip_team = self.config.vip_team
        team = vip_team if request.vip and vip_team else self.config.default_team
        # The VIP team is dedicated: it takes VIP customers' tickets, and only those.
        pool = [a for a in self.agents if vip_team is None or (a.team == vip_team) == request.vip]
        usual = self._usual_speed(loads.get(agent.id) for agent in pool)
        assessed = [self._assess(agent, needed, loads.get(agent.id), usual) for agent in pool]
        eligible = sorted((c for c in assessed if c.eligible), key=lambda c: (c.score, *_tiebreak(c, loads)))
        others = sorted((c for c in assessed if not c.eligible), key=lambda c: c.agent_id)
        candidates = (*eligible, *others)
        scope = f"in VIP team {team}" if request.vip and vip_team else "among the agents"
        if eligible:
            best = eligible[0]
            return Assignment(
                outcome=Outcome.ASSIGNED,
                assignee=best.agent_id,
                team=next(a.team for a in pool if a.id == best.agent_id),
                required_skills=needed,
                candidates=candidates,
                explanation=_explain(f"{best.describe()} (best {scope})", candidates[1:]),
            )
        supervisor = self.supervisors.get(team) if team is not None else None
        if self.config.when_nobody == "supervisor" and supervisor is not None:
            outcome, assignee, head = Outcome.TO_SUPERVISOR, supervisor, f"to supervisor {supervisor}"
        else:
            outcome, assignee = Outcome.QUEUED, None
            head = f"left in the {team} team queue" if team else "left unassigned"
        head += f": nobody {scope}" if not pool else f": nobody qualifies {scope}"
        return Assignment(
            outcome=outcome,
            assignee=assignee,
            team=team,
            required_skills=needed,
            candidates=candidates,
            explanation=_explain(head, candidates),
        )

    def _speed(self, median_response: float) -> float:
        """0 (instant) .. 1 (as slow as `response_reference`, or slower)."""
        return min(1.0, median_response / self._reference)

    def _usual_speed(self, loads: Iterable[AgentLoad | None]) -> float | None:
        """The median speed of the agents whose speed is known; None when nobody's is."""
        known = [
            self._speed(load.median_response) for load in loads if load and load.median_response is not None
        ]
        return statistics.median(known) if known else None

    def _assess(
        self, agent: _Agent, needed: Sequence[str], load: AgentLoad | None, usual_speed: float | None
    ) -> Candidate:
        cap = self.config.load_caps.get(agent.id, self.config.load_cap)
        missing = [skill for skill in needed if skill not in agent.skills]
        notes: list[str] = []
        blocked = False
        if missing:
            notes.append(f"lacks skill {', '.join(missing)}")
            blocked = True
        elif needed:
            notes.append(f"skill {', '.join(needed)} matches")
        if load is None:
            notes.append("no status known")
            return Candidate(agent_id=agent.id, eligible=False, score=None, notes=tuple(notes))
        if load.availability not in _CAN_TAKE:
            notes.append(load.availability.value.replace("_", " "))
            blocked = True
        if load.open_tickets >= cap:
            notes.append(f"at load cap ({load.open_tickets}/{cap})")
            blocked = True
        else:
            notes.append(f"load {load.open_tickets}/{cap}")
        if load.median_response is not None:
            notes.append(f"median response {_format_seconds(load.median_response)}")
            speed = self._speed(load.median_response)
        else:
            speed = usual_speed if usual_speed is not None else 0.0
            if not blocked:
                # Said in the explanation: "why not the fast agent?" is the question it answers.
                usual = f" (counted at the median, {_format_seconds(speed * self._reference)})"
                notes.append("no response history" + (usual if usual_speed is not None else ""))
        if load.availability is Availability.ON_CALL and not blocked:
            notes.append("on a call")
        score = None if blocked else self._score(load.open_tickets, cap, speed)
        return Candidate(agent_id=agent.id, eligible=not blocked, score=score, notes=tuple(notes))

    @property
    def _reference(self) -> float:
        return self.config.response_reference.total_seconds()

    def _score(self, open_tickets: int, cap: int, speed: float) -> float:
        weights = self.config.weights
        return round(weights.load * open_tickets / cap + weights.response * speed, 6)


def _agent(config: AgentConfig) -> _Agent:
    return _Agent(id=config.id, skills=frozenset(config.skills), team=config.team)


def _tiebreak(candidate: Candidate, loads: Mapping[str, AgentLoad]) -> tuple[int, str]:
    load = loads.get(candidate.agent_id)
    return (load.open_tickets if load is not None else 0, candidate.agent_id)


def _explain(head: str, rest: Sequence[Candidate]) -> str:
    listed = "; ".join(c.describe() for c in rest[:_LISTED])
    more = f"; and {len(rest) - _LISTED} more" if len(rest) > _LISTED else ""
    return f"{head}; {listed}{more}" if listed else head


def _format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{round(seconds)} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class Pending(Protocol):
    """A ticket waiting to be dispatched (Ticket fits)."""

    @property
    def id(self) -> int: ...

    @property
    def priority(self) -> str: ...

    @property
    def queue(self) -> str | None: ...

    @property
    def created_at(self) -> float: ...


PendingT = TypeVar("PendingT", bound=Pending)


def dispatch_order(tickets: Iterable[PendingT], urgent_queues: Iterable[str]) -> list[PendingT]:
    """Urgent queues first, then the more urgent priority, then the oldest (then the lowest id)."""
    urgent = frozenset(urgent_queues)
    return sorted(
        tickets,
        key=lambda t: (t.queue not in urgent, PRIORITIES.index(t.priority), t.created_at, t.id),
    )
