from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cti_bridge.config.model import CalendarConfig, Config, EscalationConfig
from cti_bridge.tickets.model import TicketStatus
from cti_bridge.tickets.sla import (
    ALWAYS_OPEN,
    BusinessCalendar,
    EscalationDue,
    SlaMark,
    SlaMarkKind,
    SlaPolicy,
    SlaState,
    SlaTarget,
    StatusChange,
    TargetRule,
    WarningDue,
    WatchedTicket,
    plan_sla,
    status_changes,
    target_status,
    ticket_sla,
)
from cti_bridge.tickets.workflow import Assign, Resume, Start, Wait, WaitingOn, Workflow

SHANGHAI = ZoneInfo("Asia/Shanghai")
S = TicketStatus
MIN, HOUR = 60, 3600
FR, RES = SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION


def at(text: str, zone: ZoneInfo = SHANGHAI) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def china_office() -> BusinessCalendar:
    """Mon-Fri 09:00-12:00 + 13:30-18:00, Sat 09:00-12:00; Spring Festival 2026 with its make-up days."""
    return BusinessCalendar.from_config(
        CalendarConfig.model_validate(
            {
                "timezone": "Asia/Shanghai",
                "hours": {"mon-fri": ["09:00-12:00", "13:30-18:00"], "sat": ["09:00-12:00"]},
                "holidays": ["2026-01-01..2026-01-03", "2026-02-15..2026-02-23"],
                "workdays": ["2026-01-04", "2026-02-14", "2026-02-28"],
            }
        )
    )


CAL = china_office()


# --- the business calendar -----------------------------------------------------------------


def test_split_working_day():
    assert CAL.elapsed(at("2026-03-02 08:00"), at("2026-03-02 19:00")) == 7.5 * HOUR
    assert CAL.elapsed(at("2026-03-02 11:00"), at("2026-03-02 14:00")) == 1.5 * HOUR
    assert CAL.elapsed(at("2026-03-02 12:10"), at("2026-03-02 13:20")) == 0  # lunch
    assert CAL.deadline(at("2026-03-02 11:30"), HOUR) == at("2026-03-02 14:00")
    assert CAL.is_open(at("2026-03-02 09:00")) and not CAL.is_open(at("2026-03-02 12:00"))


def test_over_the_weekend():
    # Fri 17:00 + 5 h: 1 h on Friday, 3 h on Saturday morning, 1 h on Monday.
    assert CAL.deadline(at("2026-03-06 17:00"), 5 * HOUR) == at("2026-03-09 10:00")
    assert CAL.elapsed(at("2026-03-06 17:00"), at("2026-03-09 10:00")) == 5 * HOUR


def test_holidays_and_make_up_workdays():
    # 2026-02-14 is a Saturday worked as a Monday (调休), then nine days of Spring Festival.
    assert CAL.hours_on(date(2026, 2, 14)) == ((9 * HOUR, 12 * HOUR), (13.5 * HOUR, 18 * HOUR))
    assert CAL.deadline(at("2026-02-13 17:00"), 8 * HOUR) == at("2026-02-14 17:30")
    assert CAL.deadline(at("2026-02-13 17:00"), 10 * HOUR) == at("2026-02-24 10:30")
    assert CAL.elapsed(at("2026-02-14 18:00"), at("2026-02-24 09:00")) == 0
    # 2026-01-04 is a Sunday, worked.
    assert CAL.elapsed(at("2026-01-04 00:00"), at("2026-01-05 00:00")) == 7.5 * HOUR


def test_hours_across_midnight():
    night = BusinessCalendar(
        timezone=SHANGHAI, week={d: ((0, 6 * HOUR), (22 * HOUR, 24 * HOUR)) for d in range(7)}
    )
    assert night.elapsed(at("2026-03-02 23:00"), at("2026-03-03 01:00")) == 2 * HOUR
    assert night.deadline(at("2026-03-02 21:00"), 3 * HOUR) == at("2026-03-03 01:00")


