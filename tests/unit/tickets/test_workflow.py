"""The ticket lifecycle: transitions, refusals that say why, and the history they leave."""

import pytest

from cti_bridge.tickets.errors import (
    FieldValidationError,
    InvalidTransition,
    MissingFieldsError,
    PriorityError,
)
from cti_bridge.tickets.fields import FieldSchema
from cti_bridge.tickets.model import TicketStatus
from cti_bridge.tickets.workflow import (
    AddComment,
    Assign,
    ChangePriority,
    Close,
    EventKind,
    Reopen,
    Resolve,
    Resume,
    Start,
    UpdateFields,
    Visibility,
    Wait,
    WaitingOn,
    Workflow,
    allowed_commands,
    replay,
)
from tests.unit.tickets.test_fields import CONFIG

S = TicketStatus
T0 = 1_800_000_000.0
WORKFLOW = Workflow(FieldSchema.from_config(CONFIG))


def opened(**fields):
    return WORKFLOW.open(actor="system", at=T0, priority="常规", fields=fields).state


def run(state, *commands, actor="alice"):
    for i, command in enumerate(commands):
        state = WORKFLOW.apply(state, command, actor=actor, at=T0 + 60 * (i + 1)).state
    return state


def test_open_records_who_created_it_with_what():
    transition = WORKFLOW.open(actor="system", at=T0, priority="urgent", fields={"customer_name": "张三"})
    state = transition.state
    assert state.status is S.NEW and state.priority == "P2" and state.assignee is None
    assert state.fields == {"customer_name": "张三"}
    [event] = transition.events
    assert (event.kind, event.actor, event.at, event.from_status, event.to_status) == (
        EventKind.CREATED,
        "system",
        T0,
        None,
        S.NEW,
    )
    assert state.history == (event,)


def test_the_whole_path_from_new_to_closed():
    state = run(
        opened(category="technical/network/login"),
        Assign(assignee="alice"),
        Start(),
        Wait(on=WaitingOn.CUSTOMER, reason="等待客户提供截图"),
        Resume(reason="客户已回复"),
        Resolve(fields={"resolution": "重置了路由器"}),
        Close(confirmed_by_customer=True),
    )
    assert state.status is S.CLOSED and state.assignee == "alice" and not state.is_open
    assert state.fields["category"] == "技术故障/网络问题/登录异常"
    kinds = [e.kind for e in state.history]
    assert kinds == [
        EventKind.CREATED,
        EventKind.ASSIGNED,
        EventKind.STARTED,
        EventKind.WAITING,
        EventKind.RESUMED,
        EventKind.FIELDS_UPDATED,
        EventKind.RESOLVED,
        EventKind.CLOSED,
    ]
    waiting = state.history[3]
    assert waiting.reason == "等待客户提供截图" and waiting.data["waiting_on"] == "customer"
    assert [(e.from_status, e.to_status) for e in state.history[1:]] == [
        (S.NEW, S.ASSIGNED),
        (S.ASSIGNED, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.WAITING),
        (S.WAITING, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.RESOLVED),
        (S.RESOLVED, S.CLOSED),
    ]
    assert state.history[-1].data["confirmed"] is True
    assert all(e.actor == "alice" for e in state.history[1:])


def test_the_sla_clock_pauses_only_while_waiting_on_the_customer():
    working = run(opened(category="咨询"), Assign(assignee="alice"), Start())
    assert not working.sla_paused
    on_customer = run(working, Wait(on=WaitingOn.CUSTOMER))
    assert on_customer.sla_paused and on_customer.waiting_on is WaitingOn.CUSTOMER
    on_vendor = run(on_customer, Wait(on=WaitingOn.THIRD_PARTY, reason="等待厂商"))
    assert on_vendor.status is S.WAITING and not on_vendor.sla_paused
    assert run(on_vendor, Resume()).waiting_on is None


def test_invalid_transitions_name_the_status_and_the_allowed_commands():
    with pytest.raises(InvalidTransition) as caught:
        WORKFLOW.apply(opened(), Resolve(), actor="alice", at=T0)
    assert caught.value.status == "new" and caught.value.command == "resolve"
    assert str(caught.value) == (
        "cannot resolve a ticket that is new; allowed now: assign, update_fields, change_priority, comment"
    )
    closed = run(
        opened(category="咨询"), Assign(assignee="a"), Start(), Resolve(fields={"resolution": "ok"}), Close()
    )
    assert allowed_commands(S.CLOSED) == ("reopen", "comment")
    for command in [UpdateFields(values={"description": "x"}), Assign(assignee="b"), Close()]:
        with pytest.raises(InvalidTransition, match="that is closed; allowed now: reopen, comment"):
            WORKFLOW.apply(closed, command, actor="a", at=T0)


