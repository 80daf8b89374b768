"""Prefill: what a new call's ticket says before anyone types (category, priority, subject)."""

from __future__ import annotations

import time

from cti_bridge.calls.model import Call
from cti_bridge.config.model import RuleMatch, TicketConfig
from cti_bridge.tickets.model import Customer, NewTicket, TicketStatus, most_urgent


def rule_matches(when: RuleMatch, *, pbx: str, queue: str | None, did: str | None) -> bool:
    """All given conditions hold; a condition is a list of accepted values."""
    return (
        (when.pbx is None or pbx in when.pbx)
        and (when.queue is None or queue in when.queue)
        and (when.did is None or did in when.did)
    )


def prefill(
    call: Call, caller_e164: str | None, customer: Customer | None, config: TicketConfig
) -> NewTicket:
    """Decide the fields of the ticket for a new inbound call.

    The first matching rule sets category and priority; a VIP customer never gets
    less than `vip_priority`.
    """
    category, priority, rule_name = config.default_category, config.default_priority, None
    for rule in config.rules:
        if rule_matches(rule.when, pbx=call.key.pbx, queue=call.queue, did=call.did):
            category = rule.category or category
            priority = rule.priority or priority
            rule_name = rule.name
            break
    if customer is not None and customer.vip:
        priority = most_urgent(priority, config.vip_priority)
    who = (customer.name if customer else None) or call.caller_name or caller_e164
    who = who or call.caller_number or "unknown caller"
    return NewTicket(
        status=TicketStatus.NEW,
        priority=priority,
        category=category,
        rule=rule_name,
        subject=f"Phone call from {who}",
        description=_description(call, caller_e164, customer),
        customer_id=customer.id if customer else None,
        caller_number=caller_e164 or call.caller_number,
        caller_name=call.caller_name,
        did=call.did,
        queue=call.queue,
    )


def _description(call: Call, caller_e164: str | None, customer: Customer | None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(call.started_at))
    parts = [f"Inbound call at {when} from {caller_e164 or call.caller_number or 'an unknown number'}"]
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
