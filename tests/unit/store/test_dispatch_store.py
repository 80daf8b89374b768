"""Callback dispatch on the real SQLite store: loads, the assignment and its history, once per call."""

import itertools
import json

import pytest

from cti_bridge.callback_queue import CallbackQueue
from cti_bridge.calls.model import CallKey
from cti_bridge.config import Config
from cti_bridge.config.model import TicketConfig
from cti_bridge.store import Store, notifications
from cti_bridge.store.dispatch import agent_loads
from cti_bridge.store.store import CustomerRow
from cti_bridge.tickets.dispatch import Availability, CallbackPolicy, CallbackReason, Dispatcher, Outcome
from cti_bridge.tickets.fields import FieldSchema
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.workflow import AddComment, Assign, Resolve, Start, Workflow
from tests.support.helpers import inbound_call, new_ticket

T0 = 1_800_000_000.0
HOUR = 3600.0
AGENTS = ("alice", "bob", "carl", "vivian")
_linkedids = itertools.count(1)


def config(**dispatch):
    return Config.model_validate(
        {
            "pbxs": [{"name": "main", "username": "u", "secret": {"env": "X"}}],
            "agents": [
                {"id": "alice", "extension": "1001", "skills": ["billing", "network"], "team": "tier1"},
                {"id": "bob", "extension": "1002", "skills": ["billing"], "team": "tier1"},
                {"id": "carl", "extension": "1003", "skills": ["network"], "team": "tier1"},
                {"id": "vivian", "extension": "1004", "skills": ["billing", "network"], "team": "vip"},
            ],
            "teams": [{"name": "tier1", "supervisor": "sue"}, {"name": "vip"}],
            "dispatch": {
                "skills": {"by_category": {"账务问题": ["billing"]}, "by_queue": {"network": ["network"]}},
                "load_cap": 5,
                "vip_team": "vip",
                "default_team": "tier1",
            }
            | dispatch,
        }
    )


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(f"sqlite:///{tmp_path}/dispatch.db", TicketNumbering())
    yield opened
    await opened.close()


@pytest.fixture
def workflow():
    schema = FieldSchema.from_config(TicketConfig.model_validate({"required_fields": {}}), phone_region="CN")
    return Workflow(schema)


async def call_ticket(store, at=T0, **ticket):
    """A ticket opened by an inbound call; returns (ticket, call)."""
    call = inbound_call(f"{next(_linkedids)}.1", started_at=at, queue=ticket.get("queue"))
    created, _ = await store.create_ticket_for_call(new_ticket(**ticket), call, None, at)
    return created, call


async def answered_ticket(store, agent, at, after):
    """A ticket whose call `agent` answered `after` seconds after it came in (its first response)."""
    ticket, call = await call_ticket(store, at)
    await store.record_answer(call, agent, at + after)
    return ticket


async def held_tickets(store, workflow, agent, count, at=T0 - 30 * 24 * HOUR):
    """`count` open tickets given to `agent` a month ago, outside any response window."""
    for _ in range(count):
        ticket, _ = await call_ticket(store, at)
        await store.apply_command(
            ticket.number, Assign(assignee=agent), workflow=workflow, actor="sup", at=at
        )


async def dispatch_events(store, ticket_id):
    rows = await store._db.fetchall(
        "SELECT kind, actor, from_status, to_status, reason, data FROM ticket_events"
        " WHERE ticket_id = ? AND actor = 'dispatch' ORDER BY id",
        (ticket_id,),
    )
    return [{**dict(r), "data": json.loads(r["data"])} for r in rows]