def test_commands_that_change_nothing_are_refused():
    assigned = run(opened(), Assign(assignee="alice"))
    with pytest.raises(InvalidTransition, match="assigned to alice already"):
        WORKFLOW.apply(assigned, Assign(assignee="alice"), actor="bob", at=T0)
    with pytest.raises(InvalidTransition, match="priority is P3 already"):
        WORKFLOW.apply(assigned, ChangePriority(priority="常规"), actor="bob", at=T0)
    with pytest.raises(InvalidTransition, match="no field changes"):
        WORKFLOW.apply(assigned, UpdateFields(values={"customer_name": None}), actor="bob", at=T0)
    waiting = run(assigned, UpdateFields(values={"category": "咨询"}), Start(), Wait(on=WaitingOn.CUSTOMER))
    with pytest.raises(InvalidTransition, match="waiting on the customer already"):
        WORKFLOW.apply(waiting, Wait(on=WaitingOn.CUSTOMER), actor="a", at=T0)


def test_required_fields_are_named_when_a_transition_needs_them():
    assigned = run(opened(), Assign(assignee="alice"))
    with pytest.raises(MissingFieldsError) as caught:
        WORKFLOW.apply(assigned, Start(), actor="alice", at=T0)
    assert caught.value.fields == ("category",) and caught.value.status == "in_progress"
    started = WORKFLOW.apply(assigned, Start(fields={"category": "咨询"}), actor="alice", at=T0).state
    with pytest.raises(MissingFieldsError, match="resolved needs these fields filled in: resolution"):
        WORKFLOW.apply(started, Resolve(), actor="alice", at=T0)
    resolved = run(started, Resolve(fields={"resolution": "已解答"}))
    with pytest.raises(MissingFieldsError, match="resolution"):
        WORKFLOW.apply(resolved, UpdateFields(values={"resolution": ""}), actor="alice", at=T0)
    fixed = run(resolved, UpdateFields(values={"resolution": "已电话解答", "description": "价格"}))
    assert fixed.history[-1].data["changes"] == {"resolution": "已电话解答", "description": "价格"}


def test_a_refused_command_changes_nothing_and_bad_values_are_named():
    state = run(opened(), Assign(assignee="alice"))
    with pytest.raises(FieldValidationError, match="category"):
        WORKFLOW.apply(state, Start(fields={"category": "不存在"}), actor="alice", at=T0)
    with pytest.raises(PriorityError):
        WORKFLOW.apply(state, ChangePriority(priority="P9"), actor="alice", at=T0)
    assert len(state.history) == 2


def test_reassign_keeps_the_status_and_records_who_had_it():
    state = run(opened(category="咨询"), Assign(assignee="alice"), Start())
    state = run(state, Assign(assignee="bob", reason="alice off shift"), actor="supervisor")
    event = state.history[-1]
    assert state.status is S.IN_PROGRESS and state.assignee == "bob"
    assert event.kind is EventKind.REASSIGNED and event.data["previous"] == "alice"
    assert (event.actor, event.reason) == ("supervisor", "alice off shift")


def test_reopen_goes_back_to_the_assignee_and_needs_a_reason():
    resolved = run(
        opened(category="咨询"), Assign(assignee="alice"), Start(), Resolve(fields={"resolution": "x"})
    )
    with pytest.raises(InvalidTransition, match="say why"):
        WORKFLOW.apply(resolved, Reopen(reason=" "), actor="customer", at=T0)
    reopened = run(resolved, Reopen(reason="问题复现"), actor="bob")
    assert reopened.status is S.IN_PROGRESS and reopened.assignee == "alice"
    assert reopened.history[-1].kind is EventKind.REOPENED
    closed = run(reopened, Resolve(), Close())
    assert run(closed, Reopen(reason="again")).status is S.IN_PROGRESS


def test_priority_changes_accept_names_and_record_the_previous_one():
    state = run(opened(), ChangePriority(priority="加急", reason="SLA breach"), actor="sla")
    event = state.history[-1]
    assert state.priority == "P1" and event.data == {"priority": "P1", "previous": "P3"}
    assert event.from_status is event.to_status is S.NEW


def test_comments_collect_mentions_and_work_on_closed_tickets():
    state = run(
        opened(), AddComment(text="@bob 请协助, cc @carol.li. 邮件 a@b.cn", visibility=Visibility.CUSTOMER)
    )
    data = state.history[-1].data
    assert data["mentions"] == ("bob", "carol.li") and data["visibility"] == "customer"
    with pytest.raises(InvalidTransition, match="needs text"):
        WORKFLOW.apply(state, AddComment(text="  "), actor="a", at=T0)


def test_replay_rebuilds_the_state_from_its_history():
    state = run(
        opened(category="咨询", customer_name="张三"),
        Assign(assignee="alice"),
        Start(),
        Wait(on=WaitingOn.THIRD_PARTY),
        UpdateFields(values={"customer_name": None, "order_number": "SO-1"}),
        ChangePriority(priority="P2"),
    )
    assert replay(state.history) == state
    assert state.fields == {"category": "咨询", "order_number": "SO-1"}
    with pytest.raises(ValueError, match="starts with `created`"):
        replay(state.history[1:])
    with pytest.raises(ValueError, match="starts from"):
        replay(state.history[:2] + state.history[3:])
