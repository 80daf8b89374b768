import dataclasses
import json
from pathlib import Path

from cti_bridge.ami.mapping import map_message
from cti_bridge.calls import events as ev
from cti_bridge.calls.agents import AgentDirectory, AgentEntry
from cti_bridge.calls.model import (
    AgentAnswered,
    AgentRang,
    CallEnded,
    CallQualified,
    Direction,
    Outcome,
    RecordingAnnounced,
    RingEnd,
)
from cti_bridge.calls.tracker import CallTracker, PbxRouting
from tests.support.ami_replay import messages_of_capture

FIXTURES = Path(__file__).parents[2] / "fixtures" / "ami"


def tracker(inbound=("test-context",), outbound=()):
    return CallTracker(
        {"p": PbxRouting(frozenset(inbound), frozenset(outbound))},
        AgentDirectory(
            [
                AgentEntry("agent1", ("Local/agent1@agents",)),
                AgentEntry("agent9", ("Local/agent9@agents",)),
            ]
        ),
    )


def replay(t, messages):
    updates = []
    for i, message in enumerate(messages):
        event = map_message("p", message, 1000.0 + i)
        if event is not None:
            updates += t.handle(event)
    return updates


def kinds(updates):
    return [type(u).__name__ + (f":{u.agent_id}" if hasattr(u, "agent_id") else "") for u in updates]


def test_queue_call_from_real_capture():
    updates = replay(tracker(), messages_of_capture(FIXTURES / "queue_raw_passive_rx.ami"))
    assert kinds(updates) == [
        "CallQualified",
        "AgentRang:agent1",
        "AgentAnswered:agent1",
        "CallEnded",
    ]
    # Qualified at queue join, after MixMonitor started: the recording comes with it.
    assert updates[0].call.recordings == ("/var/spool/asterisk/monitor/1795358836.7.wav",)
    call = updates[-1].call
    assert call.direction is Direction.INBOUND
    assert (call.caller_number, call.did, call.queue) == ("+15551230003", "300", "support")
    assert call.agent_id == "agent1" and call.outcome is Outcome.ANSWERED
    assert call.recordings == ("/var/spool/asterisk/monitor/1795358836.7.wav",)
    assert call.hangup_cause == 16 and call.hangup_cause_text == "Normal Clearing"
    assert call.ring_seconds is not None and call.talk_seconds is not None
    assert call.started_at < call.answered_at < call.ended_at


def test_dial_call_takes_the_dialplan_channels_caller_id():
    # ;1 carries the originate's CallerID, ;2 runs the dialplan that Set a new one.
    updates = replay(tracker(), messages_of_capture(FIXTURES / "dial_raw_passive_rx.ami"))
    assert kinds(updates) == [
        "CallQualified",
        "AgentRang:agent1",
        "AgentAnswered:agent1",
        "CallEnded",
    ]
    assert updates[0].call.caller_number == "+15551230002"
    assert updates[-1].call.outcome is Outcome.ANSWERED


def test_call_answered_by_the_pbx_alone_is_ivr():
    updates = replay(tracker(), messages_of_capture(FIXTURES / "call1_raw_passive_rx.ami"))
    assert kinds(updates) == ["CallQualified", "CallEnded"]  # qualified at hangup: never routed
    assert updates[-1].call.outcome is Outcome.IVR
    assert updates[-1].call.agent_id is None


def test_calls_outside_inbound_contexts_get_no_ticket():
    updates = replay(
        tracker(inbound=("from-pstn",)), messages_of_capture(FIXTURES / "queue_raw_passive_rx.ami")
    )
    assert not any(isinstance(u, CallQualified) for u in updates)
    assert updates[-1].call.direction is Direction.INTERNAL


def test_twenty_concurrent_queue_calls_are_kept_apart():
    lines = (FIXTURES / "load20_queue_panoramisk_events.jsonl").read_text().splitlines()
    updates = replay(tracker(), [json.loads(line) for line in lines])
    ended = [u.call for u in updates if isinstance(u, CallEnded)]
    assert len(ended) == 20
    assert len({c.key for c in ended}) == 20
    assert sum(isinstance(u, CallQualified) for u in updates) == 20
    assert all(c.outcome is Outcome.ANSWERED and c.agent_id == "agent1" for c in ended)
    assert all(len(c.recordings) == 1 for c in ended)


