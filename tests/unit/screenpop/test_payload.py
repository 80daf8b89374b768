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


def test_a_pop_carries_the_crm_state_and_answer():
    from cti_bridge.tickets.crm import CallerCrm, CrmLookup, CrmOrder, CrmProfile, CrmStatus

    ticket = Ticket(
        id=7,
        number="T-000007",
        status=TicketStatus.NEW,
        priority="P3",
        category=None,
        subject="Phone call from 王芳",
        assignee=None,
        created_at=0.0,
        updated_at=0.0,
        rule=None,
        description="",
        channel="phone",
        customer_id=None,
        caller_number="+8613800138000",
        caller_name="王芳",
        did=None,
        queue=None,
    )
    call = Call(
        key=CallKey("main", "1.1"),
        direction=Direction.INBOUND,
        caller_number="+8613800138000",
        caller_name=None,
        did=None,
        queue=None,
        started_at=0.0,
    )
    history = CallerHistory(customer=None, open_tickets=(), recent_tickets=())
    common = dict(
        agent_id="a",
        call=call,
        caller_e164="+8613800138000",
        ticket=ticket,
        history=history,
        created=True,
        event_at=0.0,
        now=0.0,
    )
    without = screen_pop(event="ringing", **common)
    assert (without.crm_status, without.crm) == (CrmStatus.OFF, None)
    pending = screen_pop(event="ringing", crm=CallerCrm(CrmStatus.PENDING), **common)
    assert json.loads(pending.model_dump_json())["crm_status"] == "pending"
    lookup = CrmLookup(
        phone="+8613800138000",
        profile=CrmProfile(name="王芳", vip=True, orders=(CrmOrder(id="SO-1", total="9.90"),)),
        fetched_at=1.5,
    )
    enriched = screen_pop(event="enriched", crm=CallerCrm.of(lookup), **common)
    data = json.loads(enriched.model_dump_json())
    assert ScreenPop.model_validate(data) == enriched
    assert data["event"] == "enriched" and data["crm_status"] == "found"
    assert data["crm"]["name"] == "王芳" and data["crm"]["vip"] is True and data["crm"]["tier"] is None
    assert data["crm"]["orders"] == [
        {"id": "SO-1", "date": None, "total": "9.90", "status": None, "summary": None}
    ]
    assert data["crm"]["fetched_at"] == "1970-01-01T00:00:01.500+00:00"


def _ticket(caller_name):
    return Ticket(
        id=8,
        number="T-000008",
        status=TicketStatus.NEW,
        priority="P3",
        category=None,
        subject=f"Phone call from {caller_name}",
        assignee=None,
        created_at=0.0,
        updated_at=1.0,
        rule=None,
        description="d",
        channel="phone",
        customer_id=None,
        caller_number="+14155550100",
        caller_name=caller_name,
        did="4001",
        queue=None,
    )


def _call(number, name):
    return Call(
        key=CallKey("main", "2.1"),
        direction=Direction.INBOUND,
        caller_number=number,
        caller_name=name,
        did="4001",
        queue=None,
        started_at=0.0,
    )


def _caller_of(call, ticket, customer=None, e164="+14155550100"):
    history = CallerHistory(customer=customer, open_tickets=(), recent_tickets=())
    pop = screen_pop(
        event="ringing",
        agent_id="alice",
        call=call,
        caller_e164=e164,
        ticket=ticket,
        history=history,
        created=False,
        event_at=0.5,
        now=0.6,
    )
    return json.loads(pop.model_dump_json())["caller"]


def test_the_pop_names_the_caller_by_what_is_known_best():
    # Not a customer: the caller ID name, as the ticket's title has it.
    assert _caller_of(_call("4155550100", "Browser Caller"), _ticket("Browser Caller")) == {
        "number": "+14155550100",
        "name": "Browser Caller",
        "name_from": "caller_id",
    }
    # A repeat call without a caller ID name: the name the caller's open ticket was opened with.
    assert _caller_of(_call("4155550100", None), _ticket("Browser Caller"))["name"] == "Browser Caller"
    assert _caller_of(_call("4155550100", None), _ticket("Browser Caller"))["name_from"] == "ticket"
    # A customer: the record's name, whatever the line sent.
    customer = Customer(id=3, name="王芳", phones=("+14155550100",))
    assert _caller_of(_call("4155550100", "WIRELESS CALLER"), _ticket(None), customer)["name"] == "王芳"
    # Number withheld, a name given: the name is still there; nothing known: None, not a guess.
    assert _caller_of(_call("anonymous", "Withheld Name"), _ticket(None), e164=None) == {
        "number": "anonymous",
        "name": "Withheld Name",
        "name_from": "caller_id",
    }
    assert _caller_of(_call(None, "  "), _ticket(None), e164=None) == {
        "number": None,
        "name": None,
        "name_from": None,
    }