def test_daylight_saving_days_count_their_real_length():
    new_york = ZoneInfo("America/New_York")
    always = BusinessCalendar(timezone=new_york, week={d: ((0, 24 * HOUR),) for d in range(7)})
    # 2026-03-08: 02:00 -> 03:00, a 23-hour day; 2026-11-01: 02:00 -> 01:00, a 25-hour day.
    assert always.elapsed(at("2026-03-08 00:00", new_york), at("2026-03-09 00:00", new_york)) == 23 * HOUR
    assert always.elapsed(at("2026-11-01 00:00", new_york), at("2026-11-02 00:00", new_york)) == 25 * HOUR
    early = BusinessCalendar(timezone=new_york, week={6: ((0, 4 * HOUR),)})  # Sundays 00:00-04:00
    assert early.elapsed(at("2026-03-08 00:00", new_york), at("2026-03-08 05:00", new_york)) == 3 * HOUR
    assert early.elapsed(at("2026-11-01 00:00", new_york), at("2026-11-01 05:00", new_york)) == 5 * HOUR
    start = at("2026-03-08 00:30", new_york)
    assert early.deadline(start, 2 * HOUR) == at("2026-03-08 03:30", new_york)
    assert early.deadline(start, 2 * HOUR) - start == 2 * HOUR  # the hour skipped does not exist


def test_always_open():
    assert ALWAYS_OPEN.elapsed(100, 400) == 300
    assert ALWAYS_OPEN.elapsed(400, 100) == 0
    assert ALWAYS_OPEN.deadline(100, 300) == 400


def test_a_calendar_without_hours_is_refused():
    with pytest.raises(ValueError, match="working hours"):
        BusinessCalendar(timezone=SHANGHAI, week={})


# Integer instants keep every sum exact: the properties hold with ==, not approximately.
instants = st.integers(min_value=int(at("2025-12-20 00:00")), max_value=int(at("2026-03-20 00:00")))
berlin = ZoneInfo("Europe/Berlin")
BERLIN = BusinessCalendar(
    timezone=berlin,
    week={d: ((0, int(3.5 * HOUR)), (9 * HOUR, 18 * HOUR)) for d in range(7)},
    holidays=frozenset({date(2026, 3, 30)}),
)
berlin_instants = st.integers(
    min_value=int(at("2026-03-25 00:00", berlin)), max_value=int(at("2026-11-05", berlin))
)
calendars = st.sampled_from([CAL, BERLIN])


@given(calendars, st.data())
def test_elapsed_is_additive_and_monotonic(calendar, data):
    points = instants if calendar is CAL else berlin_instants
    a, b, c = sorted(data.draw(st.lists(points, min_size=3, max_size=3)))
    assert calendar.elapsed(a, c) == calendar.elapsed(a, b) + calendar.elapsed(b, c)
    assert 0 <= calendar.elapsed(a, b) <= calendar.elapsed(a, c) <= c - a


@given(calendars, st.data())
def test_deadline_inverts_elapsed(calendar, data):
    points = instants if calendar is CAL else berlin_instants
    start, end = sorted(data.draw(st.lists(points, min_size=2, max_size=2)))
    spent = calendar.elapsed(start, end)
    due = calendar.deadline(start, spent)
    assert due <= end and calendar.elapsed(start, due) == spent
    if calendar.is_open(end - 1):  # `end` is a business instant: nothing else gives the same time
        assert due == end
    budget = data.draw(st.integers(min_value=0, max_value=40 * HOUR))
    assert calendar.elapsed(start, calendar.deadline(start, budget)) == budget


@settings(max_examples=40)
@given(st.integers(min_value=int(at("2026-02-10 00:00")), max_value=int(at("2026-02-26 00:00"))), st.data())
def test_elapsed_matches_counting_minutes(start, data):
    start -= start % MIN
    minutes = data.draw(st.integers(min_value=0, max_value=4 * 24 * 60))
    spans = {"mon-fri": [(9, 0, 12, 0), (13, 30, 18, 0)], "sat": [(9, 0, 12, 0)]}
    week = {d: spans["mon-fri"] for d in range(5)} | {5: spans["sat"]}

    def working(minute: float) -> bool:
        local = datetime.fromtimestamp(minute, SHANGHAI)
        day = local.date()
        if day in CAL.workdays:
            ranges = week[0]
        elif day in CAL.holidays:
            ranges = []
        else:
            ranges = week.get(day.weekday(), [])
        now = local.hour * 60 + local.minute
        return any(h1 * 60 + m1 <= now < h2 * 60 + m2 for h1, m1, h2, m2 in ranges)

    counted = sum(MIN for m in range(minutes) if working(start + m * MIN))
    assert CAL.elapsed(start, start + minutes * MIN) == counted


