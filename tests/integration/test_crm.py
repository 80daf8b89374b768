"""Caller recognition end to end: the real daemon on the sandbox Asterisk 22 and mosquitto, a real
HTTP server on loopback playing the site's CRM (slow, failing, gone), and Debian's chromium.

Each test starts its own daemon, with the CRM settings it needs; calls are told apart by their
caller numbers, unique per test run.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

from cti_bridge.app import Daemon
from cti_bridge.config import Config
from cti_bridge.crm.breaker import BreakerState
from cti_bridge.store import users
from cti_bridge.web.auth import hash_password
from tests.support.browser import CHROMIUM_ARGS, chromium_path, screenshot_path
from tests.support.crm_server import Answer, CrmServer, crm_section, customer
from tests.support.helpers import MqttInbox, until
from tests.support.sandbox import AmiDriver, AsteriskSandbox, Mosquitto

pytestmark = pytest.mark.integration

_numbers = itertools.count(int(time.time()) % 5000)
PASSWORD = "correct horse battery"


def caller() -> str:
    """A fresh number per call (555 numbers are fictional)."""
    return f"+1415558{next(_numbers) % 10000:04d}"


@dataclass
class Bridge:
    daemon: Daemon
    inbox: MqttInbox
    crm: CrmServer

    @property
    def store(self) -> Any:
        assert self.daemon.store is not None
        return self.daemon.store

    async def ticket_of(self, number: str) -> dict[str, Any] | None:
        rows = [t for t in await self.store.list_tickets(limit=1000) if t["caller_number"] == number]
        assert len(rows) <= 1, rows
        return await self.store.ticket_detail(rows[0]["number"]) if rows else None

    def pops(self, number: str, event: str | None = None) -> list[tuple[str, dict[str, Any], float]]:
        return [p for p in self.inbox.pops_for(number) if event is None or p[1]["event"] == event]

    def notices(self, ticket: str, event: str) -> list[dict[str, Any]]:
        return [n for n in self.inbox.topic(f"tickets/{ticket}") if n["event"] == event]


def daemon_config(
    asterisk: AsteriskSandbox, broker: Mosquitto, db: Path, prefix: str, crm: dict[str, Any]
) -> Config:
    os.environ["SANDBOX_AMI_SECRET"] = asterisk.ami_secret
    os.environ["TEST_CRM_TOKEN"] = "sandbox-crm-token"
    return Config.model_validate(
        {
            "pbxs": [
                {
                    "name": "sandbox",
                    "host": asterisk.ami_host,
                    "port": asterisk.ami_port,
                    "username": asterisk.ami_username,
                    "secret": {"env": "SANDBOX_AMI_SECRET"},
                    "ping_interval": "2s",
                    "reconnect": {"initial_delay": "0.2s", "max_delay": "2s"},
                    "inbound_contexts": ["from-pstn"],
                    "recording_paths": [
                        {"pbx": "/var/spool/asterisk/monitor", "local": str(asterisk.monitor_dir)}
                    ],
                }
            ],
            "agents": [
                {"id": f"agent{n}", "name": f"Agent {n}", "interfaces": [f"Local/agent{n}@agents"]}
                for n in (1, 2, 3, 9)
            ],
            "phone": {"default_region": "US"},
            "tickets": {"reuse_open_ticket_within": "1h"},
            "mqtt": {"port": broker.port, "topic_prefix": prefix},
            "store": {"url": f"sqlite:///{db}"},
            "web": {"port": 0},
            "transcription": {"enabled": False},
            "crm": crm,
        }
    )


@asynccontextmanager
async def bridge_with_crm(
    asterisk: AsteriskSandbox, mosquitto: Mosquitto, ami_driver: AmiDriver, tmp_path: Path, **crm: Any
) -> AsyncIterator[Bridge]:
    """A daemon of its own on an idle PBX (a call left from an earlier test would be resynced
    into this one's store); the calls it placed are hung up at the end."""
    await asterisk.wait_idle()
    prefix = f"crm-{uuid.uuid4().hex[:8]}"
    async with CrmServer() as server, MqttInbox(mosquitto.port, prefix) as inbox:
        config = daemon_config(asterisk, mosquitto, tmp_path / "cti.db", prefix, crm_section(server, **crm))
        async with Daemon(config) as daemon:
            await asyncio.wait_for(daemon.ami[0].connected.wait(), 10)
            try:
                yield Bridge(daemon, inbox, server)
            finally:
                await ami_driver.hangup_all()
                await asterisk.wait_idle()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# -- scenarios ------------------------------------------------------------------------------


async def test_the_pop_does_not_wait_for_a_slow_crm_and_the_answer_follows(
    asterisk, mosquitto, ami_driver: AmiDriver, tmp_path
):
    number = caller()
    async with bridge_with_crm(asterisk, mosquitto, ami_driver, tmp_path, timeout="5s") as bridge:
        bridge.crm.answer(
            number,
            Answer(
                body=customer(
                    "王芳",
                    company="华东物流",
                    level="gold",
                    id="C-1001",
                    orders=[{"no": "SO-88", "date": "2026-05-01", "amount": 1299, "item": "路由器 AX3"}],
                ),
                delay=2.0,  # slower than a pop, within the timeout
            ),
        )
        await ami_driver.originate("4004", number, "WIRELESS CALLER")  # ~15 s with agent3
        [(agent, ringing, ringing_at)] = await until(
            lambda: bridge.pops(number, "ringing"), 15, "the ring pop"
        )
        assert agent == "agent3" and ringing["crm_status"] == "pending" and ringing["crm"] is None
        assert ringing["ticket"]["subject"] == "Phone call from WIRELESS CALLER"

        [(agent, enriched, enriched_at)] = await until(
            lambda: bridge.pops(number, "enriched"), 15, "enriched pop"
        )
        [crm_answered_at] = bridge.crm.answered[number]
        # The pop went out before the CRM had answered; the enriched one after.
        assert ringing_at < crm_answered_at < enriched_at
        assert _epoch(ringing["sent_at"]) - _epoch(ringing["event_at"]) < 1.0
        assert agent == "agent3" and enriched["crm_status"] == "found"
        assert enriched["call"]["linkedid"] == ringing["call"]["linkedid"]
        crm = enriched["crm"]
        assert (crm["name"], crm["company"], crm["tier"], crm["vip"], crm["external_id"]) == (
            "王芳",
            "华东物流",
            "gold",
            True,
            "C-1001",
        )
        assert crm["orders"] == [
            {"id": "SO-88", "date": "2026-05-01", "total": "1299", "status": None, "summary": "路由器 AX3"}
        ]
        assert enriched["ticket"]["subject"] == "Phone call from 王芳"

        number_of_ticket = ringing["ticket"]["number"]
        [notice] = await until(lambda: bridge.notices(number_of_ticket, "caller_enriched"), 5, "the notice")
        assert notice["data"]["crm"]["name"] == "王芳" and notice["data"]["renamed"] is True
        detail = await bridge.ticket_of(number)
        assert detail is not None and detail["subject"] == "Phone call from 王芳"
        assert detail["caller_name"] == "王芳" and detail["crm"]["profile"]["external_id"] == "C-1001"
        assert [e["actor"] for e in detail["history"] if e["kind"] == "caller_enriched"] == ["crm"]
        [request] = bridge.crm.asked(number)
        assert request.headers["authorization"] == "Bearer sandbox-crm-token"
        # The answered pop (agent3 picks up at once) came in between, still pending, or after.
        answered = [b for _, b, _ in bridge.pops(number, "answered")]
        assert answered and answered[0]["crm_status"] in ("pending", "found")


async def test_the_breaker_opens_after_failures_and_the_crm_gets_nothing_until_it_half_opens(
    asterisk, mosquitto, ami_driver: AmiDriver, tmp_path
):
    first, second, while_open, after = caller(), caller(), caller(), caller()
    async with bridge_with_crm(
        asterisk, mosquitto, ami_driver, tmp_path, circuit_breaker={"failures": 2, "open_for": "4s"}
    ) as bridge:
        crm = bridge.daemon.crm
        assert crm is not None
        bridge.crm.answer(first, Answer(500))
        bridge.crm.answer(second, Answer(body=b"<html>oops</html>"))
        bridge.crm.answer(while_open, Answer(body=customer("Never Asked")))
        bridge.crm.answer(after, Answer(body=customer("Probe Answered")))
        for number, failures in ((first, 1), (second, 2)):
            await ami_driver.originate("4001", number, "Failing")  # rings agent1 at once
            await until(lambda f=failures: crm.stats.failed == f, 15, f"failure {failures}")
        assert crm.breaker.state is BreakerState.OPEN
        opened_at = time.monotonic()

        await ami_driver.originate("4001", while_open, "While Open")
        await until(lambda: crm.stats.refused_open == 1, 15, "the refused lookup")
        assert bridge.crm.asked(while_open) == [] and len(bridge.crm.requests) == 2
        ticket = await until(lambda: bridge.ticket_of(while_open), 10, "its ticket")
        assert ticket["crm"] is None  # the call got its ticket all the same
        # Refused at once: the ring pop says so, or (if it went out first) an enriched one does.
        await until(lambda: _crm_states(bridge, while_open) & {"unavailable"}, 10, "a pop saying unavailable")
        assert "found" not in _crm_states(bridge, while_open)
        assert time.monotonic() - opened_at < 4  # all of this while the circuit was open

        await asyncio.sleep(max(0.0, 4.2 - (time.monotonic() - opened_at)))
        await ami_driver.originate("4001", after, "After")
        detail = await until(
            lambda: _with_crm(bridge.ticket_of(after)), 15, "the probe's answer on the ticket"
        )
        assert detail["crm"]["profile"]["name"] == "Probe Answered"
        assert len(bridge.crm.asked(after)) == 1 and crm.breaker.state is BreakerState.CLOSED


def _crm_states(bridge: Bridge, number: str) -> set[str]:
    return {body["crm_status"] for _, body, _ in bridge.pops(number)}


async def _with_crm(detail: Any) -> dict[str, Any] | None:
    found = await detail
    return found if found and found["crm"] else None


async def test_a_repeat_caller_within_the_ttl_costs_the_crm_nothing_and_pops_with_the_answer(
    asterisk, mosquitto, ami_driver: AmiDriver, tmp_path
):
    number = caller()
    async with bridge_with_crm(asterisk, mosquitto, ami_driver, tmp_path, cache_ttl="10m") as bridge:
        bridge.crm.answer(number, Answer(body=customer("Li Lei", level="silver")))
        for attempt in (1, 2):
            await ami_driver.originate("4001", number, "Repeat")  # agent1 answers, hangs up at once
            await until(
                lambda a=attempt: len(bridge.pops(number, "ringing")) == a, 15, f"ring pop of call {attempt}"
            )
            await until(lambda a=attempt: _ended(bridge, number, a), 30, f"the end of call {attempt}")
        first_call, second_call = (b for _, b, _ in bridge.pops(number, "ringing"))
        assert second_call["call"]["linkedid"] != first_call["call"]["linkedid"]
        assert second_call["crm_status"] == "found" and second_call["crm"]["name"] == "Li Lei"
        assert len(bridge.crm.asked(number)) == 1 and bridge.daemon.crm.stats.cache_hits >= 1
        # The second call's pops had the answer already: no enriched pop for it.
        linked = second_call["call"]["linkedid"]
        assert [b for _, b, _ in bridge.pops(number, "enriched") if b["call"]["linkedid"] == linked] == []
        assert second_call["ticket"]["number"] == first_call["ticket"]["number"]  # the open ticket reused


async def _ended(bridge: Bridge, number: str, calls: int) -> bool:
    detail = await bridge.ticket_of(number)
    return bool(detail) and sum(c["ended_at"] is not None for c in detail["calls"]) == calls


async def test_a_dead_crm_never_holds_up_a_pop(asterisk, mosquitto, ami_driver: AmiDriver, tmp_path):
    number = caller()
    async with bridge_with_crm(asterisk, mosquitto, ami_driver, tmp_path) as bridge:
        await bridge.crm.stop()  # the CRM is gone: connections are refused
        await ami_driver.originate("4004", number, "Nobody Knows")
        [(_, ringing, _)] = await until(lambda: bridge.pops(number, "ringing"), 15, "the ring pop")
        assert _epoch(ringing["sent_at"]) - _epoch(ringing["event_at"]) < 1.0
        assert ringing["crm_status"] in ("pending", "unavailable")  # whichever came first
        await until(lambda: "unavailable" in _crm_states(bridge, number), 15, "a pop saying unavailable")
        assert all(body["crm"] is None for _, body, _ in bridge.pops(number))
        ticket = await bridge.ticket_of(number)
        assert ticket is not None and ticket["crm"] is None
        assert bridge.daemon.crm.stats.failed == 1 and bridge.daemon.pipeline.failed == 0


@pytest.mark.browser
async def test_the_agent_page_shows_what_the_crm_said(asterisk, mosquitto, ami_driver: AmiDriver, tmp_path):
    number = caller()
    async with bridge_with_crm(asterisk, mosquitto, ami_driver, tmp_path, timeout="5s") as bridge:
        await users.add_user(
            bridge.store.database,
            "agent3",
            role="agent",
            name="Agent Three",
            agent_id="agent3",
            password_hash=await hash_password(PASSWORD),
            at=time.time(),
        )
        bridge.crm.answer(
            number,
            Answer(
                body=customer(
                    "Zhang Wei", company="ACME Ltd", level="gold", id="C-42", orders=[{"no": "SO-7"}]
                ),
                delay=1.5,
            ),
        )
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1366, "height": 768}, locale="en-US")
                problems: list[str] = []
                page.on("pageerror", lambda error: problems.append(str(error)))
                url = bridge.daemon.web_url
                await page.goto(f"{url}/login")
                await page.fill("input[name=username]", "agent3")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("form#login button[type=submit]")
                await page.wait_for_url(f"{url}/agent")
                await expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")

                await ami_driver.originate("4004", number, "WIRELESS CALLER")
                crm = page.locator("[data-testid=pop-crm]")
                await expect(crm).to_have_attribute("data-status", "pending", timeout=10_000)
                await expect(crm).to_contain_text("Looking up the CRM")
                await expect(crm).to_have_attribute("data-status", "found", timeout=10_000)
                await expect(crm).to_contain_text("Zhang Wei")
                await expect(crm).to_contain_text("CRM id C-42")
                await expect(crm.locator("[data-testid=crm-orders]")).to_contain_text("SO-7")
                await expect(page.locator("[data-testid=pop-customer]")).to_contain_text("Zhang Wei")
                await expect(page.locator("[data-testid=screenpop]")).to_contain_text(
                    "Phone call from Zhang Wei"
                )
                await page.screenshot(path=screenshot_path("agent-screenpop-crm"))

                await page.locator("[data-testid=pop-ticket]").click()
                side = page.locator("[data-testid=ticket-crm]")
                await expect(side).to_contain_text("Zhang Wei")
                await expect(side).to_contain_text("ACME Ltd")
                await expect(page.locator("[data-testid=ticket-history]")).to_contain_text(
                    "Caller recognised by the CRM"
                )
                await page.locator("[data-testid=language]").select_option("zh")
                await expect(side).to_contain_text("CRM 编号 C-42")
                await page.screenshot(path=screenshot_path("agent-ticket-crm"))
                assert not problems, problems
            finally:
                await browser.close()
