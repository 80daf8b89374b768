"""The event path keeps going when one event fails; post-call survey scores reach their ticket."""

import asyncio
import json
from pathlib import Path

import pytest
import structlog

from cti_bridge.ami.client import AmiFrame
from cti_bridge.app import build_tracker
from cti_bridge.calls import events as ev
from cti_bridge.config import Config
from cti_bridge.pipeline import CallPipeline
from cti_bridge.store import Store
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