# -- synthetic scenarios --------------------------------------------------------


def chan(uid, linked, name, context="from-pstn", exten="4003", num="+8613800138000", at=1.0):
    return ev.ChannelCreated(
        pbx="p",
        at=at,
        uniqueid=uid,
        linkedid=linked,
        channel=name,
        context=context,
        exten=exten,
        caller_number=num,
        caller_name="Zhang",
    )


def hangup(uid, linked, name, at, cause=16):
    return ev.ChannelHungUp(
        pbx="p",
        at=at,
        uniqueid=uid,
        linkedid=linked,
        channel=name,
        cause=cause,
        cause_text="Normal Clearing",
    )


def test_abandoned_in_queue():
    t = tracker(inbound=("from-pstn",))
    out = t.handle(chan("1.1", "1.1", "PJSIP/trunk-00000001"))
    out += t.handle(
        ev.QueueJoined(pbx="p", at=2.0, uniqueid="1.1", linkedid="1.1", queue="sales", position=1)
    )
    out += t.handle(
        ev.QueueAgentRinging(
            pbx="p",
            at=2.1,
            uniqueid="1.1",
            linkedid="1.1",
            queue="sales",
            interface="Local/agent9@agents",
            member_name="Nine",
            dest_uniqueid="1.2",
            dest_channel="Local/agent9@agents-00000002;1",
        )
    )
    out += t.handle(
        ev.QueueCallerAbandoned(
            pbx="p", at=9.0, uniqueid="1.1", linkedid="1.1", queue="sales", hold_seconds=7
        )
    )
    out += t.handle(hangup("1.1", "1.1", "PJSIP/trunk-00000001", 9.1))
    assert kinds(out) == ["CallQualified", "AgentRang:agent9", "AgentRingStopped:agent9", "CallEnded"]
    call = out[-1].call
    assert call.outcome is Outcome.ABANDONED and call.queue == "sales"
    assert call.ring_seconds == 8.1 and call.talk_seconds is None


def test_missed_when_agents_rang_and_nobody_answered():
    t = tracker(inbound=("from-pstn",))
    t.handle(chan("1.1", "1.1", "PJSIP/trunk-00000001"))
    out = t.handle(
        ev.DialStarted(
            pbx="p",
            at=2.0,
            uniqueid="1.1",
            linkedid="1.1",
            dest_uniqueid="1.2",
            dest_channel="Local/agent1@agents-00000002;1",
        )
    )
    out += t.handle(
        ev.DialEnded(
            pbx="p",
            at=5.0,
            uniqueid="1.1",
            linkedid="1.1",
            dest_uniqueid="1.2",
            dest_channel="Local/agent1@agents-00000002;1",
            status="NOANSWER",
        )
    )
    out += t.handle(hangup("1.1", "1.1", "PJSIP/trunk-00000001", 6.0))
    assert kinds(out) == ["CallQualified", "AgentRang:agent1", "AgentRingStopped:agent1", "CallEnded"]
    assert out[2].why is RingEnd.NO_ANSWER
    assert out[-1].call.outcome is Outcome.MISSED


def test_ring_and_answer_pop_once_per_agent_even_when_queue_and_dial_both_report():
    t = tracker(inbound=("from-pstn",))
    t.handle(chan("1.1", "1.1", "PJSIP/trunk-00000001"))
    ring = dict(
        pbx="p",
        uniqueid="1.1",
        linkedid="1.1",
        dest_uniqueid="1.2",
        dest_channel="Local/agent1@agents-00000002;1",
    )
    out = t.handle(
        ev.QueueAgentRinging(at=2.0, queue="q", interface="Local/agent1@agents", member_name="One", **ring)
    )
    out += t.handle(ev.DialStarted(at=2.0, **ring))
    out += t.handle(ev.DialEnded(at=3.0, status="ANSWER", **ring))
    out += t.handle(
        ev.QueueAgentConnected(
            at=3.0,
            queue="q",
            interface="Local/agent1@agents",
            member_name="One",
            hold_seconds=1,
            **ring,
        )
    )
    assert kinds(out) == ["CallQualified", "AgentRang:agent1", "AgentAnswered:agent1"]