async def test_loads_count_open_tickets_and_the_median_first_response_in_the_window(store, workflow):
    await held_tickets(store, workflow, "alice", 2)
    # Resolved tickets are no load.
    resolved, _ = await call_ticket(store, T0 - 30 * 24 * HOUR)
    for command in (Assign(assignee="alice"), Start(), Resolve(fields={"resolution": "done"})):
        await store.apply_command(resolved.number, command, workflow=workflow, actor="alice", at=T0)
    # alice answers in 10, 30 and 50 s: median 30 s; bob in 100 s. Each answer also assigns.
    for after in (10, 30, 50):
        await answered_ticket(store, "alice", T0, after)
    await answered_ticket(store, "bob", T0, 100)
    # Outside the window: neither counted nor credited (still a load: it is open).
    await answered_ticket(store, "bob", T0 - 10 * 24 * HOUR, 1)
    # Only a ticket's first response counts, and only a customer-visible comment is one.
    shared = await answered_ticket(store, "carl", T0, 20)
    await store.apply_command(
        shared.number,
        AddComment(text="note", visibility="internal"),
        workflow=workflow,
        actor="bob",
        at=T0 + 5,
    )
    later = await answered_ticket(store, "bob", T0, 2000)
    await store.apply_command(
        later.number,
        AddComment(text="hi", visibility="customer"),
        workflow=workflow,
        actor="carl",
        at=T0 + 40,
    )

    loads = await agent_loads(store._db, AGENTS, response_since=T0 - 7 * 24 * HOUR, on_call={"carl"})

    assert {a: (x.open_tickets, x.median_response) for a, x in loads.items()} == {
        "alice": (5, 30.0),  # 2 held + 3 answered; the resolved one is no load
        "bob": (3, 100.0),  # `later` is his, but carl's comment came first: its response is carl's
        "carl": (1, 30.0),  # 20 s and 40 s
        "vivian": (0, None),
    }
    assert loads["carl"].availability is Availability.ON_CALL
    assert loads["alice"].availability is Availability.AVAILABLE


async def test_a_missed_call_goes_to_the_qualified_agent_with_the_lighter_load(store, workflow):
    await held_tickets(store, workflow, "alice", 3)
    await held_tickets(store, workflow, "bob", 1)
    ticket, call = await call_ticket(store, category="账务问题/退款/申请退款")

    done = await store.assign_callback(
        call.key,
        CallbackReason.MISSED,
        Dispatcher.from_config(config()),
        at=T0 + 60,
        response_since=T0 - HOUR,
    )

    assert done is not None and done.assignee == "bob" and done.assignment.outcome is Outcome.ASSIGNED
    assert done.ticket.status == "assigned" and done.ticket.updated_at == T0 + 60
    row = await store._db.fetchone(
        "SELECT assignee, status, callback_reason FROM tickets WHERE id = ?", (ticket.id,)
    )
    assert dict(row) == {"assignee": "bob", "status": "assigned", "callback_reason": "missed"}
    requested, assigned = await dispatch_events(store, ticket.id)
    assert (
        requested["kind"] == "callback_requested"
        and requested["from_status"] == requested["to_status"] == "new"
    )
    assert requested["data"] == {"call": str(call.key), "callback": "missed"}
    assert (assigned["kind"], assigned["from_status"], assigned["to_status"]) == (
        "assigned",
        "new",
        "assigned",
    )
    assert assigned["reason"] == done.explanation
    assert assigned["reason"].startswith("bob: skill billing matches, load 1/5")
    assert "alice: skill billing matches, load 3/5" in assigned["reason"]
    assert "carl: lacks skill billing" in assigned["reason"]
    assert assigned["data"]["assignee"] == "bob" and assigned["data"]["required_skills"] == ["billing"]
    assert "vivian" not in assigned["reason"]  # the VIP team takes VIP customers only
    # The agent is told through the outbox too, committed with the dispatch.
    (told,) = await notifications.pending(store._db)
    assert (told.recipient, told.kind, told.ticket_number) == ("bob", "callback_assigned", ticket.number)
    assert told.body == done.explanation


