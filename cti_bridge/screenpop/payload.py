"""The JSON messages cti-bridge publishes: one module builds them all.

`ScreenPop` goes to `{prefix}/agents/{agent_id}/screenpop`; `TicketNotice` to
`{prefix}/tickets/{ticket_number}`; `SlaNotice` to `{prefix}/tickets/{ticket_number}/sla`;
`AgentNotification` to `{prefix}/agents/{agent_id}/notifications`; `CallbackNotice` to
`{prefix}/agents/{agent_id}/callbacks`. Their JSON Schemas are in
cti_bridge/screenpop/*.schema.json (kept in step by a test).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cti_bridge.calls.model import Call, Transfer
from cti_bridge.calls.presence import AgentState
from cti_bridge.screenpop.outputs import OutboundMessage
from cti_bridge.tickets.crm import CallerCrm, CrmLookup, CrmStatus
from cti_bridge.tickets.dispatch import CallbackReason
from cti_bridge.tickets.model import CallerHistory, Customer, Ticket, TicketSummary

SCHEMA_VERSION = 1


def iso(epoch: float | None) -> str | None:
    """Seconds since the epoch -> ISO 8601 UTC with milliseconds."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomerInfo(_Payload):
    id: int
    name: str
    company: str | None
    email: str | None
    tier: str
    vip: bool
    phones: list[str]
    notes: str | None

    @classmethod
    def of(cls, customer: Customer) -> CustomerInfo:
        return cls(
            id=customer.id,
            name=customer.name,
            company=customer.company,
            email=customer.email,
            tier=customer.tier,
            vip=customer.vip,
            phones=list(customer.phones),
            notes=customer.notes,
        )


class TicketRef(_Payload):
    number: str = Field(description="Ticket number, e.g. T-000123.")
    status: str = Field(description="new | assigned | in_progress | waiting | resolved | closed")
    priority: str = Field(description="P1 (most urgent) .. P4")
    category: str | None = Field(description="Category path, levels separated by /.")
    subject: str
    assignee: str | None = Field(description="Agent id owning the ticket.")
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, ticket: TicketSummary) -> TicketRef:
        return cls(
            number=ticket.number,
            status=str(ticket.status),
            priority=ticket.priority,
            category=ticket.category,
            subject=ticket.subject,
            assignee=ticket.assignee,
            created_at=iso(ticket.created_at) or "",
            updated_at=iso(ticket.updated_at) or "",
        )


class TicketInfo(TicketRef):
    description: str
    caller_number: str | None
    caller_name: str | None
    did: str | None
    queue: str | None
    rule: str | None = Field(description="Name of the prefill rule that set category/priority.")

    @classmethod
    def of(cls, ticket: Ticket) -> TicketInfo:  # type: ignore[override]
        return cls(
            **TicketRef.of(ticket).model_dump(),
            description=ticket.description,
            caller_number=ticket.caller_number,
            caller_name=ticket.caller_name,
            did=ticket.did,
            queue=ticket.queue,
            rule=ticket.rule,
        )


class CallInfo(_Payload):
    pbx: str
    linkedid: str = Field(description="Asterisk Linkedid: the call's id on that PBX.")
    direction: str
    caller_number: str | None = Field(description="E.164 when it could be normalised.")
    caller_name: str | None
    did: str | None
    queue: str | None
    started_at: str
    answered_at: str | None

    @classmethod
    def of(cls, call: Call, caller_e164: str | None) -> CallInfo:
        return cls(
            pbx=call.key.pbx,
            linkedid=call.key.linkedid,
            direction=str(call.direction),
            caller_number=caller_e164 or call.caller_number,
            caller_name=call.caller_name,
            did=call.did,
            queue=call.queue,
            started_at=iso(call.started_at) or "",
            answered_at=iso(call.answered_at),
        )


class CrmOrderInfo(_Payload):
    id: str | None
    date: str | None = Field(description="As the CRM wrote it.")
    total: str | None = Field(description="As the CRM wrote it (amount, maybe with a currency).")
    status: str | None
    summary: str | None = Field(description="What was bought.")


