"""KPIs from hand-built histories: every figure is worked out by hand in the comments."""

from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from cti_bridge.tickets.kpi import HistoryEntry, Period, TicketHistory, compute_kpis
from cti_bridge.tickets.model import TicketStatus as S
from cti_bridge.tickets.sla import ALWAYS_OPEN, SlaPolicy, SlaTarget, TargetRule

T0 = datetime(2026, 10, 19, tzinfo=UTC).timestamp()
AS_OF = T0 + 100_000
POLICY = SlaPolicy(
    targets={
        "P3": {
            SlaTarget.FIRST_RESPONSE: TargetRule(allowed=3600, clock=ALWAYS_OPEN),
            SlaTarget.RESOLUTION: TargetRule(allowed=8 * 3600, clock=ALWAYS_OPEN),
        },
        "P4": {SlaTarget.RESOLUTION: TargetRule(allowed=5 * 86400, clock=ALWAYS_OPEN)},
    }
)


def event(at, kind, actor="system", before=None, after=None, **data):
    return HistoryEntry(
        at=T0 + at, kind=kind, actor=actor, data=MappingProxyType(data), from_status=before, to_status=after
    )


def ticket(id, at, events, *, status, priority="P3", category, queue, assignee):
    return TicketHistory(
        id=id,
        number=f"T-{id:06d}",
        status=status,
        priority=priority,
        category=category,
        queue=queue,
        assignee=assignee,
        created_at=T0 + at,
        events=tuple(events),
    )


# A: answered by alice after 30 s, resolved on the call, scored 5, closed the next day.
A = ticket(
    1,
    0,
    [
        event(0, "created", call="main/1", priority="P3"),
        event(30, "assigned", to="alice", from_status="new", to_status="assigned"),
        event(30, "call_answered", "alice", call="main/1"),
        event(60, "started", "alice", S.ASSIGNED, S.IN_PROGRESS),
        event(600, "call_ended", outcome="answered"),
        event(1800, "resolved", "alice", S.IN_PROGRESS, S.RESOLVED),
        event(2000, "csat", "customer", score=5),
        event(88_200, "closed", "alice", S.RESOLVED, S.CLOSED),
    ],
    status=S.CLOSED,
    category="技术故障/网络问题/登录异常",
    queue="support",
    assignee="alice",
)
# B: missed call, callback to bob; his internal note is no response, his start (2 h) is:
# the 1 h first response is breached. Waits 10 h on the customer (paused), resolved, reopened,
# resolved again, scored 2. Resolution clock: 8000 + 1000 + 2000 s < 8 h: met.
B = ticket(
    2,
    1000,
    [
        event(1000, "created", call="main/2", priority="P3"),
        event(1020, "call_ended", outcome="missed"),
        event(1020, "assigned", "dispatch", S.NEW, S.ASSIGNED, assignee="bob"),
        event(2000, "commented", "bob", S.ASSIGNED, S.ASSIGNED, text="call back", visibility="internal"),
        event(8200, "started", "bob", S.ASSIGNED, S.IN_PROGRESS),
        event(9000, "waiting", "bob", S.IN_PROGRESS, S.WAITING, waiting_on="customer"),
        event(45_000, "resumed", "bob", S.WAITING, S.IN_PROGRESS),
        event(46_000, "resolved", "bob", S.IN_PROGRESS, S.RESOLVED),
        event(50_000, "reopened", "bob", S.RESOLVED, S.IN_PROGRESS),
        event(52_000, "resolved", "bob", S.IN_PROGRESS, S.RESOLVED),
        event(53_000, "csat", "customer", score=2),
    ],
    status=S.RESOLVED,
    category="账务问题/账单查询/费用异议",
    queue="billing",
    assignee="bob",
)
# C: P4 (no first-response target), answered after 100 s, a second call, still in progress at
# AS_OF (its resolution after AS_OF is ignored): resolution target still running.
C = ticket(
    3,
    2000,
    [
        event(2000, "created", call="main/3", priority="P4"),
        event(2100, "assigned", to="alice", from_status="new", to_status="assigned"),
        event(2100, "call_answered", "alice", call="main/3"),
        event(2200, "started", "alice", S.ASSIGNED, S.IN_PROGRESS),
        event(5000, "call_attached", call="main/4"),
        event(100_010, "resolved", "alice", S.IN_PROGRESS, S.RESOLVED),
    ],
    status=S.RESOLVED,
    priority="P4",
    category="技术故障/设备故障/无法开机",
    queue="support",
    assignee="alice",
)
# D: created before the period: not counted.
D = ticket(
    4,
    -5000,
    [event(-5000, "created", call="main/5", priority="P3")],
    status=S.NEW,
    category=None,
    queue=None,
    assignee=None,
)