async def test_a_vip_customer_goes_to_the_vip_team(store):
    await store.import_customers([CustomerRow(name="Big Co", phones=("+8613800000001",), vip=True)], T0)
    customer = await store.customer_by_phone("+8613800000001")
    ticket, call = await call_ticket(store, customer_id=customer.id, caller_number="+8613800000001")

    done = await store.assign_callback(
        call.key, CallbackReason.ABANDONED, Dispatcher.from_config(config()), at=T0 + 5, response_since=T0
    )

    assert done.assignee == "vivian" and done.assignment.team == "vip"
    assert "(best in VIP team vip)" in done.explanation
    assert (await dispatch_events(store, ticket.id))[-1]["reason"] == done.explanation


async def test_an_agent_at_the_load_cap_is_skipped(store, workflow):
    await held_tickets(store, workflow, "alice", 2)  # alice's own cap is 2
    _, call = await call_ticket(store, queue="network")

    done = await store.assign_callback(
        call.key,
        CallbackReason.MISSED,
        Dispatcher.from_config(config(load_caps={"alice": 2})),
        at=T0 + 5,
        response_since=T0,
    )

    assert done.assignee == "carl"
    assert "alice: skill network matches, at load cap (2/2)" in done.explanation


async def test_nobody_qualifying_leaves_it_in_the_team_queue(store, workflow):
    await held_tickets(store, workflow, "alice", 5)
    await held_tickets(store, workflow, "carl", 5)
    ticket, call = await call_ticket(store, queue="network")

    done = await store.assign_callback(
        call.key, CallbackReason.AFTER_HOURS, Dispatcher.from_config(config()), at=T0 + 5, response_since=T0
    )

    assert done.assignee is None and done.assignment.outcome is Outcome.QUEUED
    assert done.explanation.startswith("left in the tier1 team queue: nobody qualifies")
    row = await store._db.fetchone(
        "SELECT assignee, status, callback_reason FROM tickets WHERE id = ?", (ticket.id,)
    )
    assert dict(row) == {"assignee": None, "status": "new", "callback_reason": "after_hours"}
    _, queued = await dispatch_events(store, ticket.id)
    assert (queued["kind"], queued["from_status"], queued["to_status"]) == ("callback_queued", "new", "new")
    assert queued["data"]["team"] == "tier1" and queued["reason"] == done.explanation


async def test_a_call_is_dispatched_once(store, workflow):
    ticket, call = await call_ticket(store, queue="network")
    dispatcher = Dispatcher.from_config(config())
    first = await store.assign_callback(
        call.key, CallbackReason.MISSED, dispatcher, at=T0 + 5, response_since=T0
    )
    # Later the chosen agent is loaded and another is free: a replay must still change nothing.
    await held_tickets(store, workflow, first.assignee, 4)
    again = await store.assign_callback(
        call.key, CallbackReason.MISSED, dispatcher, at=T0 + 9, response_since=T0
    )

    assert first is not None and again is None
    assert len(await dispatch_events(store, ticket.id)) == 2
    assert len(await notifications.pending(store._db)) == 1
    row = await store._db.fetchone("SELECT assignee, updated_at FROM tickets WHERE id = ?", (ticket.id,))
    assert (row["assignee"], row["updated_at"]) == (first.assignee, T0 + 5)


async def test_an_owned_ticket_keeps_its_owner_who_gets_the_callback(store):
    # The caller's open ticket, answered by bob earlier; today's missed call joined it.
    ticket, first_call = await call_ticket(store)
    await store.record_answer(first_call, "bob", T0 + 3)
    missed = inbound_call("99.1", started_at=T0 + HOUR)
    await store.attach_call(ticket.id, missed, None, T0 + HOUR)

    done = await store.assign_callback(
        missed.key,
        CallbackReason.MISSED,
        Dispatcher.from_config(config()),
        at=T0 + HOUR + 30,
        response_since=T0,
    )

    assert done.assignment is None and done.assignee == "bob" and done.ticket.status == "assigned"
    assert done.explanation == f"missed call {missed.key}: bob already owns the ticket and calls back"
    [requested] = await dispatch_events(store, ticket.id)
    assert requested["kind"] == "callback_requested" and requested["reason"] == done.explanation
    row = await store._db.fetchone("SELECT callback_reason FROM tickets WHERE id = ?", (ticket.id,))
    assert row["callback_reason"] == "missed"


