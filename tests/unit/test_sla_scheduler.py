"""The SLA scheduler and the notifier on the real store: warnings and escalations fire once each,
across restarts, not while the customer is awaited; the outbox drains to per-agent topics.

The publisher is the one fake: it stands for MQTT and keeps what it was handed.
"""

import asyncio
import json
import time

import pytest

from cti_bridge.config import Config
from cti_bridge.notifier import Notifier
from cti_bridge.screenpop.outputs import OutboundMessage
from cti_bridge.sla_scheduler import SlaScheduler, TeamDirectory
from cti_bridge.store import Database, Store
from cti_bridge.store.notifications import pending
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.workflow import (
    AddComment,
    Assign,
    Resume,
    Start,
    Visibility,
    Wait,
    WaitingOn,
    Workflow,
)
from tests.support.helpers import inbound_call, new_ticket, until

T0 = 1_800_000_000.0
MIN = 60


class Clock:
    """Now, set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Outbox:
    """The MQTT edge: everything handed to it, in order."""

    def __init__(self) -> None:
        self.messages: list[OutboundMessage] = []

    def publish(self, message: OutboundMessage) -> None:
        self.messages.append(message)

    def on(self, suffix: str) -> list[dict]:
        return [json.loads(m.payload) for m in self.messages if m.topic.endswith(suffix)]


def config(**sla) -> Config:
    return Config.model_validate(
        {
            "pbxs": [{"name": "main", "username": "u", "secret": {"env": "X"}}],
            "agents": [{"id": "alice", "extension": "1001", "team": "tier1"}],
            "teams": [{"name": "tier1", "supervisor": "carol"}],
            "sla": {
                "clock": "always",
                "targets": {"P3": {"first_response": "10m", "resolution": "1h"}, "P2": {"resolution": "2h"}},
                "warning": {"at": 0.8, "notify": ["assignee"]},
                "escalation": {
                    "first_response": {
                        "raise_priority": True,
                        "notify": ["assignee", "supervisor"],
                        "reassign_to_supervisor": True,
                    },
                    "resolution": {"raise_priority": False, "notify": ["supervisor"]},
                },
                **sla,
            },
        }
    )


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/sched.db"


@pytest.fixture
async def store(url):
    opened = await Store.open(url, TicketNumbering())
    yield opened
    await opened.close()


@pytest.fixture
async def db(store, url):
    opened = await Database.open(url)
    yield opened
    await opened.close()


async def ticket_for(store, linkedid, at=T0):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call(linkedid), None, at)
    await store.apply_command(
        ticket.number, Assign(assignee="alice"), workflow=Workflow(), actor="bob", at=at
    )
    return ticket


async def sla_kinds(db, ticket_id):
    rows = await db.fetchall(
        "SELECT kind FROM ticket_events WHERE ticket_id = ? AND actor = 'sla' ORDER BY id", (ticket_id,)
    )
    return [r["kind"] for r in rows]


def marks(result):
    return [f.action.mark.key for f in result.fired]


async def test_a_warning_then_a_breach_each_fire_once(store, db):
    clock, outbox = Clock(T0), Outbox()
    scheduler = SlaScheduler.from_config(config(), db, outbox, clock=clock)
    ticket = await ticket_for(store, "1.1")

    first = await scheduler.check()
    assert first.fired == () and first.wake_at == T0 + 8 * MIN  # 80 % of the first response's 10 min

    clock.now = T0 + 8 * MIN
    warned = await scheduler.check()
    assert marks(warned) == [f"{ticket.id}:first_response:warning"] and warned.wake_at == T0 + 10 * MIN
    assert (await scheduler.check()).fired == ()

    clock.now = T0 + 10 * MIN + 1
    breached = await scheduler.check()
    assert marks(breached) == [f"{ticket.id}:first_response:breach"]
    assert (await scheduler.check()).fired == ()

    assert await sla_kinds(db, ticket.id) == ["sla_warning", "sla_breached", "priority_changed", "reassigned"]
    warning, breach = outbox.on(f"tickets/{ticket.number}/sla")
    assert warning["event"] == "sla_warning" and warning["target"] == "first_response"
    assert warning["ticket"]["assignee"] == "alice" and warning["notify"] == ["alice"]
    assert breach["event"] == "sla_breached" and (breach["priority_from"], breach["priority_to"]) == (
        "P3",
        "P2",
    )
    assert breach["reassigned_to"] == "carol" and breach["ticket"]["assignee"] == "carol"
    assert breach["ticket"]["priority"] == "P2" and breach["notify"] == ["alice", "carol"]


async def test_a_restarted_scheduler_fires_what_it_missed_and_nothing_twice(store, db, url):
    outbox = Outbox()
    ticket = await ticket_for(store, "2.1")
    before = SlaScheduler.from_config(config(), db, outbox, clock=Clock(T0 + 9 * MIN))
    assert marks(await before.check()) == [f"{ticket.id}:first_response:warning"]

    # Down from 9 to 70 minutes: the first response breached at 10, and, raised to P2 by it,
    # the 2 h resolution target has not; a new process with its own connection takes over.
    restarted_db = await Database.open(url)
    try:
        after = SlaScheduler.from_config(config(), restarted_db, outbox, clock=Clock(T0 + 70 * MIN))
        result = await after.check()
        assert marks(result) == [f"{ticket.id}:first_response:breach"]
        assert result.fired[0].fired_at == T0 + 70 * MIN and result.fired[0].action.at == T0 + 10 * MIN
        assert (await after.check()).fired == ()
        assert (await before.check()).fired == ()  # two daemons on one file: still once
    finally:
        await restarted_db.close()
    assert await sla_kinds(db, ticket.id) == ["sla_warning", "sla_breached", "priority_changed", "reassigned"]
    assert [m["event"] for m in outbox.on("/sla")] == ["sla_warning", "sla_breached"]


async def test_nothing_fires_while_the_ticket_waits_on_the_customer(store, db):
    clock, outbox = Clock(T0), Outbox()
    scheduler = SlaScheduler.from_config(config(), db, outbox, clock=clock)
    ticket = await ticket_for(store, "3.1")
    workflow = Workflow()
    # Started at 1 min: the first response is met; the 1 h resolution clock runs until 20 min.
    await store.apply_command(ticket.number, Start(), workflow=workflow, actor="alice", at=T0 + MIN)
    await store.apply_command(
        ticket.number, Wait(on=WaitingOn.CUSTOMER), workflow=workflow, actor="alice", at=T0 + 20 * MIN
    )

    clock.now = T0 + 5 * 60 * MIN
    paused = await scheduler.check()
    assert paused.fired == () and paused.wake_at is None

    resumed_at = T0 + 5 * 60 * MIN
    await store.apply_command(ticket.number, Resume(), workflow=workflow, actor="alice", at=resumed_at)
    running = await scheduler.check()
    # 20 of 60 minutes used before the pause: the warning comes 28 minutes after resuming.
    assert running.fired == () and running.wake_at == resumed_at + 28 * MIN
    clock.now = resumed_at + 41 * MIN
    assert marks(await scheduler.check()) == [
        f"{ticket.id}:resolution:warning",
        f"{ticket.id}:resolution:breach",
    ]
    assert await sla_kinds(db, ticket.id) == ["sla_warning", "sla_breached"]  # no raise, no reassign


async def test_a_reply_to_the_customer_is_a_response_and_an_internal_note_is_not(store, db):
    scheduler = SlaScheduler.from_config(config(), db, Outbox(), clock=Clock(T0 + 11 * MIN))
    replied, noted = await ticket_for(store, "7.1"), await ticket_for(store, "7.2")
    for ticket, visibility in ((replied, Visibility.CUSTOMER), (noted, Visibility.INTERNAL)):
        await store.apply_command(
            ticket.number,
            AddComment(text="checking the line", visibility=visibility),
            workflow=Workflow(),
            actor="alice",
            at=T0 + MIN,
        )

    assert marks(await scheduler.check()) == [
        f"{noted.id}:first_response:warning",
        f"{noted.id}:first_response:breach",
    ]


async def test_the_outbox_drains_to_each_agents_topic_once(store, db):
    clock, outbox = Clock(T0 + 11 * MIN), Outbox()
    notifier = Notifier(db, outbox, clock=clock)
    scheduler = SlaScheduler.from_config(
        config(), db, outbox, notifications_queued=notifier.wake, clock=clock
    )
    ticket = await ticket_for(store, "4.1")
    await scheduler.check()
    outbox.messages.clear()

    assert await notifier.drain() == 3  # the warning to alice, the breach to alice and carol
    assert await notifier.drain() == 0 and await pending(db) == []
    alice = outbox.on("agents/alice/notifications")
    carol = outbox.on("agents/carol/notifications")
    assert [n["kind"] for n in alice] == ["sla_warning", "sla_breach"] and [n["kind"] for n in carol] == [
        "sla_breach"
    ]
    assert carol[0]["ticket_number"] == ticket.number and carol[0]["recipient"] == "carol"
    assert carol[0]["title"] == f"SLA 已超时 / SLA breached: {ticket.number}"
    assert carol[0]["data"]["priority_to"] == "P2" and carol[0]["id"] == alice[1]["id"] + 1


async def test_the_notifier_waits_for_the_broker(store, db):
    outbox, connected = Outbox(), asyncio.Event()
    notifier = Notifier(db, outbox, connected=connected, clock=Clock(T0 + 11 * MIN))
    ticket = await ticket_for(store, "5.1")
    await SlaScheduler.from_config(config(), db, outbox, clock=Clock(T0 + 11 * MIN)).check()

    assert await notifier.drain() == 0 and len(await pending(db)) == 3  # kept in the outbox
    connected.set()
    assert await notifier.drain() == 3
    assert {n["ticket_number"] for n in outbox.on("/notifications")} == {ticket.number}


async def test_running_it_fires_on_time_after_a_wake_up(store, db):
    outbox = Outbox()
    notifier = Notifier(db, outbox, poll_every=30)
    scheduler = SlaScheduler.from_config(
        config(targets={"P3": {"first_response": "1s"}}, recheck_every="30s"),
        db,
        outbox,
        notifications_queued=notifier.wake,
    )
    async with asyncio.TaskGroup() as tasks:
        running = [
            tasks.create_task(scheduler.run(), name="sla-scheduler"),
            tasks.create_task(notifier.run(), name="notifier"),
        ]
        await asyncio.sleep(0.1)  # the first pass found nothing and sleeps up to 30 s
        created = time.time()
        ticket = await ticket_for(store, "6.1", at=created)
        scheduler.wake()

        await until(lambda: len(outbox.on("/sla")) == 2, 5, "the warning and the breach")
        await until(lambda: len(outbox.on("/notifications")) == 3, 5, "the notifications")
        for task in running:
            task.cancel()
    warning, breach = outbox.on(f"tickets/{ticket.number}/sla")
    assert warning["event"] == "sla_warning" and breach["event"] == "sla_breached"
    breached = [m for m in outbox.messages if m.topic.endswith("/sla")][1]
    assert json.loads(breached.payload)["reached_at"] <= json.loads(breached.payload)["fired_at"]


def test_a_ticket_is_escalated_in_its_assignees_team_or_the_default_one():
    teams = TeamDirectory({"alice": "tier1", "carol": "tier1", "dave": "vip"}, default="tier1")
    assert teams.team_of("dave") == "vip" and teams.team_of("carol") == "tier1"
    assert teams.team_of(None) == "tier1" and teams.team_of("stranger") == "tier1"
    built = TeamDirectory.from_config(config())
    assert built.team_of("alice") == "tier1" and built.team_of("carol") == "tier1"
    assert built.team_of(None) is None