class CrmInfo(_Payload):
    """What the site's CRM returned for the caller (the fields `crm.fields` maps; others null)."""

    name: str | None
    company: str | None
    email: str | None
    tier: str | None
    vip: bool | None = Field(description="null: the CRM did not say.")
    external_id: str | None = Field(description="The caller's id in the CRM.")
    notes: str | None
    orders: list[CrmOrderInfo] = Field(description="Recent orders, as many as `crm.fields.orders.limit`.")
    fetched_at: str = Field(description="When the CRM answered (a cached answer keeps its time).")

    @classmethod
    def of(cls, lookup: CrmLookup | None) -> CrmInfo | None:
        profile = lookup.profile if lookup is not None else None
        if lookup is None or profile is None:
            return None
        return cls(
            name=profile.name,
            company=profile.company,
            email=profile.email,
            tier=profile.tier,
            vip=profile.vip,
            external_id=profile.external_id,
            notes=profile.notes,
            orders=[
                CrmOrderInfo(id=o.id, date=o.date, total=o.total, status=o.status, summary=o.summary)
                for o in profile.orders
            ],
            fetched_at=iso(lookup.fetched_at) or "",
        )


class TransferInfo(_Payload):
    kind: str = Field(description="blind | attended | redirect")
    at: str
    from_agent: str | None
    to_agent: str | None = Field(description="Who took the caller; None until someone did.")
    to_queue: str | None
    target: str | None = Field(description="What the PBX named: exten@context or a channel.")

    @classmethod
    def of(cls, transfer: Transfer) -> TransferInfo:
        return cls(
            kind=str(transfer.kind),
            at=iso(transfer.at) or "",
            from_agent=transfer.from_agent,
            to_agent=transfer.to_agent,
            to_queue=transfer.to_queue,
            target=transfer.target,
        )


PopEvent = Literal["ringing", "dialing", "answered", "cancelled", "enriched"]


class CallerInfo(_Payload):
    """Who is calling, as far as cti-bridge knows: what a pop shows first."""

    number: str | None = Field(description="E.164 when it could be normalised; None when withheld.")
    name: str | None = Field(
        description="The best name known: the customer record's, else the caller ID name "
        "(CallerIDName), else the one the caller's ticket was opened with; None when none is known."
    )
    name_from: Literal["customer", "caller_id", "ticket"] | None = Field(
        description="Where `name` comes from."
    )

    @classmethod
    def of(cls, call: Call, caller_e164: str | None, ticket: Ticket, customer: Customer | None) -> CallerInfo:
        # A repeat call may come without a caller ID name the first one had: the ticket keeps it.
        for name, source in (
            (customer.name if customer else None, "customer"),
            (call.caller_name, "caller_id"),
            (ticket.caller_name, "ticket"),
        ):
            if name and name.strip():
                return cls(number=caller_e164 or call.caller_number, name=name.strip(), name_from=source)
        return cls(number=caller_e164 or call.caller_number, name=None, name_from=None)


