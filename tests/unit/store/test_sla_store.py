"""SLA marks, escalations and the notification outbox on the real SQLite store: what fires is
written once, with its history events and notifications, or not at all."""

import json
import sqlite3

import pytest

from cti_bridge.config.model import EscalationConfig
from cti_bridge.store import Database, Store
from cti_bridge.store import sla as sla_store
from cti_bridge.store.notifications import mark_sent, pending, queue_notifications
from cti_bridge.tickets.kpi import first_response_at, status_history
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.sla import (
    ALWAYS_OPEN,
    EscalationDue,
    SlaMark,
    SlaMarkKind,
    SlaPolicy,
    SlaTarget,
    TargetRule,
    WarningDue,
    WatchedTicket,
    plan_sla,
    ticket_sla,
)
from cti_bridge.tickets.workflow import AddComment, Assign, Workflow
from tests.support.helpers import inbound_call, new_ticket

T0 = 1_800_000_000.0
MIN = 60
FR, RES = SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION
POLICY = SlaPolicy(
    targets={"P3": {FR: TargetRule(allowed=10 * MIN, clock=ALWAYS_OPEN)}},
    warning_fraction=0.8,
    warning_notify=("assignee",),
    escalations={
        FR: EscalationConfig(
            raise_priority=True, notify=["assignee", "supervisor"], reassign_to_supervisor=True
        )
    },
    supervisors={"tier1": "carol"},
)


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(f"sqlite:///{tmp_path}/sla.db", TicketNumbering())
    yield opened
    await opened.close()


@pytest.fixture
async def db(store, tmp_path):
    """A second connection to the same file, as the daemon's SLA scheduler has."""
    opened = await Database.open(f"sqlite:///{tmp_path}/sla.db")
    yield opened
    await opened.close()


async def assigned_ticket(store, linkedid, assignee="alice"):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call(linkedid), None, T0)
    await store.apply_command(
        ticket.number, Assign(assignee=assignee), workflow=Workflow(), actor="bob", at=T0 + 1
    )
    return ticket


def plan(snapshot, now):
    watched = [
        WatchedTicket(
            sla=ticket_sla(
                t.id,
                status_history(t),
                priority=t.priority,
                policy=POLICY,
                now=now,
                responded_at=first_response_at(t.events),
            ),
            assignee=t.assignee,
            team="tier1",
        )
        for t in snapshot.tickets
    ]
    return plan_sla(watched, policy=POLICY, fired=snapshot.fired, now=now)


async def sla_events(db, ticket_id):
    rows = await db.fetchall(
        "SELECT kind, actor, from_status, to_status, reason, data FROM ticket_events"
        " WHERE ticket_id = ? AND actor = 'sla' ORDER BY id",
        (ticket_id,),
    )
    return [{**dict(r), "data": json.loads(r["data"])} for r in rows]


async def test_the_snapshot_holds_open_tickets_their_histories_and_fired_marks(store, db):
    ticket = await assigned_ticket(store, "1.1")
    other = await assigned_ticket(store, "1.2", assignee="dave")
    await db.execute("UPDATE tickets SET status = 'resolved' WHERE id = ?", (other.id,))

    snapshot = await sla_store.watched_tickets(db)

    [watched] = snapshot.tickets
    assert watched.id == ticket.id and watched.assignee == "alice" and watched.priority == "P3"
    assert [e.kind for e in watched.events] == ["created", "assigned"]
    last = await db.fetchone("SELECT max(id) AS id FROM ticket_events WHERE ticket_id = ?", (ticket.id,))
    assert snapshot.versions == {ticket.id: last["id"]} and snapshot.fired == frozenset()


async def test_a_warning_is_written_once_with_its_event_and_notification(store, db):
    ticket = await assigned_ticket(store, "2.1")
    snapshot = await sla_store.watched_tickets(db)
    [warning] = plan(snapshot, T0 + 9 * MIN).actions
    assert isinstance(warning, WarningDue)

    fired = await sla_store.fire(db, warning, version=snapshot.versions[ticket.id], at=T0 + 9 * MIN)

    assert fired is not None and fired.ticket.priority == "P3" and fired.notified == ("alice",)
    [event] = await sla_events(db, ticket.id)
    assert event["kind"] == "sla_warning" and event["reason"] == warning.reason
    assert (event["from_status"], event["to_status"]) == ("assigned", "assigned")
    assert event["data"]["target"] == "first_response" and event["data"]["due_at"] == T0 + 10 * MIN
    again = await sla_store.fire(db, warning, version=fired.version, at=T0 + 9 * MIN + 1)
    assert again is None  # the mark is there: a second scheduler or a restart writes nothing
    assert len(await sla_events(db, ticket.id)) == 1
    snapshot = await sla_store.watched_tickets(db)
    assert snapshot.fired == {SlaMark(ticket.id, FR, SlaMarkKind.WARNING)}
    [queued] = await pending(db)
    assert (queued.recipient, queued.kind, queued.ticket_number) == ("alice", "sla_warning", ticket.number)
    assert queued.title == f"SLA 即将超时 / SLA warning: {ticket.number}"
    assert warning.reason in queued.body and queued.data["target"] == "first_response"