def test_resync_ends_calls_that_vanished_and_keeps_calls_seen_after_the_request():
    t = tracker(inbound=("from-pstn",))
    t.handle(chan("1.1", "1.1", "PJSIP/trunk-00000001", at=1.0))
    t.handle(ev.QueueJoined(pbx="p", at=1.5, uniqueid="1.1", linkedid="1.1", queue="q", position=1))
    t.handle(chan("2.1", "2.1", "PJSIP/trunk-00000002", at=10.5))  # born after we asked
    out = t.handle(ev.LiveChannelsListed(pbx="p", at=11.0, requested_at=10.0, channels=()))
    assert kinds(out) == ["CallEnded"]
    assert out[0].call.key.linkedid == "1.1" and out[0].call.outcome is Outcome.LOST
    assert [c.key.linkedid for c in t.live_calls] == ["2.1"]


def test_resync_adopts_a_call_that_began_while_we_were_away():
    t = tracker(inbound=("from-pstn",))
    live = (
        ev.LiveChannel(
            uniqueid="5.1",
            linkedid="5.1",
            channel="PJSIP/trunk-00000009",
            context="from-pstn",
            exten="4002",
            application="Queue",
            application_data="support,,,,60",
            caller_number="+8613800138000",
            caller_name="Zhang",
            up=True,
            bridged=True,
            duration_seconds=12,
        ),
        ev.LiveChannel(
            uniqueid="5.2",
            linkedid="5.1",
            channel="Local/agent1@agents-0000000a;1",
            context="agents",
            exten="4002",
            application="AppQueue",
            application_data="(Outgoing Line)",
            caller_number="+8613800138000",
            caller_name="Zhang",
            up=True,
            bridged=True,
            duration_seconds=4,
        ),
    )
    out = t.handle(ev.LiveChannelsListed(pbx="p", at=100.0, requested_at=99.0, channels=live))
    assert kinds(out) == ["CallQualified", "AgentRang:agent1", "AgentAnswered:agent1"]
    call = out[-1].call
    assert (call.did, call.queue, call.caller_number) == ("4002", "support", "+8613800138000")
    assert call.started_at == 88.0
    # The same snapshot again (another reconnect) changes nothing.
    assert t.handle(ev.LiveChannelsListed(pbx="p", at=101.0, requested_at=100.5, channels=live)) == []
    out = t.handle(hangup("5.2", "5.1", "Local/agent1@agents-0000000a;1", 120.0))
    out += t.handle(hangup("5.1", "5.1", "PJSIP/trunk-00000009", 120.1))
    assert kinds(out) == ["CallEnded"] and out[0].call.outcome is Outcome.ANSWERED


def test_resync_learns_recordings_set_while_we_were_away():
    t = tracker(inbound=("from-pstn",))
    t.handle(chan("1.1", "1.1", "PJSIP/trunk-00000001", at=1.0))
    t.handle(ev.QueueJoined(pbx="p", at=1.5, uniqueid="1.1", linkedid="1.1", queue="q", position=1))
    live = ev.LiveChannel(
        uniqueid="1.1",
        linkedid="1.1",
        channel="PJSIP/trunk-00000001",
        context="from-pstn",
        exten="4003",
        application="Queue",
        application_data="q",
        caller_number=None,
        caller_name=None,
        up=True,
        bridged=False,
        duration_seconds=9,
        recording="/spool/1.1.wav",
    )
    out = t.handle(ev.LiveChannelsListed(pbx="p", at=10.0, requested_at=9.5, channels=(live,)))
    assert kinds(out) == ["RecordingAnnounced"] and out[0].path == "/spool/1.1.wav"
    new = dataclasses.replace(live, uniqueid="2.1", linkedid="2.1", recording="/spool/2.1.wav")
    out = t.handle(ev.LiveChannelsListed(pbx="p", at=11.0, requested_at=10.5, channels=(live, new)))
    assert kinds(out) == ["CallQualified"] and out[0].call.recordings == ("/spool/2.1.wav",)


