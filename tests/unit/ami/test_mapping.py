import json
from pathlib import Path

import pytest
from panoramisk.message import Message

from cti_bridge.ami.mapping import MalformedEvent, map_live_channels, map_message, wanted, worth_parsing
from cti_bridge.calls import events as ev
from tests.support.ami_replay import events_of_capture, messages_of_capture

FIXTURES = Path(__file__).parents[2] / "fixtures" / "ami"


def test_unknown_and_uninteresting_events_are_ignored():
    assert map_message("p", {"Event": "TestEvent", "Type": "StateChange"}, 1.0) is None
    assert map_message("p", {"Event": "RTCPSent"}, 1.0) is None
    assert map_message("p", {"Response": "Success"}, 1.0) is None


def test_newchannel_maps_unknown_caller_id_to_none():
    event = map_message(
        "p",
        {
            "Event": "Newchannel",
            "Channel": "PJSIP/trunk-00000001",
            "Uniqueid": "1.1",
            "Linkedid": "1.1",
            "Context": "from-pstn",
            "Exten": "4000",
            "CallerIDNum": "<unknown>",
            "CallerIDName": "<unknown>",
        },
        5.0,
    )
    assert event == ev.ChannelCreated(
        pbx="p",
        at=5.0,
        uniqueid="1.1",
        linkedid="1.1",
        channel="PJSIP/trunk-00000001",
        context="from-pstn",
        exten="4000",
        caller_number=None,
        caller_name=None,
    )


def test_pbx_timestamp_wins_over_receive_time():
    event = map_message(
        "p",
        {
            "Event": "Hangup",
            "Channel": "X/1-00000001",
            "Uniqueid": "1.1",
            "Linkedid": "1.1",
            "Cause": "16",
            "Timestamp": "1795358828.250000",
        },
        9.0,
    )
    assert event is not None and event.at == pytest.approx(1795358828.25)


def test_varset_without_value_is_ignored():
    # panoramisk 1.4 drops an empty last header: `Value: ` never arrives.
    message = {
        "Event": "VarSet",
        "Uniqueid": "1.1",
        "Linkedid": "1.1",
        "Variable": "MIXMONITOR_FILENAME",
    }
    assert map_message("p", message, 1.0) is None


def test_mixmonitor_filename_becomes_recording_started():
    message = {
        "Event": "VarSet",
        "Uniqueid": "1.2",
        "Linkedid": "1.1",
        "Variable": "MIXMONITOR_FILENAME",
        "Value": "/var/spool/asterisk/monitor/1.2.wav",
    }
    assert map_message("p", message, 1.0) == ev.RecordingStarted(
        pbx="p", at=1.0, uniqueid="1.2", linkedid="1.1", path="/var/spool/asterisk/monitor/1.2.wav"
    )


def test_originate_dialbegin_without_caller_side_uses_dest_ids():
    message = {
        "Event": "DialBegin",
        "DestChannel": "Local/200@test-context-00000001;1",
        "DestUniqueid": "1.2",
        "DestLinkedid": "1.2",
    }
    event = map_message("p", message, 1.0)
    assert isinstance(event, ev.DialStarted)
    assert (event.uniqueid, event.linkedid) == ("1.2", "1.2")


def test_repeated_header_takes_the_channel_value():
    # A UserEvent header named like a channel field arrives as a list.
    message = {
        "Event": "UserEvent",
        "UserEvent": "Survey",
        "Uniqueid": "1.1",
        "Linkedid": "1.1",
        "CallerIDNum": ["+15550001", "+15559999"],
        "Score": "5",
    }
    event = map_message("p", message, 1.0)
    assert isinstance(event, ev.UserEventReceived)
    assert event.fields == (("Score", "5"),)


@pytest.mark.parametrize(
    "message",
    [
        {"Event": "Hangup", "Channel": "X/1-00000001", "Linkedid": "1.1"},  # no Uniqueid
        {
            "Event": "Hangup",
            "Channel": "X/1-00000001",
            "Uniqueid": "1.1",
            "Linkedid": "1.1",
            "Cause": "sixteen",
        },
        {
            "Event": "QueueCallerJoin",
            "Uniqueid": "1.1",
            "Linkedid": "1.1",
            "Position": "x",
            "Queue": "q",
        },
    ],
)
def test_malformed_events_raise_a_clear_error(message):
    with pytest.raises(MalformedEvent, match=message["Event"]):
        map_message("p", message, 1.0)