# --- one target of one ticket --------------------------------------------------------------

T0 = at("2026-03-02 10:00")
P1_RESPONSE = TargetRule(allowed=30 * MIN, clock=ALWAYS_OPEN)


def status(history, *, now, rule=P1_RESPONSE, target=FR, **kwargs):
    return target_status(history, target=target, rule=rule, now=now, warning_fraction=0.8, **kwargs)


def test_running_target_goes_ok_warning_breached():
    history = [StatusChange(T0, S.NEW), StatusChange(T0 + 60, S.ASSIGNED)]
    ok = status(history, now=T0 + 10 * MIN)
    assert (ok.state, ok.consumed, ok.remaining, ok.running) == (SlaState.OK, 600, 1200, True)
    assert (ok.warn_at, ok.due_at) == (T0 + 24 * MIN, T0 + 30 * MIN)
    assert status(history, now=T0 + 24 * MIN).state is SlaState.WARNING
    late = status(history, now=T0 + 31 * MIN)
    assert (late.state, late.remaining, late.due_at) == (SlaState.BREACHED, -60, T0 + 30 * MIN)


def test_first_response_stops_the_clock():
    history = [StatusChange(T0, S.NEW)]
    met = status(history, now=T0 + 2 * HOUR, responded_at=T0 + 20 * MIN)
    assert (met.state, met.consumed, met.running, met.stopped_at) == (SlaState.MET, 1200, False, T0 + 1200)
    assert met.due_at is None  # never reached
    late = status(history, now=T0 + 2 * HOUR, responded_at=T0 + 40 * MIN)
    assert (late.state, late.due_at) == (SlaState.BREACHED, T0 + 30 * MIN)
    on_time = status(history, now=T0 + 2 * HOUR, responded_at=T0 + 30 * MIN)
    assert on_time.state is SlaState.MET  # answered at the very deadline
    future = status(history, now=T0 + 5 * MIN, responded_at=T0 + 20 * MIN)
    assert future.state is SlaState.OK and future.running  # not yet responded at `now`


def test_waiting_on_the_customer_pauses_but_not_on_a_third_party():
    history = [
        StatusChange(T0, S.NEW),
        StatusChange(T0 + 10 * MIN, S.WAITING, WaitingOn.CUSTOMER),
        StatusChange(T0 + 70 * MIN, S.IN_PROGRESS),
    ]
    paused = status(history, now=T0 + 30 * MIN)
    assert (paused.state, paused.consumed, paused.running) == (SlaState.OK, 600, False)
    assert paused.due_at is None and paused.warn_at is None
    resumed = status(history, now=T0 + 80 * MIN)
    assert (resumed.consumed, resumed.warn_at, resumed.due_at) == (1200, T0 + 84 * MIN, T0 + 90 * MIN)
    third = [StatusChange(T0, S.NEW), StatusChange(T0 + 10 * MIN, S.WAITING, WaitingOn.THIRD_PARTY)]
    assert status(third, now=T0 + 40 * MIN).state is SlaState.BREACHED


def test_a_pause_after_the_breach_keeps_it_breached():
    history = [StatusChange(T0, S.NEW), StatusChange(T0 + HOUR, S.WAITING, WaitingOn.CUSTOMER)]
    paused = status(history, now=T0 + 2 * HOUR)
    assert (paused.state, paused.running, paused.due_at, paused.warn_at) == (
        SlaState.BREACHED,
        False,
        T0 + 30 * MIN,
        T0 + 24 * MIN,
    )


def test_resolution_stops_at_resolved_and_resumes_on_reopen():
    rule = TargetRule(allowed=4 * HOUR, clock=ALWAYS_OPEN)
    history = [
        StatusChange(T0, S.NEW),
        StatusChange(T0 + HOUR, S.IN_PROGRESS),
        StatusChange(T0 + 2 * HOUR, S.RESOLVED),
        StatusChange(T0 + 3 * HOUR, S.CLOSED),
    ]
    closed = status(history, now=T0 + 10 * HOUR, rule=rule, target=RES)
    assert (closed.state, closed.consumed, closed.stopped_at) == (SlaState.MET, 2 * HOUR, T0 + 2 * HOUR)
    reopened = [*history, StatusChange(T0 + 5 * HOUR, S.IN_PROGRESS)]
    again = status(reopened, now=T0 + 6 * HOUR, rule=rule, target=RES)
    assert (again.state, again.consumed, again.running) == (SlaState.OK, 3 * HOUR, True)
    assert again.due_at == T0 + 7 * HOUR


