"""A ticket's CRM answer on the real SQLite store: kept, renamed only while unedited, in history."""

import pytest

from cti_bridge.store import Store
from cti_bridge.store import crm as crm_answers
from cti_bridge.tickets.crm import CrmLookup, CrmOrder, CrmProfile, crm_naming
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.prefill import call_subject
from tests.support.helpers import inbound_call, new_ticket

T0 = 1_800_000_000.0
PHONE = "+14155550100"
FANG = CrmProfile(name="王芳", tier="gold", vip=True, external_id="C-7", orders=(CrmOrder(id="SO-1"),))


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(f"sqlite:///{tmp_path}/crm.db", TicketNumbering())
    yield opened
    await opened.close()


async def a_ticket(store, linkedid="1.1", **fields):
    new = new_ticket(
        subject=call_subject("WIRELESS CALLER"), caller_number=PHONE, caller_name="WIRELESS CALLER", **fields
    )
    ticket, _ = await store.create_ticket_for_call(new, inbound_call(linkedid), PHONE, T0)
    return ticket


async def test_the_answer_is_kept_and_names_the_ticket(store):
    ticket = await a_ticket(store)
    lookup = CrmLookup(phone=PHONE, profile=FANG, fetched_at=T0 + 1)
    kept = await crm_answers.record_lookup(
        store.database, ticket.id, lookup, naming=crm_naming(ticket, FANG), at=T0 + 2
    )
    assert kept.changed and kept.renamed
    assert (kept.ticket.caller_name, kept.ticket.subject) == ("王芳", "Phone call from 王芳")
    assert kept.ticket.updated_at == T0  # the CRM's answer is no work on the ticket
    detail = await store.ticket_detail(ticket.number)
    assert detail["crm"] == {
        "found": True,
        "phone": PHONE,
        "fetched_at": T0 + 1,
        "profile": {
            "name": "王芳",
            "company": None,
            "email": None,
            "tier": "gold",
            "vip": True,
            "external_id": "C-7",
            "notes": None,
            "orders": [{"id": "SO-1", "date": None, "total": None, "status": None, "summary": None}],
        },
    }
    [event] = [e for e in detail["history"] if e["kind"] == "caller_enriched"]
    assert event["actor"] == "crm"
    assert event["data"] == {
        "found": True,
        "renamed": True,
        "name": "王芳",
        "external_id": "C-7",
        "tier": "gold",
        "vip": True,
    }
    # The name is searchable like any subject.
    assert [hit.number for hit in await store.search("王芳")] == [ticket.number]


async def test_the_same_answer_again_writes_no_event_and_a_new_one_replaces_it(store):
    ticket = await a_ticket(store)
    first = CrmLookup(phone=PHONE, profile=FANG, fetched_at=T0 + 1)
    await crm_answers.record_lookup(store.database, ticket.id, first, naming=None, at=T0 + 2)
    again = await crm_answers.record_lookup(store.database, ticket.id, first, naming=None, at=T0 + 3)
    assert not again.changed and not again.renamed
    gone = CrmLookup(phone=PHONE, profile=None, fetched_at=T0 + 9)
    later = await crm_answers.record_lookup(store.database, ticket.id, gone, naming=None, at=T0 + 10)
    assert later.changed
    detail = await store.ticket_detail(ticket.number)
    assert detail["crm"] == {"found": False, "phone": PHONE, "fetched_at": T0 + 9, "profile": None}
    kinds = [(e["kind"], e["data"].get("found")) for e in detail["history"] if e["actor"] == "crm"]
    assert kinds == [("caller_enriched", True), ("caller_enriched", False)]


async def test_a_subject_edited_meanwhile_is_not_overwritten(store):
    ticket = await a_ticket(store)
    naming = crm_naming(ticket, FANG)
    await store.database.execute("UPDATE tickets SET subject = 'Router reboots' WHERE id = ?", (ticket.id,))
    lookup = CrmLookup(phone=PHONE, profile=FANG, fetched_at=T0)
    kept = await crm_answers.record_lookup(store.database, ticket.id, lookup, naming=naming, at=T0)
    assert kept.changed and not kept.renamed
    assert (kept.ticket.subject, kept.ticket.caller_name) == ("Router reboots", "WIRELESS CALLER")


async def test_a_ticket_without_an_answer_has_none(store):
    ticket = await a_ticket(store)
    assert (await store.ticket_detail(ticket.number))["crm"] is None
