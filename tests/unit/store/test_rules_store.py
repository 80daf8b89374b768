"""Rules reading a transcript on the real SQLite store: what they change is written as the
workflow's own commands by actor `rules`, and what a person set stays."""

import json
from pathlib import Path

import pytest

from cti_bridge.config import load_config
from cti_bridge.store import Store
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.workflow import Assign, ChangePriority, Resolve, Start, UpdateFields, Workflow
from tests.support.helpers import inbound_call, new_ticket

T0 = 1_800_000_000.0
EXAMPLE_CONFIG = Path(__file__).parents[3] / "config" / "cti-bridge.yaml"
TRANSCRIPT = "你好 我要投诉 我想退款 订单号 20261122001 型号 HX-200"


@pytest.fixture(scope="module")
def config():
    return load_config(EXAMPLE_CONFIG, check_secrets=False)


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(f"sqlite:///{tmp_path}/r.db", TicketNumbering())
    yield opened
    await opened.close()


async def a_call_ticket(store, linkedid="1.1", **ticket):
    fields = {"priority": "P3", "category": "技术故障/网络问题/登录异常", **ticket}
    created, _ = await store.create_ticket_for_call(new_ticket(**fields), inbound_call(linkedid), None, T0)
    return created


async def revise(store, config, ticket, transcript=TRANSCRIPT):
    return await store.revise_by_rules(
        ticket.id,
        transcript=transcript,
        rules=config.tickets.rules,
        workflow=Workflow.from_config(config),
        at=T0 + 60,
    )


async def row_of(store, ticket):
    return await store._db.fetchone(
        "SELECT category, priority, fields FROM tickets WHERE id = ?", (ticket.id,)
    )


async def events_of(store, ticket):
    rows = await store._db.fetchall(
        "SELECT kind, actor, reason, data FROM ticket_events WHERE ticket_id = ? AND kind != 'created'"
        " ORDER BY id",
        (ticket.id,),
    )
    return [dict(r) for r in rows]


async def test_a_transcript_sets_category_raises_priority_and_extracts_fields(store, config):
    ticket = await a_call_ticket(store)

    decision = await revise(store, config, ticket)

    assert decision is not None
    row = await row_of(store, ticket)
    assert row["category"] == "账务问题/退款/申请退款"
    assert row["priority"] == "P2"
    assert json.loads(row["fields"]) == {"order_number": "20261122001", "product_model": "HX-200"}
    events = await events_of(store, ticket)
    assert [(e["kind"], e["actor"]) for e in events] == [
        ("fields_updated", "rules"),
        ("priority_changed", "rules"),
    ]
    assert 'rule "refund-keywords": transcript contains "退款"' in events[0]["reason"]
    assert 'rule "complaint"' in events[1]["reason"]


async def test_what_a_person_set_stays_and_a_second_reading_changes_nothing(store, config):
    ticket = await a_call_ticket(store)
    workflow = Workflow.from_config(config)
    await store.apply_command(
        ticket.number,
        UpdateFields(values={"category": "售后服务/VIP专线/综合咨询", "order_number": "11112222"}),
        workflow=workflow,
        actor="alice",
        at=T0 + 10,
    )
    await store.apply_command(
        ticket.number, ChangePriority(priority="P4"), workflow=workflow, actor="alice", at=T0 + 20
    )

    await revise(store, config, ticket)
    row = await row_of(store, ticket)
    assert row["category"] == "售后服务/VIP专线/综合咨询"
    assert row["priority"] == "P4"
    assert json.loads(row["fields"]) == {"order_number": "11112222", "product_model": "HX-200"}

    assert await revise(store, config, ticket) is None


async def test_a_transcript_without_any_rule_text_or_a_resolved_ticket_changes_nothing(store, config):
    ticket = await a_call_ticket(store)
    assert await revise(store, config, ticket, transcript="你好 谢谢 再见") is None
    assert await events_of(store, ticket) == []

    workflow = Workflow.from_config(config)
    for command in (Assign(assignee="alice"), Start(), Resolve(fields={"resolution": "已处理"})):
        await store.apply_command(ticket.number, command, workflow=workflow, actor="alice", at=T0 + 10)
    assert await revise(store, config, ticket) is None
    assert (await row_of(store, ticket))["priority"] == "P3"
