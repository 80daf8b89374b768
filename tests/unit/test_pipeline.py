"""The event path keeps going when one event fails."""

import asyncio
from pathlib import Path

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