@pytest.fixture
def report():
    return compute_kpis([C, D, B, A], period=Period(T0, T0 + 86_400), policy=POLICY, as_of=AS_OF)


def test_volumes(report):
    assert (report.tickets, report.open, report.resolved) == (3, 1, 2)
    assert report.by_day == {"2026-10-19": 3}
    assert report.by_category_group == {"技术故障": 2, "账务问题": 1}
    assert list(report.by_category) == [
        "技术故障/网络问题/登录异常",
        "技术故障/设备故障/无法开机",
        "账务问题/账单查询/费用异议",
    ]
    assert report.by_queue == {"support": 2, "billing": 1}
    assert report.by_priority == {"P3": 2, "P4": 1}


def test_first_response_and_resolution_times(report):
    # First responses 30 s (A's answer), 7200 s (B's start), 100 s (C's answer).
    fr = report.first_response
    assert (fr.count, fr.mean, fr.p50, fr.p90) == (3, pytest.approx(7330 / 3), 100, 7200)
    # Resolutions: A 1800 s; B's first resolution, 45000 s after creation.
    res = report.resolution
    assert (res.count, res.mean, res.p50, res.p90) == (2, 23_400, 1800, 45_000)


def test_fcr_reopen_and_csat(report):
    fcr, reopened, csat = report.first_contact_resolution, report.reopened, report.csat
    assert (fcr.hits, fcr.total, fcr.value) == (1, 2, 0.5)  # A only: B's call was missed, B reopened
    assert (reopened.hits, reopened.total) == (1, 2)
    assert (csat.count, csat.mean) == (2, 3.5)
    assert dict(csat.distribution) == {1: 0, 2: 1, 3: 0, 4: 0, 5: 1}
    assert (csat.satisfied.hits, csat.satisfied.total, csat.response.value) == (1, 2, 1.0)


def test_sla_attainment(report):
    fr, res = report.sla_first_response, report.sla_resolution
    assert (fr.met, fr.breached, fr.pending, fr.rate) == (1, 1, 0, 0.5)
    assert (res.met, res.breached, res.pending, res.rate) == (2, 0, 1, 1.0)


def test_time_in_state(report):
    hours = {status: (t.tickets, round(t.total_hours * 3600)) for status, t in report.time_in_state.items()}
    assert hours == {
        "new": (3, 30 + 20 + 100),
        "assigned": (3, 30 + 7180 + 100),
        "in_progress": (3, 1740 + 3800 + 97_800),
        "waiting": (1, 36_000),
        "resolved": (2, 86_400 + 4000 + 48_000),
    }
    assert report.time_in_state["waiting"].mean_hours == 10


def test_agents(report):
    alice, bob = report.by_agent["alice"], report.by_agent["bob"]
    assert list(report.by_agent) == ["alice", "bob"]
    assert (alice.tickets, alice.resolved, alice.first_response.p50, alice.csat_mean) == (2, 1, 30, 5)
    assert (bob.tickets, bob.resolved, bob.first_response.p50, bob.csat_mean) == (1, 1, 7200, 2)