def test_first_response_ends_at_a_resolution_without_response():
    history = [StatusChange(T0, S.NEW), StatusChange(T0 + 10 * MIN, S.RESOLVED)]
    done = status(history, now=T0 + HOUR)
    assert (done.state, done.stopped_at) == (SlaState.MET, T0 + 10 * MIN)


def test_business_clock_target_and_changes_after_now_ignored():
    rule = TargetRule(allowed=24 * HOUR, clock=CAL)  # 常规: resolve within 24 business hours
    created = at("2026-02-12 17:00")  # Thursday before Spring Festival
    history = [StatusChange(created, S.NEW), StatusChange(at("2026-03-01"), S.RESOLVED)]
    now = at("2026-02-13 18:00")
    result = status(history, now=now, rule=rule, target=RES)
    assert result.consumed == 8.5 * HOUR and result.running
    # Thu 1 + Fri 7.5 + Sat(make-up) 7.5 = 16 h; Spring Festival; Tue 24th 7.5 h = 23.5 h; Wed 09:30.
    assert result.due_at == at("2026-02-25 09:30")
    assert result.warn_at == CAL.deadline(created, 0.8 * 24 * HOUR)


def test_unsorted_history_and_empty_history():
    history = [StatusChange(T0 + 10 * MIN, S.WAITING, WaitingOn.CUSTOMER), StatusChange(T0, S.NEW)]
    assert status(history, now=T0 + HOUR).consumed == 600
    with pytest.raises(ValueError, match="creation"):
        status([StatusChange(T0 + 10, S.NEW)], now=T0)


def test_status_changes_from_the_workflow_history():
    flow = Workflow()
    state = flow.open(actor="system", at=T0, priority="P2").state
    steps = [
        (Assign(assignee="alice"), T0 + 60),
        (Start(), T0 + 120),
        (Wait(on=WaitingOn.THIRD_PARTY), T0 + 180),
        (Wait(on=WaitingOn.CUSTOMER), T0 + 240),
        (Resume(), T0 + 300),
    ]
    for command, when in steps:
        state = flow.apply(state, command, actor="alice", at=when).state
    assert status_changes(state.history) == [
        StatusChange(T0, S.NEW),
        StatusChange(T0 + 60, S.ASSIGNED),
        StatusChange(T0 + 120, S.IN_PROGRESS),
        StatusChange(T0 + 180, S.WAITING, WaitingOn.THIRD_PARTY),
        StatusChange(T0 + 240, S.WAITING, WaitingOn.CUSTOMER),
        StatusChange(T0 + 300, S.IN_PROGRESS),
    ]


# --- policy and the scheduler's plan -------------------------------------------------------


def make_policy(**escalation) -> SlaPolicy:
    return SlaPolicy(
        targets={
            "P1": {FR: TargetRule(allowed=30 * MIN, clock=ALWAYS_OPEN)},
            "P3": {
                FR: TargetRule(allowed=2 * HOUR, clock=ALWAYS_OPEN),
                RES: TargetRule(allowed=4 * HOUR, clock=ALWAYS_OPEN),
            },
        },
        warning_fraction=0.8,
        warning_notify=("assignee",),
        escalations={
            FR: EscalationConfig(**escalation),
            RES: EscalationConfig(notify=["supervisor", "team", "user:duty-manager"]),
        },
        supervisors={"tier1": "carol"},
        members={"tier1": ("alice", "bob")},
    )


def watched(history, *, now, priority="P3", policy=None, responded_at=None, ticket_id=7, assignee="alice"):
    sla = ticket_sla(
        ticket_id,
        history,
        priority=priority,
        policy=policy or make_policy(),
        now=now,
        responded_at=responded_at,
    )
    return WatchedTicket(sla=sla, assignee=assignee, team="tier1")


