"""Call flows replayed from real Asterisk 22 captures (tests/fixtures/ami/flows/) through the
mapping, the tracker and the agents' presence: what each flow turns into."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cti_bridge.ami.mapping import map_message
from cti_bridge.calls import events as ev
from cti_bridge.calls.agents import AgentDirectory, AgentEntry
from cti_bridge.calls.model import (
    AgentAnswered,
    AgentRingStopped,
    CallEnded,
    CallQualified,
    Direction,
    Outcome,
    RingEnd,
    TransferKind,
    Transferred,
)
from cti_bridge.calls.presence import AgentPresence, AgentStatus
from cti_bridge.calls.tracker import CallTracker, PbxRouting
from cti_bridge.calls.user_events import IvrMapping, SurveyMapping, UserEventRules

FLOWS = Path(__file__).parents[2] / "fixtures" / "ami" / "flows"
AGENTS = AgentDirectory(
    AgentEntry(f"agent{n}", (f"Local/agent{n}@agents", f"Local/agent{n}@phones")) for n in (1, 2, 3, 4, 5, 9)
)


def domain_events(name: str) -> list[ev.CallEvent]:
    out = []
    for line in (FLOWS / f"{name}.jsonl").read_text().splitlines():
        message = json.loads(line)
        event = map_message("p", message, float(message.get("Timestamp", 0.0)))
        if event is not None:
            out.append(event)
    return out


def replay(name: str, user_events: UserEventRules | None = None) -> list:
    tracker = CallTracker({"p": PbxRouting(frozenset({"from-pstn"}))}, AGENTS, user_events)
    return [update for event in domain_events(name) for update in tracker.handle(event)]


def summary(updates: list) -> list[str]:
    out = []
    for u in updates:
        name = type(u).__name__
        if isinstance(u, AgentRingStopped):
            out.append(f"{name}:{u.agent_id}:{u.why}")
        elif isinstance(u, Transferred):
            out.append(f"{name}:{u.transfer.kind}")
        elif hasattr(u, "agent_id"):
            out.append(f"{name}:{u.agent_id}")
        else:
            out.append(name)
    return out


def test_an_agents_outbound_call_dials_the_customer_and_is_answered():
    updates = replay("outbound")
    assert summary(updates) == ["CallQualified", "AgentRang:agent1", "AgentAnswered:agent1", "CallEnded"]
    call = updates[0].call
    assert call.direction is Direction.OUTBOUND and call.placed_by == "agent1"
    assert call.caller_number == "14155550123"  # from the dial string, not the 9 prefix
    end = updates[-1].call
    assert end.outcome is Outcome.ANSWERED and end.agent_id == "agent1" and end.recordings


def test_a_busy_outbound_call_is_not_answered():
    updates = replay("outbound_busy")
    assert summary(updates) == ["CallQualified", "AgentRang:agent1", "CallEnded"]
    assert updates[-1].call.outcome is Outcome.NO_ANSWER


@pytest.mark.parametrize(
    ("flow", "kind", "queue"),
    [("blind", TransferKind.BLIND, "escalation"), ("redirect", TransferKind.REDIRECT, "escalation")],
)
def test_a_transfer_to_a_queue_hands_the_caller_to_whoever_takes_them(flow, kind, queue):
    updates = replay(flow)
    [transferred] = [u for u in updates if isinstance(u, Transferred)]
    assert (transferred.transfer.kind, transferred.transfer.from_agent) == (kind, "agent4")
    assert transferred.transfer.to_queue == queue
    answers = [u.agent_id for u in updates if isinstance(u, AgentAnswered)]
    assert answers == ["agent4", "agent5"]
    last = [u for u in updates if isinstance(u, AgentAnswered)][-1].call
    assert last.transfers[-1].to_agent == "agent5" and last.queue == queue
    end = updates[-1]
    assert isinstance(end, CallEnded) and end.call.agent_id == "agent5"


def test_an_attended_transfer_goes_to_the_consulted_agent():
    updates = replay("attended")
    [transferred] = [u for u in updates if isinstance(u, Transferred)]
    transfer = transferred.transfer
    assert (transfer.kind, transfer.from_agent, transfer.to_agent) == (
        TransferKind.ATTENDED,
        "agent4",
        "agent5",
    )
    # agent5's phone rang for the consultation; the answer that counts is the transfer's.
    assert [u.agent_id for u in updates if isinstance(u, AgentAnswered)] == ["agent4", "agent5"]
    assert summary(updates).index("AgentRang:agent5") < summary(updates).index("Transferred:attended")


def test_ring_no_answer_withdraws_that_agents_ringing_only():
    updates = replay("rna")
    s = summary(updates)
    assert s[:3] == ["CallQualified", "AgentRang:agent9", f"AgentRingStopped:agent9:{RingEnd.NO_ANSWER}"]
    assert "AgentAnswered:agent4" in s and not [x for x in s if x.startswith("AgentAnswered:agent9")]


def test_a_caller_hanging_up_while_the_phone_rings_withdraws_the_pop():
    s = summary(replay("ringhangup"))
    assert s == [
        "CallQualified",
        "AgentRang:agent9",
        f"AgentRingStopped:agent9:{RingEnd.CALLER_HUNG_UP}",
        "CallEnded",
    ]


def test_another_sites_user_events_by_their_own_names():
    rules = UserEventRules(
        surveys=[SurveyMapping(event="survey", score="rating", call=None)],
        ivrs=[IvrMapping(event="IVRCHOICE", menu="MENU_NAME", choice="key")],
    )
    updates = replay("other", rules)
    qualified = next(u for u in updates if isinstance(u, CallQualified))
    assert qualified.call.ivr_choices == (("service", "2"),)
    # Read with the default (SurveyResult / IvrChoice) conventions, the same call says nothing.
    assert next(u for u in replay("other") if isinstance(u, CallQualified)).call.ivr_choices == ()
    [survey] = [
        reading
        for event in domain_events("other")
        if isinstance(event, ev.UserEventReceived)
        for reading in rules.read(event).surveys
    ]
    assert survey.raw_score == "4" and survey.linkedid == qualified.call.key.linkedid


def test_queue_logins_and_pauses_make_agent_states():
    presence = AgentPresence(AGENTS)
    states = [
        state
        for event in domain_events("members")
        if isinstance(event, ev.QueueMemberChanged)
        for state in presence.apply(event)
    ]
    assert [(s.agent_id, s.status, s.pause_reason) for s in states] == [
        ("agent3", AgentStatus.LOGGED_IN, ""),
        ("agent3", AgentStatus.PAUSED, "lunch"),
        ("agent3", AgentStatus.LOGGED_IN, ""),
        ("agent3", AgentStatus.LOGGED_OUT, ""),
    ]
    assert presence.unavailable() == {"agent3": AgentStatus.LOGGED_OUT}


def test_a_queue_status_list_replaces_what_was_known_of_that_pbx():
    presence = AgentPresence(AGENTS)
    member = ev.QueueMemberChanged(
        pbx="p",
        at=1.0,
        queue="support",
        interface="Local/agent1@agents",
        member_name="",
        logged_in=True,
        paused=False,
    )
    presence.apply(member)
    paused = dataclasses.replace(member, interface="Local/agent2@agents", paused=True, reason="break")
    listed = ev.QueueMembersListed(pbx="p", at=2.0, members=(paused,))
    states = {s.agent_id: s.status for s in presence.apply(listed)}
    assert states == {"agent1": AgentStatus.LOGGED_OUT, "agent2": AgentStatus.PAUSED}

    assert presence.state("agent2").pause_reason == "break"


def test_a_consultation_without_a_transfer_withdraws_the_colleagues_pop():
    tracker = CallTracker({"p": PbxRouting(frozenset({"from-pstn"}))}, AGENTS)
    # The attended capture with its AttendedTransfer left out: agent4 consulted agent5, and
    # everyone hung up without the transfer happening.
    events = [e for e in domain_events("attended") if not isinstance(e, ev.CallTransferred)]
    updates = [update for event in events for update in tracker.handle(event)]
    assert f"AgentRingStopped:agent5:{RingEnd.CONSULTATION_ENDED}" in summary(updates)
    assert [u.agent_id for u in updates if isinstance(u, AgentAnswered)] == ["agent4"]
    assert not [u for u in updates if isinstance(u, Transferred)]


def test_a_member_known_by_its_state_interface():
    presence = AgentPresence(AgentDirectory([AgentEntry("alice", ("PJSIP/1001",))]))
    member = ev.QueueMemberChanged(
        pbx="p",
        at=1.0,
        queue="support",
        interface="Local/alice-desk@members/n",  # a dialplan's own name for the member
        member_name="Alice",
        logged_in=True,
        paused=True,
        reason="meeting",
        state_interface="PJSIP/1001",  # the phone whose state it follows
    )
    [state] = presence.apply(member)
    assert (state.agent_id, state.status, state.pause_reason) == ("alice", AgentStatus.PAUSED, "meeting")
