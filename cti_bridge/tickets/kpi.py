"""KPIs over a period from ticket histories alone: volumes, response and resolution times, FCR, CSAT, SLA.

Definitions (all wall-clock except SLA attainment, which uses each target's own clock):

- The population is the tickets *created* in the period; what happened to them up to `as_of`
  (the report's instant) counts, even after the period's end. Events after `as_of` are ignored.
- First response: the first of these by an agent (any actor but `system`, `sla`, `dispatch`):
  the answer of one of the ticket's calls (`call_answered`), `started`, a comment visible to the
  customer, `resolved`. Internal notes, assignments and field edits are not a response.
- Resolution time: creation to the *first* `resolved` (a reopened ticket keeps its first one).
- First-contact resolution (FCR): a resolved ticket with exactly one call, answered by an
  agent, never transferred and never reopened; the rate is over the tickets resolved so far.
- Transfers: `transferred` events; the rate is tickets with at least one over all tickets.
- Callbacks: tickets that became callback tickets (`callback_requested`); made: those an agent
  called back (`callback_made`, answered or not); time to callback: from the missed call to
  the first callback attempt (its `after_seconds`); answered: first attempts the customer took.
- Calls by outcome: every call's end (`call_ended`), e.g. answered, abandoned, no_answer
  (outbound), interrupted (cut by a PBX crash), counted by call, not by ticket.
- Reopen rate: resolved tickets reopened at least once, over the tickets resolved so far.
- CSAT: `csat` events' `data.score` (1-5); a ticket scored twice counts its last score.
  Satisfied = score >= 4.
- SLA attainment: per target, against the priority the ticket was *created* with (an
  escalation that raised it must not make the target it breached stricter); met / (met +
  breached); targets still running are `pending` and left out of the rate.
- Time in state: per status, the mean hours spent in it by the tickets that entered it (the
  current status counts up to `as_of`); `closed` is terminal and not measured.
- Percentiles are nearest-rank: p90 of n values is the ceil(0.9 n)-th smallest.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from cti_bridge.config.model import Config
from cti_bridge.tickets.model import TicketStatus
from cti_bridge.tickets.sla import (
    SlaPolicy,
    SlaState,
    StatusChange,
    TargetStatus,
    TicketSla,
    status_changes,
    ticket_sla,
)
from cti_bridge.tickets.workflow import EventKind, HistoryEvent

NON_AGENT_ACTORS = frozenset({"system", "sla", "dispatch"})
SATISFIED_FROM = 4
_RESPONSE_KINDS = frozenset({"call_answered", "started", "resolved"})


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One row of a ticket's history as stored: lifecycle events carry their statuses, call
    events none (the call path's `assigned` has them in `data`)."""

    at: float
    kind: str
    actor: str
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    from_status: TicketStatus | None = None
    to_status: TicketStatus | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketHistory:
    """A ticket's facts now and its whole history, oldest first."""

    id: int
    number: str
    status: TicketStatus
    priority: str
    category: str | None
    queue: str | None
    assignee: str | None
    created_at: float
    events: tuple[HistoryEntry, ...]
    ivr_path: str | None = None  # the caller's way through the IVR (the ivr_path field)


@dataclass(frozen=True, slots=True)
class Period:
    """Tickets created in [start, end), days counted in `timezone`."""

    start: float
    end: float
    timezone: tzinfo = UTC

    @classmethod
    def of_days(cls, first: date, last: date, timezone: tzinfo) -> Period:
        """The days `first` to `last`, both included, midnight to midnight in `timezone`.

        Raises:
            OverflowError: a day next to year 1 or 9999.
        """
        start = datetime.combine(first, time.min, timezone)
        end = datetime.combine(last + timedelta(days=1), time.min, timezone)
        return cls(start.timestamp(), end.timestamp(), timezone)


def business_zone(config: Config) -> tzinfo:
    """Where a report's days begin and end: the SLA calendar's zone, else this machine's."""
    calendar = config.sla.calendar
    if calendar is not None:
        return ZoneInfo(calendar.timezone)
    zone = datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone


@dataclass(frozen=True, slots=True)
class DurationStats:
    count: int
    mean: float | None  # seconds
    p50: float | None
    p90: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> DurationStats:
        ordered = sorted(values)
        if not ordered:
            return cls(0, None, None, None)
        return cls(len(ordered), sum(ordered) / len(ordered), _rank(ordered, 0.5), _rank(ordered, 0.9))


@dataclass(frozen=True, slots=True)
class Rate:
    hits: int
    total: int

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class SlaAttainment:
    met: int
    breached: int
    pending: int  # still running at as_of, not yet met or breached

    @property
    def rate(self) -> float | None:
        done = self.met + self.breached
        return self.met / done if done else None


@dataclass(frozen=True, slots=True)
class CsatSummary:
    count: int
    mean: float | None
    distribution: Mapping[int, int]  # score 1..5 -> tickets
    satisfied: Rate  # score >= 4 over scored tickets
    response: Rate  # scored over resolved tickets


@dataclass(frozen=True, slots=True)
class StateTime:
    tickets: int  # tickets that entered the status
    mean_hours: float
    total_hours: float


@dataclass(frozen=True, slots=True)
class AgentFigures:
    tickets: int  # tickets the agent holds (current assignee)
    resolved: int
    first_response: DurationStats
    csat_mean: float | None


@dataclass(frozen=True, slots=True)
class CallbackFigures:
    requested: int  # tickets that became callback tickets
    made: Rate  # called back at least once, over requested
    answered: Rate  # first callback attempts the customer answered, over made
    time_to_callback: DurationStats  # missed call -> first attempt


