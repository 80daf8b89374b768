"""The event path keeps going when one event fails; post-call survey scores reach their ticket."""

import asyncio
import contextlib
import json
import time
from pathlib import Path

import pytest
import structlog

from cti_bridge.ami.client import AmiFrame
from cti_bridge.app import build_tracker
from cti_bridge.calls import events as ev
from cti_bridge.config import Config
from cti_bridge.pipeline import CallPipeline
from cti_bridge.store import Store, notifications
from cti_bridge.tickets.dispatch import CallbackPolicy
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.service import TicketService
from tests.support.ami_replay import messages_of_capture

CAPTURE = Path(__file__).parents[1] / "fixtures" / "ami" / "dial_raw_passive_rx.ami"


class Published:
    def __init__(self):
        self.topics = []

    def publish(self, message):
        self.topics.append(message.topic)


class NoRecordings:
    async def announced(self, call, path):
        pass

    def call_ended(self, call):
        pass


async def test_a_failing_event_is_logged_and_the_stream_goes_on(tmp_path):
    config = Config.model_validate(
        {
            "pbxs": [
                {"name": "p", "username": "u", "secret": {"env": "X"}, "inbound_contexts": ["test-context"]}
            ],
            "agents": [{"id": "agent1", "interfaces": ["Local/agent1@agents"]}],
        }
    )
    store = await Store.open(f"sqlite:///{tmp_path}/p.db", TicketNumbering())
    tracker = build_tracker(config)
    published = Published()
    pipeline = CallPipeline(
        tracker, TicketService(store, config.tickets, "US"), store, NoRecordings(), published
    )
    runner = asyncio.create_task(pipeline.run(), name="pipeline-under-test")
    try:
        # The store fails while the pipeline closes the calls that ended while we were away.
        original = store.open_calls

        async def broken(pbx):
            raise RuntimeError("store went away")

        store.open_calls = broken
        pipeline.submit(ev.LiveChannelsListed(pbx="p", at=1.0, requested_at=0.5, channels=()))
        await pipeline.drain()
        store.open_calls = original
        for message in messages_of_capture(CAPTURE):
            pipeline.submit(AmiFrame("p", message, 2.0))
        await pipeline.drain()
        assert pipeline.failed == 1
        assert published.topics.count("agents/agent1/screenpop") == 2
        assert len(await store.list_tickets()) == 1
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await store.close()


# -- the post-call survey (CSAT) ---------------------------------------------------


class PublishedBodies:
    def __init__(self):
        self.messages = []

    def publish(self, message):
        self.messages.append((message.topic, json.loads(message.payload)))

    def notices(self, event):
        return [(topic, body) for topic, body in self.messages if body.get("event") == event]


@pytest.fixture
async def surveyed(tmp_path):
    """A pipeline that has seen one whole call (the dial capture), its store and publisher."""
    config = Config.model_validate(
        {
            "pbxs": [
                {"name": "p", "username": "u", "secret": {"env": "X"}, "inbound_contexts": ["test-context"]}
            ],
            "agents": [{"id": "agent1", "interfaces": ["Local/agent1@agents"]}],
        }
    )
    store = await Store.open(f"sqlite:///{tmp_path}/s.db", TicketNumbering())
    published = PublishedBodies()
    pipeline = CallPipeline(
        build_tracker(config), TicketService(store, config.tickets, "US"), store, NoRecordings(), published
    )
    runner = asyncio.create_task(pipeline.run(), name="pipeline-under-test")
    try:
        for message in messages_of_capture(CAPTURE):
            pipeline.submit(AmiFrame("p", message, 2.0))
        await pipeline.drain()
        [ticket] = await store.list_tickets()
        call = await store._db.fetchone("SELECT pbx, linkedid, ended_at FROM calls")
        assert call["ended_at"] is not None  # the survey comes after the call ended here
        yield pipeline, store, published, ticket["number"], call["linkedid"]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await store.close()


def survey_event(linkedid, **headers):
    """A SurveyResult UserEvent as panoramisk hands it over (channel fields, then ours)."""
    return {
        "Event": "UserEvent",
        "Privilege": "user,all",
        "Channel": "Local/talk@callers-00000000;1",
        "Uniqueid": linkedid,
        "Linkedid": linkedid,
        "UserEvent": "SurveyResult",
        **headers,
    }


async def test_a_survey_score_lands_on_the_ticket_of_its_call_after_the_call_ended(surveyed):
    pipeline, store, published, number, linkedid = surveyed
    # The channel's own Linkedid is of some other call: CallLinkedid wins.
    pipeline.submit(AmiFrame("p", survey_event("1.1", Score="4", CallLinkedid=linkedid), 3.0))
    await pipeline.drain()
    detail = await store.ticket_detail(number)
    assert [(c["linkedid"], c["score"]) for c in detail["csat"]] == [(linkedid, 4)]
    [(topic, notice)] = published.notices("csat")
    assert topic == f"tickets/{number}" and notice["ticket"]["number"] == number
    assert notice["data"] == {"call": f"p/{linkedid}", "score": 4}
    assert pipeline.failed == 0