async def test_unknown_calls_and_closed_tickets_are_not_dispatched(store, workflow):
    dispatcher = Dispatcher.from_config(config())
    assert (
        await store.assign_callback(
            CallKey("main", "nope"), CallbackReason.MISSED, dispatcher, at=T0, response_since=T0
        )
        is None
    )
    ticket, call = await call_ticket(store)
    for command in (Assign(assignee="alice"), Start(), Resolve(fields={"resolution": "done"})):
        await store.apply_command(ticket.number, command, workflow=workflow, actor="alice", at=T0 + 1)
    assert (
        await store.assign_callback(call.key, CallbackReason.MISSED, dispatcher, at=T0 + 2, response_since=T0)
        is None
    )


# -- the team queue, offered again -------------------------------------------------------


class Published:
    """The publisher edge: what would go to MQTT."""

    def __init__(self):
        self.messages = []

    def publish(self, message):
        self.messages.append((message.topic, json.loads(message.payload)))


async def test_queued_callbacks_are_offered_again_urgent_queue_first_once_loads_fall(store, workflow):
    await held_tickets(store, workflow, "alice", 5)
    await held_tickets(store, workflow, "carl", 5)
    older, _ = await call_ticket(store, at=T0, queue="network")
    urgent, _ = await call_ticket(store, at=T0 + 60, queue="network-urgent")
    network = {"by_queue": {"network": ["network"], "network-urgent": ["network"]}}
    dispatcher = Dispatcher.from_config(config(urgent_queues=["network-urgent"], skills=network))
    for ticket in (older, urgent):
        call = (await store.ticket_detail(ticket.number))["calls"][0]
        key = CallKey(call["pbx"], call["linkedid"])
        done = await store.assign_callback(
            key, CallbackReason.MISSED, dispatcher, at=T0 + 90, response_since=T0
        )
        assert done.assignment.outcome is Outcome.QUEUED
    assert [q.number for q in await store.queued_callbacks()] == [older.number, urgent.number]

    policy = CallbackPolicy(dispatcher=dispatcher, hours=None, response_window=HOUR)
    published = Published()
    queue = CallbackQueue(
        store, policy, published, urgent_queues=("network-urgent",), every=60, clock=lambda: T0 + 600
    )
    assert await queue.offer() == 0  # still everyone at the cap: nothing written
    assert len(await dispatch_events(store, urgent.id)) == 2

    # carl resolves one ticket: one slot, and the urgent queue's ticket takes it.
    [carls] = await store._db.fetchall("SELECT number FROM tickets WHERE assignee = 'carl' LIMIT 1")
    for command in (Start(), Resolve(fields={"resolution": "done"})):
        await store.apply_command(carls["number"], command, workflow=workflow, actor="carl", at=T0 + 300)
    assert await queue.offer() == 1

    assert [q.number for q in await store.queued_callbacks()] == [older.number]
    *_, taken = await dispatch_events(store, urgent.id)
    assert (taken["kind"], taken["from_status"], taken["to_status"]) == ("assigned", "new", "assigned")
    assert taken["data"]["assignee"] == "carl" and taken["data"]["offered_again"] is True
    assert taken["reason"].startswith("carl: skill network matches, load 4/5")
    [(topic, notice)] = published.messages
    assert topic == f"tickets/{urgent.number}" and notice["data"]["assignee"] == "carl"
    told = [n for n in await notifications.pending(store._db) if n.kind == "callback_assigned"]
    assert [(n.recipient, n.ticket_number) for n in told] == [("carl", urgent.number)]
