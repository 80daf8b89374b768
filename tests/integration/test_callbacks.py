"""Callback dispatch end to end: calls nobody answers on the sandbox Asterisk 22 become callback
tickets given to an agent by skill and load, in the ticket's history and on the agent's MQTT topic."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cti_bridge.app import Daemon
from cti_bridge.config import Config
from cti_bridge.store import Store
from tests.support.helpers import MqttInbox, inbound_call, new_ticket, until
from tests.support.sandbox import AsteriskSandbox, Mosquitto

pytestmark = pytest.mark.integration

_numbers = itertools.count(1)


def caller() -> str:
    """A fresh number per call (555 numbers are fictional): calls are told apart by it."""
    return f"+1415556{next(_numbers):04d}"


def callback_config(
    asterisk: AsteriskSandbox, broker: Mosquitto, db: Path, prefix: str, load_cap: int = 5
) -> Config:
    os.environ["SANDBOX_AMI_SECRET"] = asterisk.ami_secret
    today = datetime.now(UTC).date()
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
                {"id": "agent1", "interfaces": ["Local/agent1@agents"], "skills": ["sales"], "team": "desk"},
                {"id": "agent2", "interfaces": ["Local/agent2@agents"], "skills": ["sales"], "team": "desk"},
                {"id": "agent3", "interfaces": ["Local/agent3@agents"], "team": "desk"},
                # The only member of the sales queue, who never answers (and cannot sell).
                {"id": "agent9", "interfaces": ["Local/agent9@agents"], "team": "desk"},
            ],
            "teams": [{"name": "desk", "supervisor": "sue"}],
            "phone": {"default_region": "US"},
            "tickets": {"reuse_open_ticket_within": "1h"},
            # Closed from yesterday to tomorrow (UTC): every call of this module is after hours.
            "sla": {
                "calendar": {
                    "timezone": "UTC",
                    "hours": {"mon-sun": ["00:00-24:00"]},
                    "holidays": [f"{today - timedelta(days=1)}..{today + timedelta(days=1)}"],
                }
            },
            "dispatch": {
                "skills": {"by_queue": {"sales": ["sales"]}},
                "load_cap": load_cap,
                "default_team": "desk",
            },
            "mqtt": {"port": broker.port, "topic_prefix": prefix},
            "store": {"url": f"sqlite:///{db}"},
            "web": {"port": 0},  # a free port: test runs never collide
        }
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bridge(
    asterisk: AsteriskSandbox, mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Daemon, MqttInbox]]:
    prefix = f"cb-{uuid.uuid4().hex[:8]}"
    db = tmp_path_factory.mktemp("callbacks") / "cti.db"
    async with (
        MqttInbox(mosquitto.port, prefix) as inbox,
        Daemon(callback_config(asterisk, mosquitto, db, prefix)) as daemon,
    ):
        await asyncio.wait_for(daemon.ami[0].connected.wait(), 10)
        yield daemon, inbox


async def callback_ticket(store: Store, number: str) -> dict[str, Any]:
    """The caller's ticket once the end of its call has been dispatched."""

    async def ready() -> dict[str, Any] | None:
        rows = [t for t in await store.list_tickets(limit=1000) if t["caller_number"] == number]
        if len(rows) != 1:
            return None
        detail = await store.ticket_detail(rows[0]["number"])
        return detail if any(e["actor"] == "dispatch" for e in detail["history"]) else None

    seen = await until(ready, 60, f"a dispatched callback ticket for {number}")
    # Read again: the detail's ticket row is read before its history, so the dispatch can
    # commit between the two reads (its events seen, its assignment not yet).
    detail = await store.ticket_detail(seen["number"])
    assert detail is not None
    return detail


async def dispatch_events(store: Store, ticket_id: int) -> list[dict[str, Any]]:
    rows = await store._db.fetchall(
        "SELECT kind, from_status, to_status, reason FROM ticket_events"
        " WHERE ticket_id = ? AND actor = 'dispatch' ORDER BY id",
        (ticket_id,),
    )
    return [dict(r) for r in rows]


