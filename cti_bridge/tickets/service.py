"""Opens (or reuses) the ticket for each call and keeps it in step with the call."""

from __future__ import annotations

from dataclasses import dataclass, replace

from cti_bridge.calls.model import Call, Direction
from cti_bridge.config.model import TicketConfig
from cti_bridge.phone import to_e164
from cti_bridge.tickets.fields import FieldSchema
from cti_bridge.tickets.model import CallerHistory, Ticket, TicketStatus
from cti_bridge.tickets.ports import TicketRepository
from cti_bridge.tickets.prefill import prefill


@dataclass(frozen=True, slots=True)
class TicketForCall:
    ticket: Ticket
    history: CallerHistory
    caller_e164: str | None
    created: bool  # a new ticket (else the call joined an existing one)
    attached: bool  # this call was newly recorded on the ticket


class TicketService:
    def __init__(self, repository: TicketRepository, config: TicketConfig, default_region: str) -> None:
        self._repository = repository
        self._config = config
        self._region = default_region
        # What the dialplan reports is typed by the schema before it is stored: a value that
        # does not fit (a bad e-mail, say) is dropped, not kept to fail the ticket's next edit.
        self._schema = FieldSchema.from_config(config, phone_region=default_region)

    def tracks(self, call: Call) -> bool:
        """Whether the call gets a ticket: every inbound call; outbound ones unless
        `tickets.outbound` is none; internal calls (agent to agent) never."""
        if call.direction is Direction.INBOUND:
            return True
        return call.direction is Direction.OUTBOUND and self._config.outbound != "none"

    async def open_for_call(self, call: Call) -> TicketForCall:
        """The ticket for a call: its own if it has one already (reconnect, restart); the one
        the call names (click-to-dial); for an agent's call out, the customer's open callback
        ticket, whatever its age; else the caller's open ticket updated within the reuse
        window; else a new prefilled one.
        """
        repo = self._repository
        caller = to_e164(call.caller_number, self._region)
        customer = await repo.customer_by_phone(caller) if caller else None
        customer_id = customer.id if customer else None
        window = self._config.reuse_open_ticket_within.total_seconds()
        outbound = call.direction is Direction.OUTBOUND
        reusable = await repo.open_ticket_by_number(call.ticket_hint) if call.ticket_hint else None
        if reusable is None and outbound and self._config.outbound == "attach_or_create":
            reusable = await repo.open_callback_ticket(customer_id, caller)
        reuse = not outbound or self._config.outbound == "attach_or_create"
        if reusable is None and reuse and caller is not None:
            reusable = await repo.reusable_ticket(customer_id, caller, call.started_at - window)
        # Both return the call's own ticket, and False, when the call is already recorded.
        if reusable is not None:
            ticket, attached = await repo.attach_call(reusable.id, call, caller, call.started_at)
            created = False
        else:
            new = prefill(call, caller, customer, self._config)
            new = replace(new, fields=dict(self._schema.accepted(new.fields)))
            ticket, created = await repo.create_ticket_for_call(new, call, caller, call.started_at)
            attached = created
        history = await repo.caller_history(customer, caller, self._config.history_size)
        return TicketForCall(ticket, history, caller, created, attached)

    async def agent_answered(self, call: Call, agent_id: str, at: float) -> Ticket | None:
        """Record who answered; the answering agent owns an unassigned ticket.

        Returns:
            The ticket as stored now, or None if this answer was already recorded.
        """
        return await self._repository.record_answer(call, agent_id, at)

    async def agent_rang(self, call: Call) -> None:
        await self._repository.record_rang(call)

    async def call_ended(self, call: Call, at: float) -> bool:
        """Record the end; False if it was recorded already (a resync repeating it)."""
        return await self._repository.record_call_end(call, at)

    async def ticket(self, ticket_id: int) -> Ticket:
        return await self._repository.get_ticket(ticket_id)


def answered_by(ticket: Ticket, agent_id: str, at: float) -> Ticket:
    """The ticket once `agent_id` answered its call: an unassigned ticket becomes theirs.

    The store applies the same rule when it records the answer; the pipeline uses this to
    pop the ticket before that write comes back.
    """
    if ticket.assignee is not None:
        return replace(ticket, updated_at=max(ticket.updated_at, at))
    status = TicketStatus.ASSIGNED if ticket.status is TicketStatus.NEW else ticket.status
    return replace(ticket, assignee=agent_id, status=status, updated_at=max(ticket.updated_at, at))