class ScreenPop(_Payload):
    """Sent to one agent when their phone rings for a call (`ringing`), when they dial a customer
    (`dialing`), when they answer or the customer does (`answered`), when a pop is withdrawn
    (`cancelled`: their phone stopped ringing, or the caller was transferred away from them), and
    once more (`enriched`) when the CRM's answer comes after the pop went out without it."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event: PopEvent = Field(
        description="enriched: the same call's pop again, now with the CRM's answer (`crm_status`)."
    )
    reason: str | None = Field(
        None,
        description="cancelled: no_answer | caller_hung_up | answered_elsewhere | transferred | "
        "consultation_ended.",
    )
    agent_id: str
    event_at: str = Field(description="When the PBX reported the ring/answer.")
    sent_at: str = Field(description="When cti-bridge published this message.")
    ticket_created: bool = Field(description="True: a new ticket; False: the caller's open one.")
    caller: CallerInfo
    call: CallInfo
    ticket: TicketInfo
    customer: CustomerInfo | None = Field(description="None when the number is not a customer.")
    open_tickets: list[TicketRef] = Field(description="The caller's open tickets, newest first.")
    recent_tickets: list[TicketRef] = Field(description="The caller's last N tickets.")
    transfers: list[TransferInfo] = Field(
        default_factory=list, description="The call's transfers so far, oldest first."
    )
    crm_status: CrmStatus = Field(
        CrmStatus.OFF,
        description="off: no CRM lookup (none configured, or no number); pending: asked, an `enriched` "
        "pop follows; found / not_found: the CRM's answer; unavailable: the CRM failed or timed out.",
    )
    crm: CrmInfo | None = Field(None, description="What the CRM returned, when crm_status is found.")


class TicketNotice(_Payload):
    """Something happened to a ticket: created, call attached/answered/ended, recording, transcript,
    csat, caller_enriched (the CRM's answer: `data.crm_status`, `data.crm` as in a ScreenPop)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event: str
    ticket: TicketRef
    at: str
    data: dict[str, Any] = Field(default_factory=dict)


class CallbackNotice(_Payload):
    """Sent to the agent given a callback ticket: a customer whose call nobody answered."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event: Literal["callback"] = "callback"
    agent_id: str
    reason: CallbackReason = Field(
        description="missed: agents rang, nobody answered; abandoned: the caller hung up while "
        "queued; after_hours: came in outside business hours and no agent answered."
    )
    assigned: bool = Field(
        description="True: dispatch gave the ticket to this agent now; False: it was theirs already."
    )
    explanation: str = Field(description="Why this agent, as written in the ticket's history.")
    dispatched_at: str
    sent_at: str = Field(description="When cti-bridge published this message.")
    caller: CallerInfo = Field(description="Whom to call back.")
    call: CallInfo = Field(description="The call to return.")
    ticket: TicketInfo
    customer: CustomerInfo | None = Field(description="None when the number is not a customer.")


def screen_pop(
    *,
    event: PopEvent,
    agent_id: str,
    call: Call,
    caller_e164: str | None,
    ticket: Ticket,
    history: CallerHistory,
    created: bool,
    event_at: float,
    now: float,
    reason: str | None = None,
    crm: CallerCrm | None = None,
) -> ScreenPop:
    """`crm`: the call's CRM lookup as it stands; None: no lookup (no CRM configured)."""
    return ScreenPop(
        event=event,
        reason=reason,
        agent_id=agent_id,
        event_at=iso(event_at) or "",
        sent_at=iso(now) or "",
        ticket_created=created,
        caller=CallerInfo.of(call, caller_e164, ticket, history.customer),
        call=CallInfo.of(call, caller_e164),
        ticket=TicketInfo.of(ticket),
        customer=CustomerInfo.of(history.customer) if history.customer else None,
        open_tickets=[TicketRef.of(t) for t in history.open_tickets],
        recent_tickets=[TicketRef.of(t) for t in history.recent_tickets],
        transfers=[TransferInfo.of(t) for t in call.transfers],
        crm_status=crm.status if crm is not None else CrmStatus.OFF,
        crm=CrmInfo.of(crm.lookup) if crm is not None else None,
    )


def callback_message(
    *,
    agent_id: str,
    reason: CallbackReason,
    assigned: bool,
    explanation: str,
    call: Call,
    caller_e164: str | None,
    ticket: Ticket,
    customer: Customer | None,
    dispatched_at: float,
    now: float,
) -> OutboundMessage:
    """A CallbackNotice on its topic, `agents/{agent_id}/callbacks`, ready to publish."""
    notice = CallbackNotice(
        agent_id=agent_id,
        reason=reason,
        assigned=assigned,
        explanation=explanation,
        dispatched_at=iso(dispatched_at) or "",
        sent_at=iso(now) or "",
        caller=CallerInfo.of(call, caller_e164, ticket, customer),
        call=CallInfo.of(call, caller_e164),
        ticket=TicketInfo.of(ticket),
        customer=CustomerInfo.of(customer) if customer else None,
    )
    return OutboundMessage(f"agents/{agent_id}/callbacks", notice.model_dump_json().encode())


def ticket_notice(event: str, ticket: TicketSummary, at: float, **data: Any) -> TicketNotice:
    return TicketNotice(event=event, ticket=TicketRef.of(ticket), at=iso(at) or "", data=data)


def ticket_message(event: str, ticket: TicketSummary, at: float, **data: Any) -> OutboundMessage:
    """A TicketNotice on its topic, `tickets/{number}`, ready to publish."""
    notice = ticket_notice(event, ticket, at, **data)
    return OutboundMessage(f"tickets/{ticket.number}", notice.model_dump_json().encode())


class QueueMembershipInfo(_Payload):
    queue: str
    paused: bool
    reason: str = Field(description="Why paused, as the agent's phone or the PBX said.")


class AgentStateNotice(_Payload):
    """An agent logged in or out of a queue, or paused or unpaused (`agents/{id}/state`, retained)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    agent_id: str
    status: Literal["logged_in", "paused", "logged_out"]
    queues: list[QueueMembershipInfo] = Field(description="The queues the agent is a member of now.")
    since: str = Field(description="When the status last changed.")
    sent_at: str


def agent_state_message(state: AgentState, now: float) -> OutboundMessage:
    """An AgentStateNotice on `agents/{agent_id}/state`, retained: a page or client that
    subscribes later learns each agent's state at once."""
    notice = AgentStateNotice(
        agent_id=state.agent_id,
        status=state.status.value,
        queues=[QueueMembershipInfo(queue=m.queue, paused=m.paused, reason=m.reason) for m in state.queues],
        since=iso(state.since) or "",
        sent_at=iso(now) or "",
    )
    return OutboundMessage(f"agents/{state.agent_id}/state", notice.model_dump_json().encode(), retain=True)


class SlaNotice(_Payload):
    """An SLA warning or breach fired for a ticket (once per ticket, target and kind)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event: Literal["sla_warning", "sla_breached"]
    ticket: TicketRef = Field(description="The ticket after the escalation (raised priority, new assignee).")
    target: Literal["first_response", "resolution"]
    reached_at: str = Field(description="When the warning fraction or the allowed time was used up.")
    due_at: str | None = Field(description="When the allowed time is (or was) used up.")
    fired_at: str = Field(description="When cti-bridge acted; later than reached_at after a restart.")
    priority_from: str | None = Field(None, description="Breach: the priority before the escalation.")
    priority_to: str | None = Field(None, description="Breach: the priority after it (may be the same).")
    reassigned_to: str | None = Field(None, description="Breach: the supervisor the ticket went to, if any.")
    notify: list[str] = Field(description="User ids notified on agents/<id>/notifications.")
    reason: str


class AgentNotification(_Payload):
    """Something one user should know: an SLA warning or breach, a mention, a callback to make.

    Delivered at least once: a client may see the same `id` again after a daemon restart.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    id: int = Field(description="The notification's id; repeats of a delivery carry the same one.")
    recipient: str
    kind: str = Field(description="sla_warning | sla_breach | mention | callback_assigned | ...")
    ticket_number: str | None
    title: str
    body: str
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: str


def sla_message(
    *,
    event: str,
    ticket: TicketSummary,
    target: str,
    reached_at: float,
    due_at: float | None,
    fired_at: float,
    notify: list[str],
    reason: str,
    priority_from: str | None = None,
    priority_to: str | None = None,
    reassigned_to: str | None = None,
) -> OutboundMessage:
    """An SlaNotice on its topic, `tickets/{number}/sla`, ready to publish."""
    notice = SlaNotice.model_validate(  # validated: event and target are checked against the model
        {
            "event": event,
            "ticket": TicketRef.of(ticket),
            "target": target,
            "reached_at": iso(reached_at) or "",
            "due_at": iso(due_at),
            "fired_at": iso(fired_at) or "",
            "priority_from": priority_from,
            "priority_to": priority_to,
            "reassigned_to": reassigned_to,
            "notify": notify,
            "reason": reason,
        }
    )
    return OutboundMessage(f"tickets/{ticket.number}/sla", notice.model_dump_json().encode())


def notification_message(
    *,
    id: int,
    recipient: str,
    kind: str,
    ticket_number: str | None,
    title: str,
    body: str,
    data: dict[str, Any],
    created_at: float,
) -> OutboundMessage:
    """An AgentNotification on its topic, `agents/{recipient}/notifications`, ready to publish."""
    notification = AgentNotification(
        id=id,
        recipient=recipient,
        kind=kind,
        ticket_number=ticket_number,
        title=title,
        body=body,
        data=data,
        created_at=iso(created_at) or "",
    )
    return OutboundMessage(f"agents/{recipient}/notifications", notification.model_dump_json().encode())
