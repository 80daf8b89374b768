"""The lifecycle on the real SQLite store: each command's state and history written together,
and a refused command changing nothing."""

import itertools
import json

import pytest

from cti_bridge.config.model import TicketConfig
from cti_bridge.store import Store, notifications
from cti_bridge.tickets.errors import InvalidTransition, MissingFieldsError
from cti_bridge.tickets.fields import FieldSchema
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.workflow import (
    AddComment,
    Assign,
    Close,
    Reopen,
    Resolve,
    Resume,
    Start,
    UpdateFields,
    Wait,
    WaitingOn,
    Workflow,
)
from tests.support.helpers import inbound_call, new_ticket

T0 = 1_800_000_000.0


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(f"sqlite:///{tmp_path}/w.db", TicketNumbering())
    yield opened
    await opened.close()


@pytest.fixture
def workflow():
    config = TicketConfig.model_validate(
        {"required_fields": {"in_progress": ["category"], "resolved": ["resolution"]}}
    )
    return Workflow(FieldSchema.from_config(config, phone_region="CN"))


async def ticket_row(store, number):
    return await store._db.fetchone(
        "SELECT status, assignee, waiting_on, category, fields FROM tickets WHERE number = ?", (number,)
    )


async def lifecycle_events(store, number):
    rows = await store._db.fetchall(
        "SELECT e.kind, e.actor, e.from_status, e.to_status, e.reason, e.data FROM ticket_events e"
        " JOIN tickets t ON t.id = e.ticket_id WHERE t.number = ? AND e.to_status IS NOT NULL"
        " ORDER BY e.id",
        (number,),
    )
    return [dict(r) for r in rows]


async def test_a_ticket_travels_from_new_to_closed_and_back(store, workflow):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("1.1"), None, T0)
    number = ticket.number

    async def do(command, at, actor="agent1"):
        return await store.apply_command(number, command, workflow=workflow, actor=actor, at=T0 + at)

    await do(Assign(assignee="agent1", reason="callback"), 10, actor="supervisor")
    with pytest.raises(MissingFieldsError) as refused:
        await do(Start(), 20)
    assert refused.value.fields == ("category",)
    await do(Start(fields={"category": "技术故障/网络问题/登录异常"}), 30)
    await do(Wait(on=WaitingOn.CUSTOMER, reason="needs the order number"), 40)
    row = await ticket_row(store, number)
    assert (row["status"], row["waiting_on"]) == ("waiting", "customer")
    await do(Resume(reason="customer called back"), 50)
    await do(AddComment(text="客户确认登录异常已复现"), 55)
    with pytest.raises(MissingFieldsError):
        await do(Resolve(), 60)
    await do(Resolve(fields={"resolution": "重置密码后恢复"}), 70)
    await do(Close(confirmed_by_customer=True), 80)
    await do(Reopen(reason="the problem came back"), 90)

    row = await ticket_row(store, number)
    assert (row["status"], row["assignee"], row["waiting_on"]) == ("in_progress", "agent1", None)
    assert row["category"] == "技术故障/网络问题/登录异常"
    assert json.loads(row["fields"]) == {"resolution": "重置密码后恢复"}
    events = await lifecycle_events(store, number)
    assert [(e["kind"], e["from_status"], e["to_status"]) for e in events] == [
        ("assigned", "new", "assigned"),
        ("fields_updated", "assigned", "assigned"),  # the category given with Start
        ("started", "assigned", "in_progress"),
        ("waiting", "in_progress", "waiting"),
        ("resumed", "waiting", "in_progress"),
        ("commented", "in_progress", "in_progress"),
        ("fields_updated", "in_progress", "in_progress"),  # the resolution
        ("resolved", "in_progress", "resolved"),
        ("closed", "resolved", "closed"),
        ("reopened", "closed", "in_progress"),
    ]
    assert events[0]["actor"] == "supervisor" and events[0]["reason"] == "callback"
    # Each event starts where the one before it ended: nothing lost, nothing reordered.
    assert all(a["to_status"] == b["from_status"] for a, b in itertools.pairwise(events))
    # The comment is searchable at once (its event feeds the full-text index).
    assert [hit.number for hit in await store.search("登录异常已复现")] == [number]


async def test_a_refused_command_leaves_the_ticket_and_its_history_alone(store, workflow):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("2.1"), None, T0)
    before = (await ticket_row(store, ticket.number), await lifecycle_events(store, ticket.number))

    with pytest.raises(InvalidTransition) as refused:
        await store.apply_command(ticket.number, Close(), workflow=workflow, actor="agent1", at=T0 + 5)

    assert "allowed now" in str(refused.value)
    assert dict(before[0]) == dict(await ticket_row(store, ticket.number))
    assert before[1] == await lifecycle_events(store, ticket.number) == []
    with pytest.raises(LookupError):
        await store.apply_command("T-999999", UpdateFields(values={}), workflow=workflow, actor="a", at=T0)


async def test_a_comment_notifies_the_users_it_mentions_in_the_same_transaction(store, workflow):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("m.1"), None, T0)
    await store.apply_command(
        ticket.number,
        AddComment(text="@bob 请回电客户, cc @carol and @alice"),
        workflow=workflow,
        actor="alice",
        at=T0 + 5,
    )
    await store.apply_command(
        ticket.number, AddComment(text="no one named"), workflow=workflow, actor="alice", at=T0 + 6
    )

    queued = await notifications.pending(store._db)
    # The author mentioning herself is not told; each other user once.
    assert [(n.recipient, n.kind, n.ticket_number) for n in queued] == [
        ("bob", "mention", ticket.number),
        ("carol", "mention", ticket.number),
    ]
    assert "alice" in queued[0].title and ticket.number in queued[0].title
    assert queued[0].body == "@bob 请回电客户, cc @carol and @alice"


async def test_a_refused_comment_notifies_nobody(store, workflow):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("m.2"), None, T0)
    with pytest.raises(InvalidTransition):
        await store.apply_command(
            ticket.number, AddComment(text="   "), workflow=workflow, actor="alice", at=T0 + 5
        )
    assert await notifications.pending(store._db) == []
