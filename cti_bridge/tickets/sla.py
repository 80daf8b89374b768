"""SLA clocks: business calendars, per-priority targets, pauses, and what warning or escalation is due."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from cti_bridge.config.model import CalendarConfig, Config, EscalationConfig, SlaConfig
from cti_bridge.tickets.model import OPEN_STATUSES, PRIORITIES, TicketStatus
from cti_bridge.tickets.workflow import HistoryEvent, WaitingOn

# Every instant is seconds since the epoch, as in Ticket.created_at; nothing here reads the clock.
_MAX_CLOSED_DAYS = 3660  # a calendar closed ten years in a row has no working time at all


class Clock(Protocol):
    """Counts the time a target consumes: business hours only, or every second (24x7)."""

    def elapsed(self, start: float, end: float) -> float:
        """Seconds counted between two instants (0 if end is not after start)."""
        ...

    def deadline(self, start: float, seconds: float) -> float:
        """The earliest instant at which `seconds` have been counted since `start`."""
        ...


@dataclass(frozen=True, slots=True)
class AlwaysOpen:
    """The 24x7 clock: every second counts."""

    def elapsed(self, start: float, end: float) -> float:
        return max(0.0, end - start)

    def deadline(self, start: float, seconds: float) -> float:
        return start + max(0.0, seconds)


ALWAYS_OPEN = AlwaysOpen()

Window = tuple[float, float]
Segment = tuple[float, float | None]  # a stretch the clock runs; None = still running


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessCalendar:
    """Working hours per weekday in a time zone, minus holidays, plus make-up workdays.

    Hours are local wall-clock times in seconds after midnight (86400 = 24:00). Times are
    turned into instants day by day, so a working day that spans a DST change counts its
    real length (an 09:00-18:00 day can last 8 or 10 hours of real time).
    """

    timezone: ZoneInfo
    week: Mapping[int, tuple[tuple[int, int], ...]]  # weekday (0 = Monday) -> (start, end) seconds
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    workday_hours: tuple[tuple[int, int], ...] = ()
    _windows: dict[date, tuple[Window, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if not any(self.week.values()) and not (self.workdays and self.workday_hours):
            raise ValueError("a business calendar needs some working hours")

    @classmethod
    def from_config(cls, config: CalendarConfig) -> BusinessCalendar:
        week = {
            day: tuple((r.start, r.end) for r in ranges) for day, ranges in config.weekday_hours().items()
        }
        like = ("mon", "tue", "wed", "thu", "fri", "sat", "sun").index(config.workdays_like)
        return cls(
            timezone=ZoneInfo(config.timezone),
            week=week,
            holidays=frozenset(day for span in config.holidays for day in span.days()),
            workdays=frozenset(config.workdays),
            workday_hours=week.get(like, ()),
        )

    def hours_on(self, day: date) -> tuple[tuple[int, int], ...]:
        """The local working hours of one day, holidays and make-up days applied."""
        if day in self.workdays:
            return self.workday_hours
        if day in self.holidays:
            return ()
        return self.week.get(day.weekday(), ())

    def windows(self, day: date) -> tuple[Window, ...]:
        """The working hours of one local day as instants, in order."""
        cached = self._windows.get(day)
        if cached is not None:
            return cached
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.timezone)
        windows: list[Window] = []
        for start, end in self.hours_on(day):
            # Wall-clock arithmetic on an aware datetime, then .timestamp(): a time skipped by a
            # DST jump maps past the jump, a repeated time to its first occurrence.
            first = (midnight + timedelta(seconds=start)).timestamp()
            last = (midnight + timedelta(seconds=end)).timestamp()
            if windows:
                first = max(first, windows[-1][1])
            if last > first:
                windows.append((first, last))
        result = tuple(windows)
        self._windows[day] = result
        return result

    def is_open(self, at: float) -> bool:
        return any(start <= at < end for start, end in self.windows(self._day_of(at)))

    def elapsed(self, start: float, end: float) -> float:
        if end <= start:
            return 0.0
        total = 0.0
        day, last = self._day_of(start) - timedelta(days=1), self._day_of(end) + timedelta(days=1)
        while day <= last:
            for first, stop in self.windows(day):
                if stop > start and first < end:
                    total += min(stop, end) - max(first, start)
            day += timedelta(days=1)
        return total

    def deadline(self, start: float, seconds: float) -> float:
        if seconds <= 0:
            return start
        day, closed = self._day_of(start) - timedelta(days=1), 0
        while closed < _MAX_CLOSED_DAYS:
            windows = self.windows(day)
            closed = closed + 1 if not windows else 0
            for first, stop in windows:
                if stop <= start:
                    continue
                begin = max(first, start)
                if seconds <= stop - begin:
                    return begin + seconds
                seconds -= stop - begin
            day += timedelta(days=1)
        raise ValueError(f"the calendar has no working time in {_MAX_CLOSED_DAYS} days after {start}")

    def _day_of(self, at: float) -> date:
        return datetime.fromtimestamp(at, self.timezone).date()


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One entry of a ticket's status history; the first is the ticket's creation."""

    at: float
    status: TicketStatus
    waiting_on: WaitingOn | None = None

    @property
    def clock_runs(self) -> bool:
        """Open tickets consume time, except while waiting on the customer.

        Waiting on a third party (or on nobody said) does not pause: the customer still waits.
        """
        return self.status in OPEN_STATUSES and not (
            self.status is TicketStatus.WAITING and self.waiting_on is WaitingOn.CUSTOMER
        )


