"""A call path on a real store for store fault tests: the real pipeline, tracker, ticket service
and SQLite store, and the real web application answering /api/health over ASGI. Only the MQTT
edge and the recordings are stand-ins (a list, and nothing to link)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cti_bridge.app import build_tracker
from cti_bridge.calls import events as ev
from cti_bridge.config import Config
from cti_bridge.pipeline import CallPipeline
from cti_bridge.screenpop.outputs import OutboundMessage
from cti_bridge.store import Store
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.service import TicketService
from cti_bridge.tickets.workflow import Workflow
from cti_bridge.web.app import create_app
from cti_bridge.web.auth import Teams
from cti_bridge.web.context import Health, WebContext
from cti_bridge.web.live import LiveHub

T0 = 1_800_000_000.0


class Published:
    def __init__(self) -> None:
        self.messages: list[OutboundMessage] = []

    def publish(self, message: OutboundMessage) -> None:
        self.messages.append(message)


class NoRecordings:
    async def announced(self, call: Any, path: str) -> None:
        return None

    def call_ended(self, call: Any) -> None:
        return None


def config(folder: Path) -> Config:
    return Config.model_validate(
        {
            "pbxs": [
                {"name": "p", "username": "u", "secret": {"env": "X"}, "inbound_contexts": ["from-pstn"]}
            ],
            "agents": [{"id": "agent1", "interfaces": ["Local/agent1@agents"]}],
            "store": {"url": f"sqlite:///{folder}/store.db", "attachments": str(folder / "attachments")},
        }
    )


def missed_call(index: int) -> list[ev.CallEvent]:
    """Call `index`: a caller of its own rings agent1's phone and hangs up unanswered."""
    linkedid = f"{1_800_000_000 + index}.{index}"
    at = T0 + index
    trunk = f"PJSIP/trunk-{index:08d}"
    leg = dict(pbx="p", uniqueid=linkedid, linkedid=linkedid)
    dest = dict(dest_uniqueid=f"{linkedid}.2", dest_channel=f"Local/agent1@agents-{index:08x};1")
    return [
        ev.ChannelCreated(
            **leg,
            at=at,
            channel=trunk,
            context="from-pstn",
            exten="4001",
            caller_number=f"1380{index:07d}",
            caller_name="Li",
        ),
        ev.DialStarted(**leg, at=at + 1, **dest),
        ev.DialEnded(**leg, at=at + 20, status="NOANSWER", **dest),
        ev.ChannelHungUp(**leg, at=at + 21, channel=trunk, cause=16, cause_text="Normal Clearing"),
    ]


@dataclass
class CallPath:
    store: Store
    pipeline: CallPipeline
    client: httpx.AsyncClient
    published: Published
    health_seen: list[bool] = field(default_factory=list)

    def submit_calls(self, indexes: range) -> None:
        for index in indexes:
            for event in missed_call(index):
                self.pipeline.submit(event)

    async def health(self) -> dict[str, Any]:
        response = await self.client.get("/api/health")
        assert response.status_code == 200, response.text
        return response.json()

    async def watch_health(self, until: Callable[[], bool], every: float = 0.1) -> None:
        """Note the store's health every `every` seconds until `until()`."""
        while not until():
            self.health_seen.append((await self.health())["store"])
            await asyncio.sleep(every)

    async def tickets_per_call(self) -> dict[str, int]:
        """Each recorded call's linkedid -> how many tickets carry it (one, when all is well)."""
        rows = await self.store.database.fetchall(
            "SELECT linkedid, COUNT(DISTINCT ticket_id) AS n FROM calls"
            " WHERE ended_at IS NOT NULL GROUP BY linkedid"
        )
        return {row["linkedid"]: row["n"] for row in rows}


def linkedids(indexes: range) -> set[str]:
    return {f"{1_800_000_000 + i}.{i}" for i in indexes}


@contextlib.asynccontextmanager
async def call_path(folder: Path, *, backlog_limit: int = 10_000) -> AsyncIterator[CallPath]:
    """The pipeline running on a store in `folder`, and a web client for its health."""
    cfg = config(folder)
    store = await Store.open(cfg.store.url, TicketNumbering())
    published = Published()
    pipeline = CallPipeline(
        build_tracker(cfg),
        TicketService(store, cfg.tickets, "CN"),
        store,
        NoRecordings(),  # type: ignore[arg-type]
        published,
        backlog_limit=backlog_limit,
    )
    hub = LiveHub()
    ctx = WebContext(
        config=cfg,
        store=store,
        hub=hub,
        publisher=published,
        workflow=Workflow.from_config(cfg),
        teams=Teams.from_config(cfg),
        attachments_folder=folder / "attachments",
        health=Health(mqtt_connected=lambda: True, pbx_connected=lambda: {"p": True}),
    )
    runner = asyncio.create_task(pipeline.run(), name="pipeline-under-test")
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://testserver"
    )
    try:
        yield CallPath(store, pipeline, client, published)
    finally:
        await client.aclose()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await store.close()
