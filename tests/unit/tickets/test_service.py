"""The ticket service over the real SQLite store in a temporary file."""

import dataclasses
import time

import pytest

from cti_bridge.calls.model import Call, CallKey, Direction, Outcome
from cti_bridge.config.model import TicketConfig
from cti_bridge.store import CustomerRow, Store
from cti_bridge.tickets.model import TicketNumbering, TicketStatus
from cti_bridge.tickets.service import TicketService

HOUR = 3600.0


@pytest.fixture
async def store(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path}/t.db", TicketNumbering("T-", 6))
    yield store
    await store.close()


def config(**overrides):
    base = {
        "reuse_open_ticket_within": "24h",
        "rules": [
            {
                "name": "support",
                "when": {"queue": ["support"]},
                "category": "技术故障/网络问题/登录异常",
            },
            {"name": "hotline", "when": {"did": ["4008001000"]}, "priority": "P1"},
        ],
    }
    return TicketConfig.model_validate({**base, **overrides})


def call(linkedid, *, number="13800138000", at=1_800_000_000.0, queue="support", did="4001"):
    return Call(
        key=CallKey("main", linkedid),
        direction=Direction.INBOUND,
        caller_number=number,
        caller_name="Zhang San",
        did=did,
        queue=queue,
        started_at=at,
    )


async def test_new_caller_gets_a_prefilled_ticket(store):
    service = TicketService(store, config(), "CN")
    opened = await service.open_for_call(call("1.1"))
    ticket = opened.ticket
    assert opened.created and opened.attached
    assert ticket.number == "T-000001" and ticket.status is TicketStatus.NEW
    assert ticket.caller_number == "+8613800138000" and opened.caller_e164 == "+8613800138000"
    assert ticket.category == "技术故障/网络问题/登录异常" and ticket.rule == "support"
    assert ticket.priority == "P3" and ticket.queue == "support" and ticket.did == "4001"
    assert "via queue support" in ticket.description
    assert opened.history.customer is None


async def test_the_ticket_form_starts_with_the_callers_name_and_number(store):
    service = TicketService(store, config(), "CN")
    opened = await service.open_for_call(call("1.1"))
    detail = await store.ticket_detail(opened.ticket.number)
    assert detail["fields"] == {"customer_name": "Zhang San", "contact_phone": "+8613800138000"}
    # A number that cannot be read is not a contact phone; no caller ID name, no customer name.
    nameless = dataclasses.replace(call("2.1", number="anonymous"), caller_name=None)
    detail = await store.ticket_detail((await service.open_for_call(nameless)).ticket.number)
    assert detail["fields"] == {}


async def test_a_customers_record_fills_the_form_before_the_caller_id(store):
    await store.import_customers(
        [CustomerRow(name="王芳", phones=("+8613800138000",), email="wang.fang@example.cn")], time.time()
    )
    service = TicketService(store, config(), "CN")
    opened = await service.open_for_call(call("1.1"))  # the line says "Zhang San"
    detail = await store.ticket_detail(opened.ticket.number)
    assert detail["fields"] == {
        "customer_name": "王芳",
        "contact_phone": "+8613800138000",
        "contact_email": "wang.fang@example.cn",
    }


async def test_the_same_call_twice_is_one_ticket(store):
    service = TicketService(store, config(), "CN")
    first = await service.open_for_call(call("1.1"))
    again = await service.open_for_call(call("1.1"))
    assert again.ticket.id == first.ticket.id and not again.created and not again.attached
    detail = await store.ticket_detail(first.ticket.number)
    assert len(detail["calls"]) == 1


async def test_repeat_caller_within_window_joins_the_open_ticket(store):
    service = TicketService(store, config(), "CN")
    first = await service.open_for_call(call("1.1", at=1_800_000_000.0))
    second = await service.open_for_call(call("2.1", at=1_800_000_000.0 + 23 * HOUR))
    assert second.ticket.id == first.ticket.id and second.attached and not second.created
    assert [c["linkedid"] for c in (await store.ticket_detail("T-000001"))["calls"]] == [
        "1.1",
        "2.1",
    ]
    # The window runs from the last update: the attach moved it on.
    third = await service.open_for_call(call("3.1", at=1_800_000_000.0 + 46 * HOUR))
    assert third.ticket.id == first.ticket.id