def status_changes(events: Iterable[HistoryEvent]) -> list[StatusChange]:
    """The status history the SLA clock needs, from a ticket's full history (comments etc. skipped)."""
    changes: list[StatusChange] = []
    for event in events:
        raw = event.data.get("waiting_on")
        if event.to_status is not TicketStatus.WAITING:
            waiting_on = None
        elif raw is not None:
            waiting_on = WaitingOn(str(raw))
        else:
            waiting_on = changes[-1].waiting_on if changes else None
        change = StatusChange(event.at, event.to_status, waiting_on)
        if not changes or (changes[-1].status, changes[-1].waiting_on) != (change.status, waiting_on):
            changes.append(change)
    return changes


class SlaTarget(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


class SlaState(StrEnum):
    OK = "ok"
    WARNING = "warning"  # the warning fraction of the allowed time is used
    BREACHED = "breached"  # the allowed time is used up (or was, when it stopped)
    MET = "met"  # stopped within the allowed time


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetRule:
    """One target of one priority: the time allowed and the clock it is counted on."""

    allowed: float  # seconds
    clock: Clock


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetStatus:
    target: SlaTarget
    state: SlaState
    allowed: float
    consumed: float
    remaining: float  # allowed - consumed; negative once breached
    running: bool  # the clock ticks now (not paused, not stopped)
    stopped_at: float | None  # responded / resolved: the state is final while it stays so
    warn_at: float | None  # when the warning fraction is (or was) reached; None while paused before it
    due_at: float | None  # when the allowed time is (or was) used up; None while paused before it


def target_status(
    history: Sequence[StatusChange],
    *,
    target: SlaTarget,
    rule: TargetRule,
    now: float,
    warning_fraction: float | None = None,
    responded_at: float | None = None,
) -> TargetStatus:
    """The state of one target of one ticket at `now`.

    Args:
        history: the ticket's status changes (creation first); changes after `now` are ignored.
        target: which target; first response stops at `responded_at`, or at the first
            resolution if the ticket is resolved before anyone responded.
        rule: the time allowed and its clock.
        now: the instant to evaluate at.
        warning_fraction: the fraction of `allowed` that raises a warning; None = no warning.
        responded_at: the first agent response, if any.

    Returns:
        consumed and remaining time, the state, and the warning and due instants: exact
        instants on the target's clock given the pauses so far, in the past or the future.

    Raises:
        ValueError: the history is empty.
    """
    changes = sorted((c for c in history if c.at <= now), key=lambda c: c.at)
    if not changes:
        raise ValueError("a ticket's status history starts with its creation")
    stopped_at = _stopped_at(changes, target, responded_at, now)
    segments = _running_segments(changes, stopped_at)
    clock = rule.clock
    consumed = sum(clock.elapsed(a, now if b is None else b) for a, b in segments)
    due_at = _crossing(segments, clock, rule.allowed)
    warn_at = (
        None if warning_fraction is None else _crossing(segments, clock, warning_fraction * rule.allowed)
    )
    if stopped_at is not None:
        state = SlaState.BREACHED if due_at is not None and due_at < stopped_at else SlaState.MET
    elif due_at is not None and due_at <= now:
        state = SlaState.BREACHED
    elif warn_at is not None and warn_at <= now:
        state = SlaState.WARNING
    else:
        state = SlaState.OK
    return TargetStatus(
        target=target,
        state=state,
        allowed=rule.allowed,
        consumed=consumed,
        remaining=rule.allowed - consumed,
        running=bool(segments) and segments[-1][1] is None,
        stopped_at=stopped_at,
        warn_at=warn_at,
        due_at=due_at,
    )


def _stopped_at(
    changes: Sequence[StatusChange], target: SlaTarget, responded_at: float | None, now: float
) -> float | None:
    last = changes[-1]
    if target is SlaTarget.RESOLUTION:
        if last.status in OPEN_STATUSES:
            return None
        # Resolved then closed: the clock stopped at the resolution, not at the closing.
        stop = last.at
        for change in reversed(changes):
            if change.status in OPEN_STATUSES:
                break
            stop = change.at
        return stop
    first_resolved = next((c.at for c in changes if c.status not in OPEN_STATUSES), None)
    candidates = [t for t in (responded_at, first_resolved) if t is not None and t <= now]
    return min(candidates) if candidates else None


def _running_segments(changes: Sequence[StatusChange], stop: float | None) -> list[Segment]:
    """Intervals during which the clock runs; the last one is open (None) if it runs on."""
    segments: list[Segment] = []
    for change, following in zip(changes, [*changes[1:], None], strict=True):
        if not change.clock_runs or (stop is not None and change.at >= stop):
            continue
        end = following.at if following is not None else None
        if stop is not None and (end is None or end > stop):
            end = stop
        if segments and segments[-1][1] == change.at:  # e.g. new -> assigned: one stretch
            segments[-1] = (segments[-1][0], end)
        else:
            segments.append((change.at, end))
    return segments


def _crossing(segments: Sequence[Segment], clock: Clock, threshold: float) -> float | None:
    """The instant the running time reaches `threshold`, if it has or will without another change."""
    done = 0.0
    for start, end in segments:
        if end is None:
            return clock.deadline(start, threshold - done)
        part = clock.elapsed(start, end)
        if done + part >= threshold:
            return clock.deadline(start, threshold - done)
        done += part
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketSla:
    ticket_id: int
    priority: str
    status: TicketStatus
    first_response: TargetStatus | None  # None: no such target for this priority
    resolution: TargetStatus | None

    def targets(self) -> tuple[TargetStatus, ...]:
        return tuple(t for t in (self.first_response, self.resolution) if t is not None)


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaPolicy:
    """Targets per priority, the warning fraction, escalations and who supervises which team."""

    targets: Mapping[str, Mapping[SlaTarget, TargetRule]]
    warning_fraction: float | None = 0.8
    warning_notify: tuple[str, ...] = ("assignee",)
    escalations: Mapping[SlaTarget, EscalationConfig] = field(default_factory=dict)
    supervisors: Mapping[str, str] = field(default_factory=dict)  # team -> supervisor
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # team -> agent ids
    timezone: tzinfo = UTC  # instants in reasons are written in this zone

    @classmethod
    def from_config(cls, config: Config) -> SlaPolicy:
        sla: SlaConfig = config.sla
        calendar = BusinessCalendar.from_config(sla.calendar) if sla.calendar is not None else None
        targets: dict[str, dict[SlaTarget, TargetRule]] = {}
        for priority, entry in sla.targets.items():
            for target in SlaTarget:
                settings = getattr(entry, target.value)
                if settings is None:
                    continue
                kind = settings.clock or sla.clock
                clock: Clock = ALWAYS_OPEN if kind == "always" or calendar is None else calendar
                rule = TargetRule(allowed=settings.within.total_seconds(), clock=clock)
                targets.setdefault(priority, {})[target] = rule
        members: dict[str, list[str]] = {}
        for agent in config.agents:
            if agent.team is not None:
                members.setdefault(agent.team, []).append(agent.id)
        return cls(
            targets=targets,
            warning_fraction=sla.warning.at,
            warning_notify=tuple(sla.warning.notify),
            escalations={
                SlaTarget.FIRST_RESPONSE: sla.escalation.first_response,
                SlaTarget.RESOLUTION: sla.escalation.resolution,
            },
            supervisors={t.name: t.supervisor for t in config.teams if t.supervisor is not None},
            members={team: tuple(ids) for team, ids in members.items()},
            timezone=calendar.timezone if calendar is not None else UTC,
        )

    def rule(self, priority: str, target: SlaTarget) -> TargetRule | None:
        return self.targets.get(priority, {}).get(target)


def ticket_sla(
    ticket_id: int,
    history: Sequence[StatusChange],
    *,
    priority: str,
    policy: SlaPolicy,
    now: float,
    responded_at: float | None = None,
) -> TicketSla:
    """Both targets of one ticket at `now`, against its current priority's targets.

    Args:
        ticket_id: the ticket.
        history: its status changes, creation first.
        priority: its priority now (an escalation that raised it makes the targets stricter).
        policy: the SLA policy.
        now: the instant to evaluate at.
        responded_at: the first agent response, if any.
    """
    statuses = {}
    for target in SlaTarget:
        rule = policy.rule(priority, target)
        statuses[target] = (
            None
            if rule is None
            else target_status(
                history,
                target=target,
                rule=rule,
                now=now,
                warning_fraction=policy.warning_fraction,
                responded_at=responded_at,
            )
        )
    current = sorted((c for c in history if c.at <= now), key=lambda c: c.at)
    return TicketSla(
        ticket_id=ticket_id,
        priority=priority,
        status=current[-1].status if current else TicketStatus.NEW,
        first_response=statuses[SlaTarget.FIRST_RESPONSE],
        resolution=statuses[SlaTarget.RESOLUTION],
    )


class SlaMarkKind(StrEnum):
    WARNING = "warning"
    BREACH = "breach"


@dataclass(frozen=True, slots=True, order=True)
class SlaMark:
    """What has fired for a ticket: each (ticket, target, kind) fires once in the ticket's life."""

    ticket_id: int
    target: SlaTarget
    kind: SlaMarkKind

    @property
    def key(self) -> str:
        """A stable text form for storage, e.g. `42:resolution:breach`."""
        return f"{self.ticket_id}:{self.target.value}:{self.kind.value}"

    @classmethod
    def parse(cls, key: str) -> SlaMark:
        ticket_id, target, kind = key.split(":")
        return cls(int(ticket_id), SlaTarget(target), SlaMarkKind(kind))


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchedTicket:
    """An open ticket as the SLA scheduler sees it."""

    sla: TicketSla
    assignee: str | None
    team: str | None  # the team whose supervisor is escalated to


@dataclass(frozen=True, slots=True, kw_only=True)
class WarningDue:
    mark: SlaMark
    at: float  # when the warning fraction was reached (earlier than now after a restart)
    due_at: float | None
    notify: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationDue:
    mark: SlaMark
    at: float  # when the target was breached
    priority_from: str
    priority_to: str  # == priority_from when not raised (or already P1)
    notify: tuple[str, ...]
    reassign_to: str | None
    reason: str


SlaAction = WarningDue | EscalationDue


@dataclass(frozen=True, slots=True)
class SlaPlan:
    actions: tuple[SlaAction, ...]  # in the order they became due
    wake_at: float | None  # the next instant something becomes due, if nothing changes before


def plan_sla(
    tickets: Iterable[WatchedTicket], *, policy: SlaPolicy, fired: Set[SlaMark], now: float
) -> SlaPlan:
    """What must fire now and when to look again: pure, so a restart just calls it again.

    Each warning and breach of a ticket's target fires once: those in `fired` never again,
    every other one whose instant has come fires now, however long ago that was (so what a
    stopped daemon missed fires on restart, warning before breach). Stopped targets
    (responded, resolved) and tickets no longer open fire nothing.

    Args:
        tickets: the open tickets with their SLA at `now` (from `ticket_sla`).
        policy: the SLA policy (warning recipients, escalations, supervisors).
        fired: the marks already fired, as persisted with the actions.
        now: the instant to plan at.

    Returns:
        The due actions, oldest first, and when to call again unless a ticket changes first
        (any status, priority or response change can move the instants: call again then).
    """
    due: list[tuple[float, int, SlaAction]] = []
    wake_at: float | None = None
    for ticket in tickets:
        sla = ticket.sla
        if sla.status not in OPEN_STATUSES:
            continue
        priority = sla.priority
        for status in sorted(sla.targets(), key=lambda s: s.due_at if s.due_at is not None else now):
            if status.stopped_at is not None:
                continue
            for kind, at in ((SlaMarkKind.WARNING, status.warn_at), (SlaMarkKind.BREACH, status.due_at)):
                mark = SlaMark(sla.ticket_id, status.target, kind)
                if at is None or mark in fired:
                    continue
                if at > now:
                    wake_at = at if wake_at is None else min(wake_at, at)
                    continue
                if kind is SlaMarkKind.WARNING:
                    due.append((at, 0, _warning(ticket, status, mark, policy)))
                else:
                    action = _escalation(ticket, status, mark, policy, priority)
                    priority = action.priority_to  # two breaches at once raise two levels
                    due.append((at, 1, action))
    due.sort(key=lambda item: (item[0], item[1], item[2].mark))
    return SlaPlan(tuple(action for _, _, action in due), wake_at)


def _warning(ticket: WatchedTicket, status: TargetStatus, mark: SlaMark, policy: SlaPolicy) -> WarningDue:
    assert status.warn_at is not None
    used = round(100 * (policy.warning_fraction or 0))
    due = f"; due {_format_instant(status.due_at, policy.timezone)}" if status.due_at is not None else ""
    return WarningDue(
        mark=mark,
        at=status.warn_at,
        due_at=status.due_at,
        notify=_recipients(policy.warning_notify, ticket, policy),
        reason=f"{_label(status.target)}: {used}% of {_format_seconds(status.allowed)} used{due}",
    )


def _escalation(
    ticket: WatchedTicket, status: TargetStatus, mark: SlaMark, policy: SlaPolicy, priority: str
) -> EscalationDue:
    assert status.due_at is not None
    config = policy.escalations.get(status.target) or EscalationConfig()
    raised = PRIORITIES[max(0, PRIORITIES.index(priority) - 1)] if config.raise_priority else priority
    supervisor = policy.supervisors.get(ticket.team) if ticket.team is not None else None
    reassign_to = supervisor if config.reassign_to_supervisor and supervisor != ticket.assignee else None
    parts = [f"{_label(status.target)} breached: {_format_seconds(status.allowed)} allowed"]
    if raised != priority:
        parts.append(f"priority {priority} -> {raised}")
    if reassign_to is not None:
        parts.append(f"reassigned to {reassign_to}")
    elif config.reassign_to_supervisor and supervisor is None:
        parts.append(f"no supervisor for team {ticket.team or '(none)'} to reassign to")
    return EscalationDue(
        mark=mark,
        at=status.due_at,
        priority_from=priority,
        priority_to=raised,
        notify=_recipients(tuple(config.notify), ticket, policy),
        reassign_to=reassign_to,
        reason="; ".join(parts),
    )


def _recipients(roles: Iterable[str], ticket: WatchedTicket, policy: SlaPolicy) -> tuple[str, ...]:
    """Roles (assignee, supervisor, team, user:<id>) -> user ids, in order, without repeats."""
    found: list[str] = []
    for role in roles:
        if role == "assignee":
            ids: Iterable[str] = [ticket.assignee] if ticket.assignee else []
        elif role == "supervisor":
            supervisor = policy.supervisors.get(ticket.team) if ticket.team else None
            ids = [supervisor] if supervisor else []
        elif role == "team":
            ids = policy.members.get(ticket.team, ()) if ticket.team else ()
        else:
            ids = [role.removeprefix("user:")]
        found += [i for i in ids if i not in found]
    return tuple(found)


def _label(target: SlaTarget) -> str:
    return target.value.replace("_", " ")


def _format_seconds(seconds: float) -> str:
    """3600 -> 1 h; 5400 -> 1 h 30 min; 45 -> 45 s."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    hours, minutes = divmod(seconds // 60, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _format_instant(at: float, zone: tzinfo) -> str:
    return datetime.fromtimestamp(at, zone).isoformat(timespec="minutes")
