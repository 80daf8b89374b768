"""Which tickets take the CRM's name for their caller."""

import dataclasses

from cti_bridge.tickets.crm import CallerCrm, CrmLookup, CrmProfile, CrmStatus, crm_naming
from cti_bridge.tickets.model import Ticket, TicketStatus


def ticket(**fields) -> Ticket:
    base = dict(
        id=1,
        number="T-000001",
        status=TicketStatus.NEW,
        priority="P3",
        category=None,
        subject="Phone call from WIRELESS CALLER",
        assignee=None,
        created_at=0.0,
        updated_at=0.0,
        rule=None,
        description="",
        channel="phone",
        customer_id=None,
        caller_number="+14155550100",
        caller_name="WIRELESS CALLER",
        did="4001",
        queue=None,
    )
    return Ticket(**(base | fields))


FANG = CrmProfile(name="王芳")


def test_a_ticket_with_its_prefilled_subject_takes_the_name():
    naming = crm_naming(ticket(), FANG)
    assert naming is not None
    assert (naming.caller_name, naming.subject) == ("王芳", "Phone call from 王芳")
    assert naming.replaces_subject == "Phone call from WIRELESS CALLER"
    # Named by the number when the PBX gave no caller name.
    bare = ticket(caller_name=None, subject="Phone call from +14155550100")
    assert crm_naming(bare, FANG).replaces_subject == "Phone call from +14155550100"


def test_a_local_customer_an_edited_subject_or_no_name_keep_the_ticket_as_it_is():
    assert crm_naming(ticket(customer_id=7), FANG) is None
    assert crm_naming(ticket(subject="Router keeps rebooting"), FANG) is None
    assert crm_naming(ticket(), CrmProfile(company="ACME")) is None
    assert crm_naming(ticket(), None) is None
    named = ticket(caller_name="王芳", subject="Phone call from 王芳")
    assert crm_naming(named, FANG) is None  # already so


def test_caller_crm_states():
    found = CrmLookup(phone="+1", profile=FANG, fetched_at=0)
    assert CallerCrm.of(found) == CallerCrm(CrmStatus.FOUND, found)
    unknown = dataclasses.replace(found, profile=None)
    assert CallerCrm.of(unknown).status is CrmStatus.NOT_FOUND
    assert CallerCrm.of(None).status is CrmStatus.UNAVAILABLE and CallerCrm.of(None).final
    assert not CallerCrm(CrmStatus.PENDING).final
