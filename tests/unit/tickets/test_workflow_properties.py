"""Property tests: no sequence of commands breaks the lifecycle or its history."""

import itertools

from hypothesis import event, given, settings
from hypothesis import strategies as st

from cti_bridge.tickets.errors import TicketError
from cti_bridge.tickets.model import OPEN_STATUSES, TicketStatus
from cti_bridge.tickets.workflow import (
    AddComment,
    Assign,
    ChangePriority,
    Close,
    Reopen,
    Resolve,
    Resume,
    Start,
    UpdateFields,
    Wait,
    WaitingOn,
    replay,
)
from tests.unit.tickets.test_workflow import T0, WORKFLOW

S = TicketStatus
agents = st.sampled_from(["alice", "bob", "carol", ""])
field_values = st.dictionaries(
    st.sampled_from(["category", "resolution", "description", "urgency", "affected_users", "colour"]),
    st.sampled_from(
        [None, "", "咨询", "技术故障/网络问题/登录异常", "technical/other", "已解决", "紧急", "3", "x/y"]
    ),
    max_size=3,
)
commands = st.one_of(
    st.builds(Assign, assignee=agents, reason=st.none() | st.just("load")),
    st.builds(Start, fields=field_values),
    st.builds(Wait, on=st.sampled_from(WaitingOn), reason=st.none() | st.just("等待")),
    st.builds(Resume),
    st.builds(Resolve, fields=field_values),
    st.builds(Close, confirmed_by_customer=st.booleans()),
    st.builds(Reopen, reason=st.sampled_from(["", "复发"])),
    st.builds(UpdateFields, values=field_values),
    st.builds(ChangePriority, priority=st.sampled_from(["P1", "P4", "紧急", "常规", "P7"])),
    st.builds(AddComment, text=st.sampled_from(["", "@bob 看看", "ok"])),
)


def check_invariants(state):
    assert state.status in set(TicketStatus)
    assert (state.status is S.WAITING) == (state.waiting_on is not None)
    assert state.sla_paused == (state.status is S.WAITING and state.waiting_on is WaitingOn.CUSTOMER)
    if state.status in OPEN_STATUSES - {S.NEW}:
        assert state.assignee
    if state.status is S.NEW:
        assert state.assignee is None
    assert state.priority in ("P1", "P2", "P3", "P4")
    assert all(value not in (None, "", ()) for value in state.fields.values())
    history = state.history
    assert history[0].from_status is None and history[0].to_status is S.NEW
    for before, after in itertools.pairwise(history):
        assert after.from_status is before.to_status
        assert after.at >= before.at
    assert history[-1].to_status is state.status


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=40))
def test_no_command_sequence_breaks_the_lifecycle_or_its_history(sequence):
    reached = set()
    state = WORKFLOW.open(actor="system", at=T0, priority="P3").state
    for i, command in enumerate(sequence):
        try:
            transition = WORKFLOW.apply(state, command, actor="agent", at=T0 + i)
        except TicketError:
            continue  # a refusal leaves the ticket as it was
        assert transition.events, "a change without a history event"
        assert transition.state.history == state.history + transition.events  # appended, nothing lost
        state = transition.state
        # Tickets start without fields: the status they reach has all it requires.
        assert not WORKFLOW.schema.missing(state.status, state.fields)
        check_invariants(state)
        reached.add(state.status)
    event("reached closed" if S.CLOSED in reached else "never closed")
    assert replay(state.history) == state
