"""Prefill: what a new call's ticket says before anyone types (category, priority, subject)."""

from __future__ import annotations

import time

from cti_bridge.calls.model import Call, Direction
from cti_bridge.config.model import TicketConfig
from cti_bridge.tickets.model import Customer, NewTicket, TicketStatus, most_urgent
from cti_bridge.tickets.rules import CallFacts, decide


def prefill(
    call: Call, caller_e164: str | None, customer: Customer | None, config: TicketConfig
) -> NewTicket:
    """Decide the fields of the ticket for a new inbound call.

    The rules (tickets.rules) set category and priority from the call's routing and IVR
    choices, each from the first matching rule that has it; a VIP customer never gets less
    than `vip_priority`.
    """
    # Rules on texts wait for `rules.revise`: nobody has said or typed anything yet, and the
    # description below is our own summary, where a keyword could be found in a customer's name.
    decision = decide(config.rules, CallFacts.of(call))
    category = decision.category or config.default_category
    priority = decision.priority or config.default_priority
    if customer is not None and customer.vip:
        priority = most_urgent(priority, config.vip_priority)
    who = caller_label(
        customer.name if customer else None, call.caller_name, caller_e164 or call.caller_number
    )
    outbound = call.direction is Direction.OUTBOUND
    fields: dict[str, object] = {**_contact(call, caller_e164, customer), **dialplan_fields(call)}
    fields.update({name: found.value for name, found in decision.fields.items()})
    return NewTicket(
        status=TicketStatus.ASSIGNED if outbound and call.placed_by else TicketStatus.NEW,
        priority=priority,
        category=category,
        rule=decision.rule,
        rule_reason=decision.reason,
        subject=f"Outbound call to {who}" if outbound else call_subject(who),
        description=_description(call, caller_e164, customer),
        customer_id=customer.id if customer else None,
        caller_number=caller_e164 or call.caller_number,
        caller_name=call.caller_name,
        did=call.did,
        queue=call.queue,
        fields=fields,
        assignee=call.placed_by if outbound else None,
    )


def dialplan_fields(call: Call) -> dict[str, str]:
    """The field values the dialplan told of the call: what mapped UserEvents reported, and the
    caller's way through the IVR as one searchable text, `main: 2 > billing: 1` (`ivr_path`)."""
    values = dict(call.reported_fields)
    if call.ivr_choices:
        values["ivr_path"] = " > ".join(f"{menu}: {choice}" for menu, choice in call.ivr_choices)
    return values


def caller_label(customer_name: str | None, caller_name: str | None, number: str | None) -> str:
    """Who a call's ticket says called: the customer, else the PBX's caller name, else the number."""
    return customer_name or caller_name or number or "unknown caller"


def call_subject(who: str) -> str:
    """The subject prefill gives an inbound call's ticket (the CRM's name replaces it only while
    unedited)."""
    return f"Phone call from {who}"


# The standard fields' limits (tickets.fields.STANDARD_FIELDS): a caller ID name is the PBX's
# text, and a long one must not make a ticket the form could not save again.
_NAME_MAX = 100


def _contact(call: Call, caller_e164: str | None, customer: Customer | None) -> dict[str, str]:
    """The ticket form's customer name, contact phone and email, from what the call tells.

    The customer record's name wins over the caller ID's (CallerIDName is whatever the line
    sends); the phone is the number that called, as E.164 (a number that could not be read
    is left out: the phone field holds E.164 only).
    """
    known: dict[str, str] = {}
    name = (customer.name if customer else None) or call.caller_name
    if name and name.strip():
        known["customer_name"] = name.strip()[:_NAME_MAX]
    if caller_e164:
        known["contact_phone"] = caller_e164
    if customer is not None and customer.email:
        known["contact_email"] = customer.email
    return known


def _description(call: Call, caller_e164: str | None, customer: Customer | None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(call.started_at))
    number = caller_e164 or call.caller_number or "an unknown number"
    if call.direction is Direction.OUTBOUND:
        parts = [f"Outbound call at {when} to {number}"]
        if call.placed_by:
            parts.append(f"by {call.placed_by}")
    else:
        parts = [f"Inbound call at {when} from {number}"]
    if call.did:
        parts.append(f"to {call.did}")
    if call.queue:
        parts.append(f"via queue {call.queue}")
    line = " ".join(parts) + "."
    if customer is not None:
        tier = "VIP" if customer.vip else customer.tier
        line += f"\nCustomer: {customer.name}" + (f" ({customer.company})" if customer.company else "")
        line += f", tier {tier}."
    return line