async def test_a_call_abandoned_in_the_queue_goes_to_the_qualified_agent_with_less_load(bridge, ami_driver):
    daemon, inbox = bridge
    store = daemon.store
    assert store is not None
    # agent1 already holds two open tickets; agent2, as able to sell, holds none.
    for n in range(2):
        held = inbound_call(f"held-{uuid.uuid4().hex[:6]}-{n}", pbx="sandbox", started_at=time.time())
        await store.create_ticket_for_call(new_ticket(subject="held"), held, None, time.time())
        await store.record_answer(held, "agent1", time.time())
    number = caller()

    await ami_driver.originate("4003", number, "Impatient", caller_exten="hangup-after-3")
    ticket = await callback_ticket(store, number)

    [call] = ticket["calls"]
    assert call["outcome"] == "abandoned" and call["queue"] == "sales" and call["agent_id"] is None
    assert (ticket["assignee"], ticket["status"]) == ("agent2", "assigned")
    requested, assigned = await dispatch_events(store, ticket["id"])
    assert requested["kind"] == "callback_requested"
    assert (assigned["kind"], assigned["from_status"], assigned["to_status"]) == (
        "assigned",
        "new",
        "assigned",
    )
    assert assigned["reason"].startswith("agent2: skill sales matches, load 0/5")
    assert "agent1: skill sales matches, load 2/5" in assigned["reason"]
    assert "agent9: lacks skill sales" in assigned["reason"]
    row = await store._db.fetchone("SELECT callback_reason FROM tickets WHERE id = ?", (ticket["id"],))
    assert row["callback_reason"] == "abandoned"

    callbacks = await until(lambda: inbox.topic("agents/agent2/callbacks"), 10, "the callback message")
    [message] = [m for m in callbacks if m["call"]["caller_number"] == number]
    assert message["reason"] == "abandoned" and message["assigned"] is True
    assert message["ticket"]["number"] == ticket["number"] and message["ticket"]["assignee"] == "agent2"
    assert message["explanation"] == assigned["reason"]
    assert message["call"]["queue"] == "sales" and message["call"]["linkedid"] == call["linkedid"]
    notices = inbox.topic(f"tickets/{ticket['number']}")
    assert [n["data"]["assignee"] for n in notices if n["event"] == "callback"] == ["agent2"]
    # Nobody else was told to call back.
    others = [
        t for t, b, _ in inbox.messages if t.endswith("/callbacks") and b["call"]["caller_number"] == number
    ]
    assert others == ["agents/agent2/callbacks"]


async def test_an_after_hours_call_the_pbx_handled_alone_becomes_a_callback(bridge, ami_driver):
    daemon, inbox = bridge
    store = daemon.store
    assert store is not None
    number = caller()

    await ami_driver.originate("4000", number, "Night Caller")  # an announcement, then hang up
    ticket = await callback_ticket(store, number)

    [call] = ticket["calls"]
    assert call["outcome"] == "ivr"
    assert ticket["status"] == "assigned" and ticket["assignee"] in {"agent2", "agent3", "agent9"}
    row = await store._db.fetchone("SELECT callback_reason FROM tickets WHERE id = ?", (ticket["id"],))
    assert row["callback_reason"] == "after_hours"
    topic = f"agents/{ticket['assignee']}/callbacks"
    messages = await until(
        lambda: [m for m in inbox.topic(topic) if m["call"]["caller_number"] == number], 10, "the callback"
    )
    assert [m["reason"] for m in messages] == ["after_hours"]


async def test_an_agent_with_no_history_and_no_tickets_beats_a_fast_agent_with_some(
    asterisk, mosquitto, ami_driver, tmp_path
):
    # The shipped config's cap (10): agent1, who answered their two calls at once, holds two
    # tickets; agent2, as able to sell, holds none and has never answered anything. An unknown
    # speed once scored as middling (0.5 x 0.5) and outweighed agent1's load (2/10).
    prefix = f"cb-{uuid.uuid4().hex[:8]}"
    config = callback_config(asterisk, mosquitto, tmp_path / "cti.db", prefix, load_cap=10)
    async with MqttInbox(mosquitto.port, prefix) as inbox, Daemon(config) as daemon:
        await asyncio.wait_for(daemon.ami[0].connected.wait(), 10)
        store = daemon.store
        assert store is not None
        for n in range(2):
            held = inbound_call(f"quick-{uuid.uuid4().hex[:6]}-{n}", pbx="sandbox", started_at=time.time())
            await store.create_ticket_for_call(new_ticket(subject="held"), held, None, time.time())
            await store.record_answer(held, "agent1", time.time())
        number = caller()

        await ami_driver.originate("4003", number, "Impatient", caller_exten="hangup-after-3")
        ticket = await callback_ticket(store, number)

        assert (ticket["assignee"], ticket["status"]) == ("agent2", "assigned")
        _, assigned = await dispatch_events(store, ticket["id"])
        assert assigned["reason"].startswith(
            "agent2: skill sales matches, load 0/10, no response history (counted at the median, 0 s)"
        )
        assert "agent1: skill sales matches, load 2/10, median response 0 s" in assigned["reason"]
        callbacks = await until(lambda: inbox.topic("agents/agent2/callbacks"), 10, "the callback message")
        assert [m["ticket"]["number"] for m in callbacks] == [ticket["number"]]