@dataclass(frozen=True, slots=True, kw_only=True)
class KpiReport:
    period: Period
    as_of: float
    tickets: int
    open: int
    resolved: int  # resolved at least once
    by_day: Mapping[str, int]
    by_category: Mapping[str, int]  # full path
    by_category_group: Mapping[str, int]  # top level (大类)
    by_queue: Mapping[str, int]
    by_priority: Mapping[str, int]  # at creation, as SLA attainment judges it
    by_agent: Mapping[str, AgentFigures]
    first_response: DurationStats
    resolution: DurationStats
    first_contact_resolution: Rate
    reopened: Rate
    csat: CsatSummary
    sla_first_response: SlaAttainment
    sla_resolution: SlaAttainment
    time_in_state: Mapping[str, StateTime]
    transfers: int = 0
    transferred: Rate = Rate(0, 0)
    callbacks: CallbackFigures = CallbackFigures(
        0, Rate(0, 0), Rate(0, 0), DurationStats(0, None, None, None)
    )
    calls_by_outcome: Mapping[str, int] = field(default_factory=dict)
    by_ivr_path: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: seconds for durations, fractions for rates, ISO instants."""
        zone = self.period.timezone
        return {
            "period": {
                "from": datetime.fromtimestamp(self.period.start, zone).isoformat(),
                "until": datetime.fromtimestamp(self.period.end, zone).isoformat(),
                "as_of": datetime.fromtimestamp(self.as_of, zone).isoformat(timespec="seconds"),
            },
            "tickets": self.tickets,
            "open": self.open,
            "resolved": self.resolved,
            "volumes": {
                "by_day": dict(self.by_day),
                "by_category": dict(self.by_category),
                "by_category_group": dict(self.by_category_group),
                "by_queue": dict(self.by_queue),
                "by_priority": dict(self.by_priority),
                "by_ivr_path": dict(self.by_ivr_path),
                "calls_by_outcome": dict(self.calls_by_outcome),
            },
            "transfers": {"count": self.transfers, "tickets": _rate_dict(self.transferred)},
            "callbacks": {
                "requested": self.callbacks.requested,
                "made": _rate_dict(self.callbacks.made),
                "answered": _rate_dict(self.callbacks.answered),
                "time_to_callback_seconds": _stats_dict(self.callbacks.time_to_callback),
            },
            "agents": {
                agent: {
                    "tickets": f.tickets,
                    "resolved": f.resolved,
                    "first_response_seconds": _stats_dict(f.first_response),
                    "csat_mean": f.csat_mean,
                }
                for agent, f in self.by_agent.items()
            },
            "first_response_seconds": _stats_dict(self.first_response),
            "resolution_seconds": _stats_dict(self.resolution),
            "first_contact_resolution": _rate_dict(self.first_contact_resolution),
            "reopened": _rate_dict(self.reopened),
            "csat": {
                "count": self.csat.count,
                "mean": self.csat.mean,
                "distribution": {str(k): v for k, v in self.csat.distribution.items()},
                "satisfied": _rate_dict(self.csat.satisfied),
                "response": _rate_dict(self.csat.response),
            },
            "sla": {
                name: {"met": a.met, "breached": a.breached, "pending": a.pending, "rate": a.rate}
                for name, a in (
                    ("first_response", self.sla_first_response),
                    ("resolution", self.sla_resolution),
                )
            },
            "time_in_state": {
                status: {"tickets": t.tickets, "mean_hours": t.mean_hours, "total_hours": t.total_hours}
                for status, t in self.time_in_state.items()
            },
        }


def compute_kpis(
    histories: Iterable[TicketHistory], *, period: Period, policy: SlaPolicy, as_of: float
) -> KpiReport:
    """The KPIs of the tickets created in `period`, as their histories stand at `as_of`.

    Args:
        histories: tickets with their histories (those created outside the period are skipped).
        period: which tickets count, and the zone their creation days are counted in.
        policy: the SLA targets (from `SlaPolicy.from_config`).
        as_of: the instant the figures describe; later events are ignored.

    Returns:
        The report; see the module docstring for each definition.
    """
    facts = [
        _facts(h, policy, as_of)
        for h in sorted(histories, key=lambda h: h.created_at)
        if period.start <= h.created_at < period.end and h.created_at <= as_of
    ]
    first_responses = [f.first_response - f.created_at for f in facts if f.first_response is not None]
    resolutions = [f.resolved_at - f.created_at for f in facts if f.resolved_at is not None]
    resolved = [f for f in facts if f.resolved_at is not None]
    scores = [f.csat for f in facts if f.csat is not None]
    state_hours: dict[str, list[float]] = defaultdict(list)
    for f in facts:
        for status, seconds in f.time_in_state.items():
            state_hours[status].append(seconds / 3600)
    return KpiReport(
        period=period,
        as_of=as_of,
        tickets=len(facts),
        open=sum(1 for f in facts if f.open),
        resolved=len(resolved),
        by_day=_count(
            datetime.fromtimestamp(f.created_at, period.timezone).date().isoformat() for f in facts
        ),
        by_category=_count(f.category or "-" for f in facts),
        by_category_group=_count((f.category or "-").split("/")[0] for f in facts),
        by_queue=_count(f.queue or "-" for f in facts),
        by_priority=_count(f.priority for f in facts),
        by_agent=_agents(facts),
        first_response=DurationStats.of(first_responses),
        resolution=DurationStats.of(resolutions),
        first_contact_resolution=Rate(sum(1 for f in resolved if f.first_contact), len(resolved)),
        reopened=Rate(sum(1 for f in resolved if f.reopened), len(resolved)),
        csat=CsatSummary(
            count=len(scores),
            mean=sum(scores) / len(scores) if scores else None,
            distribution=MappingProxyType({s: scores.count(s) for s in range(1, 6)}),
            satisfied=Rate(sum(1 for s in scores if s >= SATISFIED_FROM), len(scores)),
            response=Rate(sum(1 for f in resolved if f.csat is not None), len(resolved)),
        ),
        sla_first_response=_attainment(f.sla_first_response for f in facts),
        sla_resolution=_attainment(f.sla_resolution for f in facts),
        time_in_state={
            status: StateTime(len(hours), sum(hours) / len(hours), sum(hours))
            for status, hours in sorted(state_hours.items(), key=lambda item: _STATUS_ORDER[item[0]])
        },
        transfers=sum(f.transfers for f in facts),
        transferred=Rate(sum(1 for f in facts if f.transfers), len(facts)),
        callbacks=CallbackFigures(
            requested=len(requested := [f for f in facts if f.callback_requested]),
            made=Rate(len(made := [f for f in requested if f.callback_after is not None]), len(requested)),
            answered=Rate(sum(1 for f in made if f.callback_answered), len(made)),
            time_to_callback=DurationStats.of(f.callback_after for f in made if f.callback_after is not None),
        ),
        calls_by_outcome=_count(outcome for f in facts for outcome in f.call_outcomes),
        by_ivr_path=_count(f.ivr_path for f in facts if f.ivr_path),
    )


# -- one ticket ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Facts:
    created_at: float
    category: str | None
    queue: str | None
    priority: str  # at creation
    assignee: str | None
    open: bool
    first_response: float | None
    resolved_at: float | None
    reopened: bool
    first_contact: bool
    csat: int | None
    sla_first_response: TargetStatus | None
    sla_resolution: TargetStatus | None
    time_in_state: Mapping[str, float]
    transfers: int = 0
    callback_requested: bool = False
    callback_after: float | None = None  # seconds from the missed call to the first attempt
    callback_answered: bool = False
    call_outcomes: tuple[str, ...] = ()
    ivr_path: str | None = None


def _facts(ticket: TicketHistory, policy: SlaPolicy, as_of: float) -> _Facts:
    events = [e for e in ticket.events if e.at <= as_of]
    changes = status_history(ticket, events)
    first_response = first_response_at(events)
    resolved_at = next((e.at for e in events if e.to_status is TicketStatus.RESOLVED), None)
    reopened = any(e.kind == EventKind.REOPENED for e in events)
    calls = sum(1 for e in events if (e.kind == "created" and "call" in e.data) or e.kind == "call_attached")
    answered = any(e.kind == "call_answered" for e in events)
    created = next((e for e in events if e.kind == EventKind.CREATED), None)
    priority = str(created.data.get("priority") or ticket.priority) if created else ticket.priority
    sla = ticket_sla(
        ticket.id, changes, priority=priority, policy=policy, now=as_of, responded_at=first_response
    )
    scores = [e.data.get("score") for e in events if e.kind == "csat"]
    valid = [int(s) for s in scores if isinstance(s, int | float) and 1 <= s <= 5]
    current = changes[-1].status if changes else ticket.status
    transfers = sum(1 for e in events if e.kind == "transferred")
    first_callback = next((e for e in events if e.kind == "callback_made"), None)
    after = first_callback.data.get("after_seconds") if first_callback else None
    return _Facts(
        created_at=ticket.created_at,
        category=ticket.category,
        queue=ticket.queue,
        priority=priority,
        assignee=ticket.assignee,
        open=current not in (TicketStatus.RESOLVED, TicketStatus.CLOSED),
        first_response=first_response,
        resolved_at=resolved_at,
        reopened=reopened,
        # A transferred call was not resolved by the agent who first took it.
        first_contact=resolved_at is not None and calls == 1 and answered and not reopened and not transfers,
        csat=valid[-1] if valid else None,
        sla_first_response=sla.first_response,
        sla_resolution=sla.resolution,
        time_in_state=_time_in_state(changes, as_of),
        transfers=transfers,
        callback_requested=any(e.kind == "callback_requested" for e in events),
        callback_after=float(after) if isinstance(after, int | float) else None,
        callback_answered=bool(first_callback and first_callback.data.get("answered")),
        call_outcomes=tuple(str(e.data.get("outcome")) for e in events if e.kind == "call_ended"),
        ivr_path=ticket.ivr_path,
    )


def sla_now(ticket: TicketHistory, *, policy: SlaPolicy, now: float) -> TicketSla:
    """A ticket's SLA targets at `now`, on its priority now (an escalation that raised it makes
    the targets stricter): what the scheduler acts on and the pages show."""
    return ticket_sla(
        ticket.id,
        status_history(ticket),
        priority=ticket.priority,
        policy=policy,
        now=now,
        responded_at=first_response_at(ticket.events),
    )


def first_response_at(events: Iterable[HistoryEntry]) -> float | None:
    """When an agent first responded (as defined above), if anyone has."""
    return next((e.at for e in events if _is_response(e)), None)


def status_history(ticket: TicketHistory, events: Sequence[HistoryEntry] | None = None) -> list[StatusChange]:
    """The status changes the SLA clock reads, creation first, from `events` (default: all of them)."""
    return status_changes(_status_events(ticket, ticket.events if events is None else events))


def _is_response(event: HistoryEntry) -> bool:
    if event.actor in NON_AGENT_ACTORS:
        return False
    if event.kind == EventKind.COMMENTED:
        return event.data.get("visibility") == "customer"
    return event.kind in _RESPONSE_KINDS


def _status_events(ticket: TicketHistory, events: Sequence[HistoryEntry]) -> list[HistoryEvent]:
    """The status-changing rows as the SLA module reads them; creation first, `new` unless said."""
    out = [
        HistoryEvent(
            kind=EventKind.CREATED,
            actor="system",
            at=ticket.created_at,
            from_status=None,
            to_status=TicketStatus.NEW,
        )
    ]
    for event in events:
        to_status = event.to_status
        if to_status is None and "to_status" in event.data:  # the call path's `assigned`
            to_status = TicketStatus(str(event.data["to_status"]))
        if to_status is None or event.kind == EventKind.CREATED:
            continue
        out.append(
            HistoryEvent(
                kind=EventKind.FIELDS_UPDATED,  # the kind is not read: only the status and waiting_on
                actor=event.actor,
                at=event.at,
                from_status=event.from_status,
                to_status=to_status,
                data=MappingProxyType(dict(event.data)),
            )
        )
    return out


def _time_in_state(changes: Sequence[StatusChange], as_of: float) -> dict[str, float]:
    spent: dict[str, float] = defaultdict(float)
    for change, following in zip(changes, [*changes[1:], None], strict=True):
        if change.status is TicketStatus.CLOSED:
            continue
        end = following.at if following is not None else as_of
        spent[str(change.status)] += max(0.0, end - change.at)
    return dict(spent)


# -- aggregation ---------------------------------------------------------------------

_STATUS_ORDER = {str(s): i for i, s in enumerate(TicketStatus)}


def _agents(facts: Sequence[_Facts]) -> dict[str, AgentFigures]:
    by_agent: dict[str, list[_Facts]] = defaultdict(list)
    for f in facts:
        if f.assignee is not None:
            by_agent[f.assignee].append(f)
    figures = {}
    for agent, held in sorted(by_agent.items(), key=lambda item: (-len(item[1]), item[0])):
        scores = [f.csat for f in held if f.csat is not None]
        figures[agent] = AgentFigures(
            tickets=len(held),
            resolved=sum(1 for f in held if f.resolved_at is not None),
            first_response=DurationStats.of(
                f.first_response - f.created_at for f in held if f.first_response is not None
            ),
            csat_mean=sum(scores) / len(scores) if scores else None,
        )
    return figures


def _attainment(statuses: Iterable[TargetStatus | None]) -> SlaAttainment:
    states = Counter(s.state for s in statuses if s is not None)
    done = states[SlaState.MET] + states[SlaState.BREACHED]
    return SlaAttainment(
        met=states[SlaState.MET], breached=states[SlaState.BREACHED], pending=sum(states.values()) - done
    )


def _count(keys: Iterable[str]) -> dict[str, int]:
    """Counts, largest first (ties by key); days stay in date order."""
    counts = Counter(keys)
    if all(_is_date(k) for k in counts):
        return dict(sorted(counts.items()))
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _is_date(key: str) -> bool:
    try:
        date.fromisoformat(key)
    except ValueError:
        return False
    return True


def _rank(ordered: Sequence[float], fraction: float) -> float:
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _stats_dict(stats: DurationStats) -> dict[str, Any]:
    return {"count": stats.count, "mean": stats.mean, "p50": stats.p50, "p90": stats.p90}


def _rate_dict(rate: Rate) -> dict[str, Any]:
    return {"hits": rate.hits, "total": rate.total, "rate": rate.value}