def test_recording_announced_after_qualification():
    t = tracker(inbound=("from-pstn",))
    t.handle(chan("1.1", "1.1", "PJSIP/trunk-00000001"))
    t.handle(ev.QueueJoined(pbx="p", at=2.0, uniqueid="1.1", linkedid="1.1", queue="q", position=1))
    out = t.handle(ev.RecordingStarted(pbx="p", at=2.5, uniqueid="1.1", linkedid="1.1", path="/r/1.1.wav"))
    out += t.handle(ev.RecordingStarted(pbx="p", at=2.6, uniqueid="1.1", linkedid="1.1", path="/r/1.1.wav"))
    assert kinds(out) == ["RecordingAnnounced"]
    assert isinstance(out[0], RecordingAnnounced) and out[0].path == "/r/1.1.wav"


def test_an_agents_own_leg_in_an_inbound_context_is_not_the_caller():
    t = tracker(inbound=("from-pstn", "agents"))
    t.handle(chan("1.1", "1.1", "Local/agent1@agents-00000001;1", context="agents"))
    out = t.handle(hangup("1.1", "1.1", "Local/agent1@agents-00000001;1", 2.0))
    assert out[-1].call.direction is Direction.INTERNAL
    assert not any(isinstance(u, (CallQualified, AgentRang, AgentAnswered)) for u in out)


# -- IVR choices ------------------------------------------------------------------


def ivr_tracker(ivr_variables=()):
    return CallTracker(
        {"p": PbxRouting(frozenset({"from-pstn"}), ivr_variables=frozenset(ivr_variables))},
        AgentDirectory([AgentEntry("agent1", ("Local/agent1@agents",))]),
    )


def on_the_caller(**headers):
    """An AMI event on the caller's channel, as panoramisk hands it over."""
    return {
        "Privilege": "dialplan,all",
        "Channel": "PJSIP/trunk-00000001",
        "Context": "ivr-main",
        "Exten": "2",
        "Uniqueid": "1.1",
        "Linkedid": "1.1",
        **headers,
    }


def feed(t, *messages):
    updates = []
    for message in messages:
        event = map_message("p", message, 2.0)
        if event is not None:
            updates += t.handle(event)
    return updates


def test_an_ivr_choice_sent_as_a_user_event_is_on_the_call_when_it_is_routed():
    t = ivr_tracker()
    t.handle(chan("1.1", "1.1", "PJSIP/trunk-00000001", exten="4008003000"))
    out = feed(
        t,
        on_the_caller(Event="UserEvent", UserEvent="IvrChoice", Menu="main", Choice="2"),
        on_the_caller(Event="UserEvent", UserEvent="SurveyResult", Score="5"),  # not an IVR choice
        on_the_caller(Event="QueueCallerJoin", Queue="billing", Position="1"),
    )
    assert kinds(out) == ["CallQualified"]
    assert out[0].call.ivr_choices == (("main", "2"),)
    assert out[0].call.did == "4008003000" and out[0].call.queue == "billing"


def test_an_ivr_choice_set_in_a_configured_variable_is_recorded():
    t = ivr_tracker(ivr_variables={"IVR_CHOICE"})
    t.handle(chan("1.1", "1.1", "PJSIP/trunk-00000001"))
    out = feed(
        t,
        on_the_caller(Event="VarSet", Variable="IVR_CHOICE", Value="1"),
        on_the_caller(Event="VarSet", Variable="DIALSTATUS", Value="ANSWER"),  # not configured
        on_the_caller(Event="VarSet", Variable="IVR_CHOICE", Value="3"),  # went back, chose again
        on_the_caller(Event="QueueCallerJoin", Queue="support", Position="1"),
    )
    assert out[0].call.ivr_choices == (("IVR_CHOICE", "1"), ("IVR_CHOICE", "3"))


