"""The pipeline's CRM hook: the real pipeline, store and CrmService, a real HTTP "CRM" on loopback,
calls given as domain events (the sandbox PBX drives the same in tests/integration/test_crm.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from cti_bridge.app import build_tracker
from cti_bridge.calls import events as ev
from cti_bridge.config import Config
from cti_bridge.crm.recognition import CallerRecognition
from cti_bridge.crm.service import CrmService, crm_headers
from cti_bridge.pipeline import CallPipeline
from cti_bridge.store import Store
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.service import TicketService
from tests.support.crm_server import Answer, CrmServer, crm_section, customer
from tests.support.helpers import until

T0 = 1_800_000_000.0


class Published:
    """The publisher edge: what went out, in order, with when."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any], float]] = []

    def publish(self, message: Any) -> None:
        self.messages.append((message.topic, json.loads(message.payload), time.time()))

    def pops(self, number: str) -> list[dict[str, Any]]:
        return [
            b
            for t, b, _ in self.messages
            if t.endswith("/screenpop") and b["call"]["caller_number"] == number
        ]

    def notices(self, event: str) -> list[dict[str, Any]]:
        return [b for t, b, _ in self.messages if t.startswith("tickets/") and b.get("event") == event]


class NoRecordings:
    async def announced(self, call: Any, path: str) -> None:
        pass

    def call_ended(self, call: Any) -> None:
        pass


@dataclass
class Rig:
    pipeline: CallPipeline
    store: Store
    published: Published
    crm: CrmService
    server: CrmServer
    recognition: CallerRecognition

    def ring(self, linkedid: str, number: str | None, agent: str = "agent1", at: float = T0) -> None:
        """A call to DID 4001 that rings `agent` (it stays ringing until `hang_up`)."""
        leg = dict(pbx="p", uniqueid=linkedid, linkedid=linkedid)
        self.pipeline.submit(
            ev.ChannelCreated(
                **leg,
                at=at,
                channel=f"PJSIP/trunk-{linkedid}",
                context="from-pstn",
                exten="4001",
                caller_number=number,
                caller_name="WIRELESS CALLER",
            )
        )
        self.pipeline.submit(
            ev.DialStarted(
                **leg,
                at=at + 1,
                dest_uniqueid=f"{linkedid}.2",
                dest_channel=f"Local/{agent}@agents-{int(linkedid.replace('.', '')):08x};1",
            )
        )

    def hang_up(self, linkedid: str, at: float = T0 + 30) -> None:
        leg = dict(pbx="p", uniqueid=linkedid, linkedid=linkedid)
        self.pipeline.submit(
            ev.ChannelHungUp(
                **leg, at=at, channel=f"PJSIP/trunk-{linkedid}", cause=16, cause_text="Normal Clearing"
            )
        )

    async def ticket_of(self, number: str) -> dict[str, Any]:
        [row] = [t for t in await self.store.list_tickets() if t["caller_number"] == number]
        detail = await self.store.ticket_detail(row["number"])
        assert detail is not None
        return detail


@pytest.fixture
async def rig(tmp_path, monkeypatch) -> AsyncIterator[Rig]:
    monkeypatch.setenv("TEST_CRM_TOKEN", "t")
    async with CrmServer() as server:
        config = Config.model_validate(
            {
                "pbxs": [
                    {"name": "p", "username": "u", "secret": {"env": "X"}, "inbound_contexts": ["from-pstn"]}
                ],
                "agents": [{"id": "agent1", "interfaces": ["Local/agent1@agents"]}],
                "phone": {"default_region": "US"},
                "crm": crm_section(server, timeout="2s", circuit_breaker={"failures": 2, "open_for": "1h"}),
            }
        )
        assert config.crm is not None
        store = await Store.open(f"sqlite:///{tmp_path}/crm.db", TicketNumbering())
        published = Published()
        async with CrmService(config.crm, crm_headers(config.crm)) as crm:
            recognition = CallerRecognition(crm, store, published)
            pipeline = CallPipeline(
                build_tracker(config),
                TicketService(store, config.tickets, "US"),
                store,
                NoRecordings(),
                published,
                recognition=recognition,
            )
            tasks = [
                asyncio.create_task(crm.run(), name="crm-under-test"),
                asyncio.create_task(recognition.run(), name="recognition-under-test"),
                asyncio.create_task(pipeline.run(), name="pipeline-under-test"),
            ]
            await asyncio.sleep(0)
            try:
                yield Rig(pipeline, store, published, crm, server, recognition)
            finally:
                for task in reversed(tasks):
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await store.close()


FANG = "+14155550101"