async def test_an_escalation_raises_the_priority_and_reassigns_to_the_supervisor(store, db):
    ticket = await assigned_ticket(store, "3.1")
    snapshot = await sla_store.watched_tickets(db)
    warning, breach = plan(snapshot, T0 + 11 * MIN).actions  # missed while down: both, in order
    assert isinstance(breach, EscalationDue)

    first = await sla_store.fire(db, warning, version=snapshot.versions[ticket.id], at=T0 + 11 * MIN)
    assert first is not None
    fired = await sla_store.fire(db, breach, version=first.version, at=T0 + 11 * MIN)

    assert fired is not None
    assert (fired.ticket.priority, fired.ticket.assignee) == ("P2", "carol")
    events = await sla_events(db, ticket.id)
    assert [e["kind"] for e in events] == ["sla_warning", "sla_breached", "priority_changed", "reassigned"]
    breached, raised, reassigned = events[1:]
    assert breached["data"]["priority_from"] == "P3" and breached["data"]["reassigned_to"] == "carol"
    assert raised["data"] == {"priority": "P2", "previous": "P3"}
    assert raised["reason"] == "SLA first response breached: priority raised from P3 to P2"
    assert reassigned["data"] == {"assignee": "carol", "previous": "alice"}
    assert reassigned["reason"] == "SLA first response breached: escalated to the supervisor carol"
    row = await db.fetchone("SELECT priority, assignee, status FROM tickets WHERE id = ?", (ticket.id,))
    assert tuple(row) == ("P2", "carol", "assigned")
    breaches = [n for n in await pending(db) if n.kind == "sla_breach"]
    assert [n.recipient for n in breaches] == ["alice", "carol"]
    assert breaches[0].title == f"SLA 已超时 / SLA breached: {ticket.number}"


async def test_an_unassigned_ticket_escalated_to_the_supervisor_becomes_assigned(store, db):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("4.1"), None, T0)
    snapshot = await sla_store.watched_tickets(db)
    version = snapshot.versions[ticket.id]
    for action in plan(snapshot, T0 + 11 * MIN).actions:
        fired = await sla_store.fire(db, action, version=version, at=T0 + 11 * MIN)
        assert fired is not None
        version = fired.version

    [assigned] = [e for e in await sla_events(db, ticket.id) if e["kind"] == "assigned"]
    assert (assigned["from_status"], assigned["to_status"]) == ("new", "assigned")
    assert assigned["data"] == {"assignee": "carol"}


async def test_a_ticket_changed_since_the_snapshot_is_left_for_the_next_plan(store, db):
    ticket = await assigned_ticket(store, "5.1")
    snapshot = await sla_store.watched_tickets(db)
    [warning] = plan(snapshot, T0 + 9 * MIN).actions
    await store.apply_command(
        ticket.number, AddComment(text="looking into it"), workflow=Workflow(), actor="alice", at=T0 + 9 * MIN
    )

    assert await sla_store.fire(db, warning, version=snapshot.versions[ticket.id], at=T0 + 9 * MIN) is None
    assert await sla_events(db, ticket.id) == [] and await pending(db) == []
    assert (await sla_store.watched_tickets(db)).fired == frozenset()


async def test_queued_notifications_commit_with_their_transaction_and_drain_in_order(store, db):
    ticket = await assigned_ticket(store, "6.1")

    async def mention(tx, fail):
        await queue_notifications(
            tx,
            ["bob", "dave", "bob", " "],
            kind="mention",
            ticket_id=ticket.id,
            title=f"提到了你 / You were mentioned: {ticket.number}",
            body="@bob @dave please call back",
            data={"number": ticket.number},
            at=T0 + 5,
        )
        if fail:
            raise sqlite3.IntegrityError("the comment could not be written")

    with pytest.raises(sqlite3.IntegrityError):
        await db.transaction(mention, True)
    assert await pending(db) == []
    await db.transaction(mention, False)

    queued = await pending(db)
    assert [(n.recipient, n.kind, n.ticket_number) for n in queued] == [
        ("bob", "mention", ticket.number),
        ("dave", "mention", ticket.number),
    ]
    assert queued[0].data == {"number": ticket.number} and queued[0].created_at == T0 + 5
    assert [n.recipient for n in await pending(db, limit=1)] == ["bob"]
    await mark_sent(db, [queued[0].id], T0 + 6)
    assert [n.recipient for n in await pending(db)] == ["dave"]
    sent = await db.fetchone("SELECT sent_at FROM notifications WHERE id = ?", (queued[0].id,))
    assert sent["sent_at"] == T0 + 6


async def test_the_open_ticket_and_outbox_reads_use_indexes(db):
    """A store holds 10^6 tickets of which a few thousand are open: no read may scan a table."""
    open_statuses = "('new', 'assigned', 'in_progress', 'waiting')"
    for sql in (
        f"SELECT id FROM tickets WHERE status IN {open_statuses} ORDER BY id",
        "SELECT e.id FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id"
        f" WHERE t.status IN {open_statuses} ORDER BY e.ticket_id, e.at, e.id",
        "SELECT m.key FROM tickets t JOIN sla_marks m ON m.ticket_id = t.id"
        f" WHERE t.status IN {open_statuses}",
        "SELECT n.id FROM notifications n LEFT JOIN tickets t ON t.id = n.ticket_id"
        " WHERE n.sent_at IS NULL ORDER BY n.id LIMIT 100",
    ):
        steps = [r["detail"] for r in await db.fetchall("EXPLAIN QUERY PLAN " + sql)]
        scans = [s for s in steps if s.startswith("SCAN") and "INDEX" not in s]
        assert scans == [], steps