def test_ticket_sla_uses_the_priority_targets():
    sla = ticket_sla(1, [StatusChange(T0, S.NEW)], priority="P1", policy=make_policy(), now=T0)
    assert sla.first_response is not None and sla.resolution is None and sla.status is S.NEW
    assert [t.target for t in sla.targets()] == [FR]


def test_warning_fires_once_then_the_plan_waits_for_the_breach():
    policy = make_policy()
    history = [StatusChange(T0, S.NEW)]
    early = plan_sla([watched(history, now=T0)], policy=policy, fired=set(), now=T0)
    assert early.actions == () and early.wake_at == T0 + 96 * MIN  # 80 % of 2 h
    now = T0 + 100 * MIN
    plan = plan_sla([watched(history, now=now)], policy=policy, fired=set(), now=now)
    (warning,) = plan.actions
    assert isinstance(warning, WarningDue)
    assert warning.mark == SlaMark(7, FR, SlaMarkKind.WARNING) and warning.at == T0 + 96 * MIN
    assert warning.notify == ("alice",) and "first response: 80% of 2 h used" in warning.reason
    assert plan.wake_at == T0 + 2 * HOUR
    again = plan_sla([watched(history, now=now)], policy=policy, fired={warning.mark}, now=now)
    assert again.actions == () and again.wake_at == T0 + 2 * HOUR


def test_escalation_raises_priority_notifies_and_reassigns():
    policy = make_policy(notify=["assignee", "supervisor"], reassign_to_supervisor=True)
    now = T0 + 3.5 * HOUR
    fired = {SlaMark(7, FR, SlaMarkKind.WARNING)}
    plan = plan_sla([watched([StatusChange(T0, S.NEW)], now=now)], policy=policy, fired=fired, now=now)
    escalation, res_warning = plan.actions
    assert isinstance(escalation, EscalationDue) and isinstance(res_warning, WarningDue)
    assert (escalation.priority_from, escalation.priority_to) == ("P3", "P2")
    assert escalation.notify == ("alice", "carol") and escalation.reassign_to == "carol"
    assert escalation.reason == "first response breached: 2 h allowed; priority P3 -> P2; reassigned to carol"
    assert res_warning.mark == SlaMark(7, RES, SlaMarkKind.WARNING)
    assert plan.wake_at == T0 + 4 * HOUR


def test_a_restart_fires_everything_missed_in_order_and_raises_once_per_breach():
    now = T0 + 10 * HOUR  # the daemon was down the whole time
    plan = plan_sla([watched([StatusChange(T0, S.NEW)], now=now)], policy=make_policy(), fired=set(), now=now)
    kinds = [(a.mark.target, a.mark.kind, a.at) for a in plan.actions]
    assert kinds == [
        (FR, SlaMarkKind.WARNING, T0 + 96 * MIN),
        (FR, SlaMarkKind.BREACH, T0 + 2 * HOUR),
        (RES, SlaMarkKind.WARNING, T0 + 192 * MIN),
        (RES, SlaMarkKind.BREACH, T0 + 4 * HOUR),
    ]
    escalations = [a for a in plan.actions if isinstance(a, EscalationDue)]
    assert [(e.priority_from, e.priority_to) for e in escalations] == [("P3", "P2"), ("P2", "P1")]
    assert escalations[1].notify == ("carol", "alice", "bob", "duty-manager")
    assert plan.wake_at is None


def test_p1_stays_p1_and_raising_can_be_off():
    now = T0 + HOUR
    plan = plan_sla(
        [watched([StatusChange(T0, S.NEW)], now=now, priority="P1")],
        policy=make_policy(),
        fired=set(),
        now=now,
    )
    assert [(a.priority_from, a.priority_to) for a in plan.actions if isinstance(a, EscalationDue)] == [
        ("P1", "P1")
    ]
    calm = make_policy(raise_priority=False, reassign_to_supervisor=True)
    (_, escalation) = plan_sla(
        [watched([StatusChange(T0, S.NEW)], now=now, priority="P1", policy=calm, assignee="carol")],
        policy=calm,
        fired=set(),
        now=now,
    ).actions
    assert escalation.priority_to == "P1" and escalation.reassign_to is None  # carol has it already