async def test_the_pop_goes_out_at_once_and_the_answer_follows_as_an_enriched_pop(rig):
    rig.server.answer(
        FANG, Answer(body=customer("王芳", level="gold", id="C-7", orders=[{"no": "SO-1"}]), delay=0.5)
    )
    rig.ring("1.1", FANG)
    await rig.pipeline.drain()
    [ringing] = rig.published.pops(FANG)
    assert ringing["event"] == "ringing" and ringing["crm_status"] == "pending" and ringing["crm"] is None
    assert ringing["ticket"]["subject"] == "Phone call from WIRELESS CALLER"

    enriched = await until(
        lambda: [p for p in rig.published.pops(FANG) if p["event"] == "enriched"], 5, "enriched"
    )
    [enriched] = enriched
    pop_sent = next(at for t, b, at in rig.published.messages if b is ringing)
    assert pop_sent < rig.server.answered[FANG][0]  # the pop did not wait for the CRM
    assert enriched["agent_id"] == "agent1" and enriched["crm_status"] == "found"
    assert enriched["crm"]["name"] == "王芳" and enriched["crm"]["vip"] is True
    assert enriched["crm"]["external_id"] == "C-7" and enriched["crm"]["orders"][0]["id"] == "SO-1"
    assert enriched["ticket"]["number"] == ringing["ticket"]["number"]
    assert (
        enriched["ticket"]["subject"] == "Phone call from 王芳"
        and enriched["ticket"]["caller_name"] == "王芳"
    )
    assert [t["subject"] for t in enriched["open_tickets"]] == ["Phone call from 王芳"]  # this very ticket
    [notice] = rig.published.notices("caller_enriched")
    assert notice["ticket"]["number"] == ringing["ticket"]["number"]
    assert notice["data"]["crm_status"] == "found" and notice["data"]["renamed"] is True
    assert notice["data"]["crm"]["name"] == "王芳" and notice["data"]["call"] == "p/1.1"
    detail = await rig.ticket_of(FANG)
    assert detail["subject"] == "Phone call from 王芳" and detail["crm"]["profile"]["tier"] == "gold"

    # The same caller again, within the TTL: the pop carries the kept answer, the CRM is not asked.
    rig.hang_up("1.1")
    rig.ring("2.1", FANG, at=T0 + 60)
    await rig.pipeline.drain()
    second = rig.published.pops(FANG)[-1]
    assert second["event"] == "ringing" and second["call"]["linkedid"] == "2.1"
    assert second["crm_status"] == "found" and second["crm"]["name"] == "王芳"
    assert second["ticket"]["subject"] == "Phone call from 王芳"  # the same ticket, reused
    await asyncio.sleep(0.2)
    # The first caller hung up while agent1's phone rang: that pop was withdrawn.
    assert [p["event"] for p in rig.published.pops(FANG)] == ["ringing", "enriched", "cancelled", "ringing"]
    assert len(rig.server.asked(FANG)) == 1
    assert len(rig.published.notices("caller_enriched")) == 1  # the same answer: nothing new to say
    rig.hang_up("2.1", at=T0 + 90)
    await rig.pipeline.drain()
    await until(lambda: rig.recognition.watching == 0, 5, "the calls to be forgotten")


async def test_a_failing_crm_ends_the_pending_state_and_the_ticket_keeps_its_names(rig):
    number = "+14155550102"
    rig.server.answer(number, Answer(500))
    rig.ring("3.1", number)
    await rig.pipeline.drain()
    pops = await until(
        lambda: len(rig.published.pops(number)) == 2 and rig.published.pops(number), 5, "2 pops"
    )
    assert [(p["event"], p["crm_status"]) for p in pops] == [
        ("ringing", "pending"),
        ("enriched", "unavailable"),
    ]
    assert rig.published.notices("caller_enriched") == []
    detail = await rig.ticket_of(number)
    assert detail["crm"] is None and detail["subject"] == "Phone call from WIRELESS CALLER"


async def test_a_number_the_crm_does_not_know_is_kept_as_such(rig):
    number = "+14155550103"  # the scripted CRM's default: 404
    rig.ring("4.1", number)
    await rig.pipeline.drain()
    pops = await until(
        lambda: len(rig.published.pops(number)) == 2 and rig.published.pops(number), 5, "2 pops"
    )
    assert pops[1]["crm_status"] == "not_found" and pops[1]["crm"] is None
    [notice] = rig.published.notices("caller_enriched")
    assert notice["data"]["crm_status"] == "not_found" and notice["data"]["crm"] is None
    assert (await rig.ticket_of(number))["crm"]["found"] is False


async def test_a_withheld_number_is_not_looked_up(rig):
    rig.ring("5.1", None)
    await rig.pipeline.drain()
    [pop] = [b for t, b, _ in rig.published.messages if t.endswith("/screenpop")]
    assert pop["crm_status"] == "off" and rig.server.requests == []


async def test_a_local_customer_keeps_the_ticket_named_after_them(rig):
    from cti_bridge.store import CustomerRow

    number = "+14155550104"
    await rig.store.import_customers([CustomerRow(name="Li Lei", phones=(number,))], at=T0)
    rig.server.answer(number, Answer(body=customer("Someone Else", company="ACME")))
    rig.ring("6.1", number)
    await rig.pipeline.drain()
    enriched = await until(
        lambda: [p for p in rig.published.pops(number) if p["event"] == "enriched"], 5, "pop"
    )
    assert enriched[0]["customer"]["name"] == "Li Lei" and enriched[0]["crm"]["company"] == "ACME"
    detail = await rig.ticket_of(number)
    assert (
        detail["subject"] == "Phone call from Li Lei" and detail["crm"]["profile"]["name"] == "Someone Else"
    )