async def test_without_call_linkedid_the_channel_linkedid_names_the_call(surveyed):
    pipeline, store, published, number, linkedid = surveyed
    pipeline.submit(AmiFrame("p", survey_event(linkedid, Score="2"), 3.0))
    pipeline.submit(AmiFrame("p", survey_event(linkedid, Score="5"), 4.0))  # asked again: replaced
    await pipeline.drain()
    detail = await store.ticket_detail(number)
    assert [(c["linkedid"], c["score"]) for c in detail["csat"]] == [(linkedid, 5)]
    assert [n["data"]["score"] for _, n in published.notices("csat")] == [2, 5]


@pytest.mark.parametrize("headers", [{"Score": "0"}, {"Score": "6"}, {"Score": "x"}, {"Score": ""}, {}])
async def test_a_bad_or_missing_score_is_logged_and_ignored(surveyed, headers):
    pipeline, store, published, number, linkedid = surveyed
    with structlog.testing.capture_logs() as logs:
        pipeline.submit(AmiFrame("p", survey_event(linkedid, **headers), 3.0))
        await pipeline.drain()
    [warning] = [entry for entry in logs if entry["event"] == "csat.bad_score_ignored"]
    assert warning["log_level"] == "warning" and warning["call"] == f"p/{linkedid}"
    assert (await store.ticket_detail(number))["csat"] == []
    assert published.notices("csat") == [] and pipeline.failed == 0


async def test_a_survey_of_an_unknown_call_is_logged_and_ignored(surveyed):
    pipeline, _, published, _, _ = surveyed
    with structlog.testing.capture_logs() as logs:
        pipeline.submit(AmiFrame("p", survey_event("9.9", Score="3"), 3.0))
        await pipeline.drain()
    assert [e["log_level"] for e in logs if e["event"] == "csat.no_ticket"] == ["warning"]
    assert published.notices("csat") == [] and pipeline.failed == 0


async def test_other_user_events_are_not_surveys(surveyed):
    pipeline, store, published, number, linkedid = surveyed
    event = {**survey_event(linkedid, Score="4"), "UserEvent": "IvrChoice"}
    pipeline.submit(AmiFrame("p", event, 3.0))
    await pipeline.drain()
    assert (await store.ticket_detail(number))["csat"] == [] and published.notices("csat") == []


# -- callbacks for calls nobody answered -------------------------------------------------

T0 = 1_800_000_000.0


def missed_call(linkedid, number, agent, at):
    """A call to DID 4001 that rang `agent`'s phone until the caller hung up."""
    trunk = f"PJSIP/trunk-{linkedid}"
    leg = dict(pbx="p", uniqueid=linkedid, linkedid=linkedid)
    dest = dict(dest_uniqueid=f"{linkedid}.2", dest_channel=f"Local/{agent}@agents-0000000{linkedid[0]};1")
    return [
        ev.ChannelCreated(
            **leg,
            at=at,
            channel=trunk,
            context="from-pstn",
            exten="4001",
            caller_number=number,
            caller_name="Li",
        ),
        ev.DialStarted(**leg, at=at + 1, **dest),
        ev.DialEnded(**leg, at=at + 20, status="NOANSWER", **dest),
        ev.ChannelHungUp(**leg, at=at + 21, channel=trunk, cause=16, cause_text="Normal Clearing"),
    ]


def dispatch_config():
    """agent1 answers calls; agent2 and agent3 call back network issues."""
    return Config.model_validate(
        {
            "pbxs": [
                {
                    "name": "p",
                    "username": "u",
                    "secret": {"env": "X"},
                    "inbound_contexts": ["from-pstn", "test-context"],
                }
            ],
            "agents": [
                {"id": "agent1", "interfaces": ["Local/agent1@agents"], "team": "desk"},
                {
                    "id": "agent2",
                    "interfaces": ["Local/agent2@agents"],
                    "skills": ["network"],
                    "team": "desk",
                },
                {
                    "id": "agent3",
                    "interfaces": ["Local/agent3@agents"],
                    "skills": ["network"],
                    "team": "desk",
                },
            ],
            "teams": [{"name": "desk"}],
            "tickets": {
                "rules": [
                    {"name": "line", "when": {"did": ["4001"]}, "category": "技术故障/网络问题/登录异常"}
                ]
            },
            "dispatch": {
                "skills": {"by_category": {"技术故障/网络问题": ["network"]}},
                "default_team": "desk",
            },
        }
    )


