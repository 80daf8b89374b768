"""SLA escalation across a daemon restart, through the real app wiring, SQLite file and mosquitto.

A ticket's first response is due 4 s after creation (warning at 1 s). The daemon sees the
warning, stops before the breach, and starts again after it: the escalation happens once,
in the ticket's history and as one MQTT message to a real subscriber, and a third start
adds nothing. No PBX: the daemon's AMI client retries a loopback port nobody listens on.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from cti_bridge.app import Daemon
from cti_bridge.config import Config
from cti_bridge.tickets.model import Ticket
from cti_bridge.tickets.workflow import Assign, Workflow
from tests.support.helpers import MqttInbox, inbound_call, new_ticket, until
from tests.support.sandbox import Mosquitto, free_loopback_port

pytestmark = pytest.mark.integration

FIRST_RESPONSE = 4.0


def sla_config(broker: Mosquitto, db: Path, prefix: str) -> Config:
    os.environ["SLA_TEST_AMI_SECRET"] = "unused"
    return Config.model_validate(
        {
            "pbxs": [
                {
                    "name": "nowhere",
                    "host": "127.0.0.1",
                    "port": free_loopback_port(),
                    "username": "nobody",
                    "secret": {"env": "SLA_TEST_AMI_SECRET"},
                    "reconnect": {"initial_delay": "0.2s", "max_delay": "1s"},
                }
            ],
            "agents": [{"id": "alice", "extension": "1001", "team": "tier1"}],
            "teams": [{"name": "tier1", "supervisor": "carol"}],
            "sla": {
                "clock": "always",
                "targets": {"P3": {"first_response": f"{FIRST_RESPONSE}s"}},
                "warning": {"at": 0.25, "notify": ["assignee"]},
                "escalation": {
                    "first_response": {
                        "raise_priority": True,
                        "notify": ["assignee", "supervisor"],
                        "reassign_to_supervisor": True,
                    }
                },
                "recheck_every": "1s",
            },
            "mqtt": {"port": broker.port, "topic_prefix": prefix},
            "store": {"url": f"sqlite:///{db}"},
            "web": {"port": 0},  # a free port: test runs never collide
        }
    )


async def create_ticket(daemon: Daemon) -> Ticket:
    """What the call path does for an answered call: a ticket, assigned to the agent."""
    assert daemon.store is not None and daemon.sla is not None
    now = time.time()
    ticket, _ = await daemon.store.create_ticket_for_call(new_ticket(), inbound_call("sla.1"), None, now)
    await daemon.store.apply_command(
        ticket.number, Assign(assignee="alice"), workflow=Workflow(), actor="alice", at=now
    )
    daemon.sla.wake()
    return ticket


async def history(daemon: Daemon, number: str) -> list[dict[str, Any]]:
    assert daemon.store is not None
    detail = await daemon.store.ticket_detail(number)
    assert detail is not None
    return [e for e in detail["history"] if e["actor"] == "sla"]


def notifications(inbox: MqttInbox, agent: str, kind: str) -> set[int]:
    return {n["id"] for n in inbox.topic(f"agents/{agent}/notifications") if n["kind"] == kind}


async def test_an_escalation_missed_while_stopped_happens_once_after_the_restart(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = f"sla-{uuid.uuid4().hex[:8]}"
    config = sla_config(mosquitto, tmp_path / "cti.db", prefix)
    async with MqttInbox(mosquitto.port, prefix) as inbox:
        async with Daemon(config) as daemon:
            ticket = await create_ticket(daemon)
            created = ticket.created_at
            topic = f"tickets/{ticket.number}/sla"
            await until(lambda: inbox.topic(topic), 5, "the SLA warning")
            await until(lambda: notifications(inbox, "alice", "sla_warning"), 5, "alice's warning")
        stopped = time.time()
        assert stopped < created + FIRST_RESPONSE, "the daemon must be down before the breach"
        assert [n["event"] for n in inbox.topic(topic)] == ["sla_warning"]

        await asyncio.sleep(created + FIRST_RESPONSE + 0.5 - time.time())

        async with Daemon(config) as daemon:
            await until(lambda: len(inbox.topic(topic)) == 2, 10, "the escalation after the restart")
            await until(lambda: notifications(inbox, "carol", "sla_breach"), 5, "carol's notification")
            events = await history(daemon, ticket.number)
        warning, breach = inbox.topic(topic)
        assert warning["event"] == "sla_warning" and breach["event"] == "sla_breached"
        assert (breach["priority_from"], breach["priority_to"], breach["reassigned_to"]) == (
            "P3",
            "P2",
            "carol",
        )
        assert breach["ticket"]["assignee"] == "carol" and breach["ticket"]["priority"] == "P2"
        assert breach["reached_at"] < breach["fired_at"]  # it came due while the daemon was down
        assert [e["kind"] for e in events] == [
            "sla_warning",
            "sla_breached",
            "priority_changed",
            "reassigned",
        ]
        assert len(notifications(inbox, "alice", "sla_breach")) == 1

        async with Daemon(config) as daemon:
            await asyncio.sleep(2.5)  # a first pass and a recheck
            assert await history(daemon, ticket.number) == events
        assert len(inbox.topic(topic)) == 2
        assert len(notifications(inbox, "carol", "sla_breach")) == 1