def test_a_choice_after_routing_is_on_the_later_snapshots():
    t = ivr_tracker()
    t.handle(chan("1.1", "1.1", "PJSIP/trunk-00000001"))
    out = feed(t, on_the_caller(Event="QueueCallerJoin", Queue="support", Position="1"))
    assert out[0].call.ivr_choices == ()
    # A choice without its Menu is ignored: the tracker cannot tell which menu it answers.
    feed(
        t,
        on_the_caller(Event="UserEvent", UserEvent="IvrChoice", Choice="9"),
        on_the_caller(Event="UserEvent", UserEvent="IvrChoice", menu="survey-opt-in", choice="1"),
    )
    out = t.handle(hangup("1.1", "1.1", "PJSIP/trunk-00000001", 9.0))
    assert out[-1].call.ivr_choices == (("survey-opt-in", "1"),)


def test_an_outbound_dial_through_a_local_channel_takes_the_trunks_number():
    """The phone dials a Local dial-out context (9 + number), which dials the trunk: the customer
    is the number the trunk is given, answered when the trunk answers."""
    t = CallTracker(
        {"p": PbxRouting(frozenset({"from-pstn"}))},
        AgentDirectory([AgentEntry("alice", ("PJSIP/1001",))]),
    )
    out = t.handle(chan("1.1", "1.1", "PJSIP/1001-00000001", context="from-internal", exten="9013800138000"))

    def dial(uid, dest_uid, dest, dial_string, at):
        return ev.DialStarted(
            pbx="p",
            at=at,
            uniqueid=uid,
            linkedid="1.1",
            dest_uniqueid=dest_uid,
            dest_channel=dest,
            dial_string=dial_string,
        )

    out += t.handle(chan("1.2", "1.1", "Local/9013800138000@dialout-00000002;1", context="dialout"))
    out += t.handle(chan("1.3", "1.1", "Local/9013800138000@dialout-00000002;2", context="dialout"))
    out += t.handle(
        dial("1.1", "1.2", "Local/9013800138000@dialout-00000002;1", "9013800138000@dialout", 1.0)
    )
    out += t.handle(chan("1.4", "1.1", "PJSIP/trunk-00000003", context="from-trunk"))
    out += t.handle(dial("1.3", "1.4", "PJSIP/trunk-00000003", "013800138000@trunk", 1.1))
    out += t.handle(
        ev.DialEnded(
            pbx="p",
            at=3.0,
            uniqueid="1.3",
            linkedid="1.1",
            dest_uniqueid="1.4",
            dest_channel="PJSIP/trunk-00000003",
            status="ANSWER",
        )
    )
    for uid, name in (
        ("1.4", "PJSIP/trunk-00000003"),
        ("1.3", "x;2"),
        ("1.2", "x;1"),
        ("1.1", "PJSIP/1001-1"),
    ):
        out += t.handle(hangup(uid, "1.1", name, 9.0))
    assert kinds(out) == ["CallQualified", "AgentRang:alice", "AgentAnswered:alice", "CallEnded"]
    end = out[-1].call
    assert end.direction is Direction.OUTBOUND and end.caller_number == "013800138000"
    assert (end.answered_at, end.outcome, end.placed_by) == (3.0, Outcome.ANSWERED, "alice")


def test_a_stop_opens_the_calls_still_in_the_ivr_once():
    """Issue #12: a call not yet routed was known only to the tracker; the stop now opens it."""
    t = tracker()
    messages = messages_of_capture(FIXTURES / "call1_raw_passive_rx.ami")
    hung_up = next(i for i, m in enumerate(messages) if m.get("Event") == "Hangup")
    assert not any(isinstance(u, CallQualified) for u in replay(t, messages[:hung_up]))
    [opened] = t.open_unrouted()
    assert isinstance(opened, CallQualified) and opened.call.caller_number == "+15551230001"
    assert opened.call.recordings and opened.call.ended_at is None
    assert t.open_unrouted() == []  # once only
    assert [type(u).__name__ for u in replay(t, messages[hung_up:])] == ["CallEnded"]