def test_core_show_channels_response_becomes_a_snapshot():
    responses = [json.loads(line) for line in (FIXTURES / "queue_panoramisk_responses.jsonl").open()]
    in_call = next(r for r in responses if r["action"] == "CoreShowChannels(in-call)")
    snapshot = map_live_channels("p", in_call["messages"], requested_at=1.0, received_at=2.0)
    assert len(snapshot.channels) == 4
    assert {c.linkedid for c in snapshot.channels} == {"1795358836.6"}
    queued = next(c for c in snapshot.channels if c.application == "Queue")
    assert queued.application_data == "support,,,,20"
    assert queued.bridged and queued.up and queued.caller_number == "+15551230003"
    assert next(c for c in snapshot.channels if c.application == "Wait").duration_seconds == 1


def used_by_the_tracker(event, ivr_variables):
    # The mapping turns any VarSet into ChannelVariableSet; the tracker reads the IVR ones only.
    if isinstance(event, ev.ChannelVariableSet):
        return event.variable in ivr_variables
    return event is not None


@pytest.mark.parametrize("capture", ["call1", "dial", "queue"])
@pytest.mark.parametrize("ivr_variables", [frozenset(), frozenset({"CTI_TICKET", "DIALSTATUS"})])
def test_the_arrival_filter_keeps_every_event_the_mapping_uses(capture, ivr_variables):
    messages = messages_of_capture(FIXTURES / f"{capture}_raw_passive_rx.ami")
    used = [m for m in messages if used_by_the_tracker(map_message("p", m, 0.0), ivr_variables)]
    dropped = [m for m in messages if not wanted(m, ivr_variables)]

    assert used and all(wanted(m, ivr_variables) for m in used)
    # What it drops is most of the stream: the ignored events and the other variables' VarSets.
    assert len(dropped) > len(messages) / 3
    assert any(m["Event"] == "VarSet" for m in dropped)
    kept = {"MIXMONITOR_FILENAME", *ivr_variables}
    assert not any(m["Event"] == "VarSet" and m["Variable"] in kept for m in dropped)


def test_other_variables_become_channel_variable_set():
    message = {
        "Event": "VarSet",
        "Uniqueid": "1.1",
        "Linkedid": "1.1",
        "Variable": "IVR_CHOICE",
        "Value": "2",
    }
    assert map_message("p", message, 1.0) == ev.ChannelVariableSet(
        pbx="p", at=1.0, uniqueid="1.1", linkedid="1.1", variable="IVR_CHOICE", value="2"
    )
    assert wanted(message, frozenset({"IVR_CHOICE"})) and not wanted(message)


@pytest.mark.parametrize("capture", ["call1_raw_passive", "dial_raw_passive", "queue_raw_passive"])
@pytest.mark.parametrize("ivr_variables", [frozenset(), frozenset({"CTI_TICKET", "DIALSTATUS"})])
def test_the_text_filter_never_drops_a_frame_the_message_filter_keeps(capture, ivr_variables):
    frames = [raw.decode().strip() for raw in events_of_capture(FIXTURES / f"{capture}_rx.ami")]
    parsed = [(frame, Message.from_line(frame)) for frame in frames]
    kept = [frame for frame, message in parsed if message is not None and wanted(message, ivr_variables)]
    passed = [frame for frame in frames if worth_parsing(frame, ivr_variables)]

    assert kept and set(kept) <= set(passed)
    # And it does drop: without that, panoramisk would still parse every frame.
    assert len(passed) < len(frames)


def test_the_text_filter_passes_shutdown_and_answers_to_actions():
    assert worth_parsing("Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly")
    assert worth_parsing("Event: CoreShowChannel\r\nActionID: action/1\r\nChannel: PJSIP/a-1")
    assert worth_parsing("Response: Success\r\nActionID: action/2\r\nPing: Pong")
    assert not worth_parsing("Event: Newstate\r\nChannel: PJSIP/a-1\r\nUniqueid: 1.1")
    assert not worth_parsing("Event: VarSet\r\nVariable: DIALSTATUS\r\nValue: ANSWER")
    assert worth_parsing("Event: VarSet\r\nVariable: DIALSTATUS\r\nValue: ANSWER", frozenset({"DIALSTATUS"}))