@contextlib.asynccontextmanager
async def running_pipeline(store, published, *, callbacks=True, clock=time.time):
    config = dispatch_config()
    pipeline = CallPipeline(
        build_tracker(config),
        TicketService(store, config.tickets, "CN"),
        store,
        NoRecordings(),
        published,
        clock=clock,
        callbacks=CallbackPolicy.from_config(config) if callbacks else None,
    )
    runner = asyncio.create_task(pipeline.run(), name="pipeline-under-test")
    try:
        yield pipeline
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


@pytest.fixture
async def dispatching(tmp_path):
    """A pipeline dispatching callbacks (dispatch_config)."""
    store = await Store.open(f"sqlite:///{tmp_path}/cb.db", TicketNumbering())
    published = PublishedBodies()
    try:
        async with running_pipeline(store, published) as pipeline:
            yield pipeline, store, published
    finally:
        await store.close()


async def test_a_missed_call_becomes_a_callback_ticket_on_the_agents_screen(dispatching):
    pipeline, store, published = dispatching
    # agent2 already holds a callback from an earlier missed call: agent3 gets the next one.
    for event in missed_call("1.1", "13800000001", "agent1", T0) + missed_call(
        "2.1", "13800000002", "agent1", T0 + 60
    ):
        pipeline.submit(event)
    await pipeline.drain()

    first, second = sorted(await store.list_tickets(), key=lambda t: t["number"])
    assert (first["assignee"], first["status"]) == ("agent2", "assigned")
    assert (second["assignee"], second["status"]) == ("agent3", "assigned")
    detail = await store.ticket_detail(second["number"])
    assert [(e["kind"], e["actor"]) for e in detail["history"] if e["actor"] == "dispatch"] == [
        ("callback_requested", "dispatch"),
        ("assigned", "dispatch"),
    ]
    row = await store._db.fetchone(
        "SELECT reason FROM ticket_events WHERE kind = 'assigned' AND actor = 'dispatch' AND ticket_id = ?",
        (detail["id"],),
    )
    assert row["reason"].startswith("agent3: skill network matches, load 0/10")
    assert "agent2: skill network matches, load 1/10" in row["reason"]
    assert "agent1: lacks skill network" in row["reason"]

    [(topic, callback)] = [
        (t, b)
        for t, b in published.messages
        if t.endswith("/callbacks") and b["ticket"]["number"] == second["number"]
    ]
    assert topic == "agents/agent3/callbacks"
    assert callback["reason"] == "missed" and callback["assigned"] is True
    assert callback["explanation"] == row["reason"]
    assert (
        callback["call"]["caller_number"] == "+8613800000002" and callback["ticket"]["assignee"] == "agent3"
    )
    [(_, notice)] = [(t, n) for t, n in published.notices("callback") if t == f"tickets/{second['number']}"]
    assert notice["data"]["outcome"] == "assigned" and notice["data"]["assignee"] == "agent3"
    assert pipeline.failed == 0


async def test_a_call_replayed_is_not_dispatched_again(dispatching):
    pipeline, store, published = dispatching
    # The same call's events twice, as a replayed transcript would bring them.
    for _ in range(2):
        for event in missed_call("1.1", "13800000001", "agent1", T0):
            pipeline.submit(event)
        await pipeline.drain()

    [ticket] = await store.list_tickets()
    detail = await store.ticket_detail(ticket["number"])
    assert [e["kind"] for e in detail["history"] if e["actor"] == "dispatch"] == [
        "callback_requested",
        "assigned",
    ]
    assert len([t for t, _ in published.messages if t.endswith("/callbacks")]) == 1


async def test_an_answered_call_is_no_callback(dispatching):
    pipeline, store, published = dispatching
    for message in messages_of_capture(CAPTURE):
        pipeline.submit(AmiFrame("p", message, 2.0))
    await pipeline.drain()
    [ticket] = await store.list_tickets()
    assert ticket["assignee"] == "agent1"  # who answered
    assert not [t for t, _ in published.messages if t.endswith("/callbacks")]
    assert published.notices("callback") == [] and pipeline.failed == 0


async def test_a_callback_left_undispatched_by_a_stopping_daemon_is_dispatched_at_the_next_start(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path}/cb.db", TicketNumbering())
    published = PublishedBodies()
    try:
        # A run that recorded the call's end but stopped before dispatching it.
        async with running_pipeline(store, published, callbacks=False) as stopping:
            for event in missed_call("1.1", "13800000001", "agent1", T0):
                stopping.submit(event)
            await stopping.drain()
        [ticket] = await store.list_tickets()
        assert ticket["assignee"] is None

        for _ in range(2):  # started again, twice: dispatched once
            async with running_pipeline(store, published, clock=lambda: T0 + 3600) as started:
                await started.drain()

        [ticket] = await store.list_tickets()
        assert (ticket["assignee"], ticket["status"]) == ("agent2", "assigned")
        [told] = await notifications.pending(store._db)
        assert (told.recipient, told.kind) == ("agent2", "callback_assigned")
        assert len(published.notices("callback")) == 1
    finally:
        await store.close()