def test_stopped_targets_paused_targets_and_closed_tickets():
    policy = make_policy()
    now = T0 + 10 * HOUR
    responded = watched([StatusChange(T0, S.NEW)], now=now, responded_at=T0 + 3 * HOUR)
    assert {a.mark.target for a in plan_sla([responded], policy=policy, fired=set(), now=now).actions} == {
        RES
    }
    paused_early = [StatusChange(T0, S.NEW), StatusChange(T0 + MIN, S.WAITING, WaitingOn.CUSTOMER)]
    quiet = plan_sla([watched(paused_early, now=now)], policy=policy, fired=set(), now=now)
    assert quiet.actions == () and quiet.wake_at is None
    closed = [StatusChange(T0, S.NEW), StatusChange(T0 + 9 * HOUR, S.RESOLVED)]
    assert plan_sla([watched(closed, now=now)], policy=policy, fired=set(), now=now).actions == ()


def test_mark_keys_round_trip():
    mark = SlaMark(42, RES, SlaMarkKind.BREACH)
    assert mark.key == "42:resolution:breach" and SlaMark.parse(mark.key) == mark


def test_policy_from_config():
    config = Config.model_validate(
        {
            "pbxs": [{"name": "main", "username": "u", "secret": {"env": "X"}}],
            "agents": [{"id": "alice", "extension": "1001", "team": "tier1"}],
            "teams": [{"name": "tier1", "supervisor": "carol"}],
            "sla": {
                "calendar": {"hours": {"mon-fri": ["09:00-18:00"]}},
                "targets": {
                    "P1": {"first_response": "30m", "resolution": {"within": "4h", "clock": "always"}}
                },
                "warning": {"at": 0.75},
            },
        }
    )
    policy = SlaPolicy.from_config(config)
    response, resolution = policy.rule("P1", FR), policy.rule("P1", RES)
    assert response is not None and resolution is not None
    assert response.allowed == 1800 and isinstance(response.clock, BusinessCalendar)
    assert resolution.allowed == 4 * HOUR and resolution.clock is ALWAYS_OPEN
    assert policy.rule("P3", FR) is None
    assert policy.warning_fraction == 0.75 and policy.supervisors == {"tier1": "carol"}
    assert policy.members == {"tier1": ("alice",)} and policy.timezone == SHANGHAI


# --- restarts: a scheduler that stops and starts fires each mark exactly once ---------------

statuses = st.sampled_from(
    [
        (S.ASSIGNED, None),
        (S.IN_PROGRESS, None),
        (S.WAITING, WaitingOn.CUSTOMER),
        (S.WAITING, WaitingOn.THIRD_PARTY),
        (S.RESOLVED, None),
        (S.IN_PROGRESS, None),
    ]
)


@settings(max_examples=200)
@given(
    steps=st.lists(st.tuples(st.integers(1, 3 * HOUR), statuses), max_size=6),
    wakes=st.lists(st.integers(0, 20 * HOUR), max_size=8),
    responded=st.none() | st.integers(0, 10 * HOUR),
)
def test_any_run_of_restarts_fires_each_due_mark_exactly_once(steps, wakes, responded):
    policy = make_policy()
    history, when = [StatusChange(T0, S.NEW)], T0
    for gap, (state, waiting_on) in steps:
        when += gap
        history.append(StatusChange(when, state, waiting_on))
    responded_at = None if responded is None else T0 + responded
    changes_at = {c.at for c in history} | ({responded_at} if responded_at is not None else set())

    def plan(now, fired):
        ticket = watched(history, now=now, responded_at=responded_at)
        return plan_sla([ticket], policy=policy, fired=fired, now=now)

    fired: list[SlaMark] = []
    expected: list[SlaMark] = []
    for now in sorted(T0 + w for w in wakes):
        result = plan(now, set(fired))
        assert all(action.at <= now for action in result.actions)
        fired += [action.mark for action in result.actions]
        # Each mark fires at the first wake where it is due on a live target, whatever came before.
        expected += [a.mark for a in plan(now, set()).actions if a.mark not in expected]
        wake_at = result.wake_at
        if wake_at is not None and not any(now < c <= wake_at for c in changes_at):
            assert wake_at > now
            assert plan(wake_at, set(fired)).actions  # something new is due exactly then ...
            if wake_at - 1 > now:
                assert not plan(wake_at - 1, set(fired)).actions  # ... and not a second before
    assert fired == expected