async def test_repeat_caller_outside_window_gets_a_new_ticket(store):
    service = TicketService(store, config(reuse_open_ticket_within="1h"), "CN")
    first = await service.open_for_call(call("1.1", at=1_800_000_000.0))
    later = await service.open_for_call(call("2.1", at=1_800_000_000.0 + 2 * HOUR))
    assert later.created and later.ticket.id != first.ticket.id
    assert later.ticket.number == "T-000002"
    assert [t.number for t in later.history.open_tickets] == ["T-000002", "T-000001"]


async def test_resolved_ticket_is_not_reused(store):
    service = TicketService(store, config(), "CN")
    first = await service.open_for_call(call("1.1"))
    await store._db.execute("UPDATE tickets SET status = 'resolved' WHERE id = ?", (first.ticket.id,))
    again = await service.open_for_call(call("2.1", at=1_800_000_000.0 + 60))
    assert again.created and again.ticket.id != first.ticket.id


async def test_anonymous_callers_never_share_a_ticket(store):
    service = TicketService(store, config(), "CN")
    one = await service.open_for_call(call("1.1", number=None))
    two = await service.open_for_call(call("2.1", number=None))
    assert one.created and two.created


async def test_known_vip_customer_with_history(store):
    await store.import_customers(
        [
            CustomerRow(
                name="王芳",
                phones=("+8613800138000", "+8613900139000"),
                company="ACME",
                vip=True,
                tier="gold",
            )
        ],
        time.time(),
    )
    service = TicketService(store, config(), "CN")
    first = await service.open_for_call(call("1.1", queue=None, did="4001"))
    assert first.ticket.priority == "P2"  # vip_priority beats the default P3
    assert first.history.customer is not None and first.history.customer.name == "王芳"
    assert first.ticket.subject == "Phone call from 王芳"
    await store._db.execute("UPDATE tickets SET status = 'closed'")
    # Same customer from another number: a new ticket, the old one in the history.
    other = await service.open_for_call(
        call("2.1", number="13900139000", did="4008001000", queue=None, at=1_800_000_000.0 + 60)
    )
    assert other.created and other.ticket.priority == "P1" and other.ticket.rule == "hotline"
    assert [t.number for t in other.history.recent_tickets] == ["T-000002", "T-000001"]
    assert [t.number for t in other.history.open_tickets] == ["T-000002"]


async def test_answer_assigns_and_end_records_the_call(store):
    service = TicketService(store, config(), "CN")
    c = call("1.1")
    opened = await service.open_for_call(c)
    answered = dataclasses.replace(c, answered_at=c.started_at + 5, agent_id="alice")
    assert await service.agent_answered(answered, "alice", c.started_at + 5)
    assert not await service.agent_answered(answered, "alice", c.started_at + 6)  # idempotent
    ticket = await service.ticket(opened.ticket.id)
    assert ticket.assignee == "alice" and ticket.status is TicketStatus.ASSIGNED
    ended = dataclasses.replace(
        answered,
        ended_at=c.started_at + 65,
        outcome=Outcome.ANSWERED,
        hangup_cause=16,
        hangup_cause_text="Normal Clearing",
    )
    await service.call_ended(ended, ended.ended_at)
    detail = await store.ticket_detail(ticket.number)
    [row] = detail["calls"]
    assert (row["ring_seconds"], row["talk_seconds"], row["outcome"]) == (5.0, 60.0, "answered")
    assert [e["kind"] for e in detail["history"]] == [
        "created",
        "assigned",
        "call_answered",
        "call_ended",
    ]


def test_numbering_format():
    assert TicketNumbering("T-", 6).format(123) == "T-000123"
    assert TicketNumbering("GD", 8).format(7) == "GD00000007"
