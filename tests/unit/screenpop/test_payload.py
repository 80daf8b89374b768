import json

import pytest

from cti_bridge.calls.model import Call, CallKey, Direction
from cti_bridge.screenpop.payload import ScreenPop, iso, screen_pop
from cti_bridge.screenpop.schema import HERE, SCHEMAS, render
from cti_bridge.tickets.model import CallerHistory, Customer, Ticket, TicketStatus


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_published_schemas_match_the_models(name):
    # Regenerate with: python -m cti_bridge.screenpop.schema
    assert (HERE / name).read_text(encoding="utf-8") == render(SCHEMAS[name])


def test_screen_pop_round_trips_through_its_schema():
    ticket = Ticket(
        id=7,
        number="T-000007",
        status=TicketStatus.NEW,
        priority="P2",
        category="a/b/c",
        subject="Phone call from 王芳",
        assignee=None,
        created_at=0.0,
        updated_at=1.0,
        rule="vip",
        description="d",
        channel="phone",
        customer_id=3,
        caller_number="+8613800138000",
        caller_name="Wang",
        did="4001",
        queue=None,
    )
    customer = Customer(id=3, name="王芳", vip=True, tier="gold", phones=("+8613800138000",))
    call = Call(
        key=CallKey("main", "1.1"),
        direction=Direction.INBOUND,
        caller_number="13800138000",
        caller_name="Wang",
        did="4001",
        queue=None,
        started_at=0.0,
    )
    pop = screen_pop(
        event="ringing",
        agent_id="alice",
        call=call,
        caller_e164="+8613800138000",
        ticket=ticket,
        history=CallerHistory(customer=customer, open_tickets=(ticket,), recent_tickets=(ticket,)),
        created=True,
        event_at=0.5,
        now=0.501,
    )
    data = json.loads(pop.model_dump_json())
    assert ScreenPop.model_validate(data) == pop
    assert data["call"]["caller_number"] == "+8613800138000"
    assert data["customer"]["vip"] is True and data["open_tickets"][0]["number"] == "T-000007"
    assert data["event_at"] == "1970-01-01T00:00:00.500+00:00"
    assert iso(None) is None