def test_escalated_priority_keeps_the_target_of_creation():
    # Created P3, raised to P1 by an escalation: attainment is judged against P3's 1 h.
    raised = ticket(
        5,
        0,
        [
            event(0, "created", call="main/6", priority="P3"),
            event(1800, "started", "bob", S.NEW, S.IN_PROGRESS),
        ],
        status=S.IN_PROGRESS,
        priority="P1",
        category=None,
        queue=None,
        assignee="bob",
    )
    report = compute_kpis([raised], period=Period(T0, T0 + 86_400), policy=POLICY, as_of=AS_OF)
    assert report.by_priority == {"P3": 1}
    assert (report.sla_first_response.met, report.sla_first_response.breached) == (1, 0)


def test_empty_period_and_json():
    report = compute_kpis([], period=Period(T0, T0 + 86_400), policy=POLICY, as_of=AS_OF)
    data = report.to_dict()
    assert data["tickets"] == 0 and data["first_response_seconds"]["p50"] is None
    assert data["sla"]["resolution"]["rate"] is None and data["csat"]["mean"] is None


# -- call flows (issue #11) ------------------------------------------------------------

# E: answered by alice, blind-transferred to carol who resolved it on that one call: not an FCR
# of the first agent. F: abandoned, called back by bob 600 s after the missed call (answered),
# then a second attempt; the outage of a PBX crash cut F's second call (interrupted).
E = ticket(
    5,
    100,
    [
        event(100, "created", call="main/6", priority="P3"),
        event(110, "call_answered", "alice", call="main/6"),
        HistoryEntry(
            at=T0 + 200,
            kind="transferred",
            actor="alice",
            data=MappingProxyType({"kind": "blind", "from": "alice", "queue": "escalation"}),
        ),
        event(220, "assigned", to="carol", from_status="assigned", to_status="assigned"),
        event(220, "call_answered", "carol", call="main/6", transferred_from="alice"),
        event(500, "call_ended", outcome="answered"),
        event(900, "resolved", "carol", S.ASSIGNED, S.RESOLVED),
    ],
    status=S.RESOLVED,
    category=None,
    queue="escalation",
    assignee="carol",
)
F = ticket(
    6,
    300,
    [
        event(300, "created", call="main/7", priority="P3"),
        event(320, "call_ended", outcome="abandoned"),
        event(320, "callback_requested", "dispatch", callback="abandoned"),
        event(920, "call_attached", call="main/8"),
        event(930, "call_ended", outcome="answered"),
        event(930, "callback_made", "bob", answered=True, after_seconds=600.0, outcome="answered"),
        event(2000, "call_attached", call="main/9"),
        event(2100, "call_ended", outcome="interrupted"),
        event(2100, "callback_made", "bob", answered=False, after_seconds=1680.0, outcome="interrupted"),
    ],
    status=S.ASSIGNED,
    category=None,
    queue="sales",
    assignee="bob",
)


def test_a_transferred_call_is_not_a_first_contact_resolution():
    flows = compute_kpis([A, E], period=Period(T0, T0 + 86_400), policy=POLICY, as_of=AS_OF)
    # A is an FCR; E was resolved on its only call, but by the agent it was transferred to.
    assert (flows.first_contact_resolution.hits, flows.first_contact_resolution.total) == (1, 2)
    assert flows.transfers == 1 and (flows.transferred.hits, flows.transferred.total) == (1, 2)


def test_callbacks_and_call_outcomes():
    flows = compute_kpis([A, E, F], period=Period(T0, T0 + 86_400), policy=POLICY, as_of=AS_OF)
    callbacks = flows.callbacks
    assert callbacks.requested == 1
    assert (callbacks.made.hits, callbacks.made.total) == (1, 1)
    assert (callbacks.answered.hits, callbacks.answered.total) == (1, 1)  # the first attempt's
    assert callbacks.time_to_callback.p50 == 600.0  # the first attempt, not the second
    assert flows.calls_by_outcome == {"answered": 3, "abandoned": 1, "interrupted": 1}
    assert flows.to_dict()["callbacks"]["time_to_callback_seconds"]["mean"] == 600.0
