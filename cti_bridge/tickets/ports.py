"""What the ticket core needs from a store; cti_bridge.store implements it."""

from __future__ import annotations

from typing import Protocol

from cti_bridge.calls.model import Call
from cti_bridge.tickets.model import CallerHistory, Customer, NewTicket, Ticket


class TicketRepository(Protocol):
    async def ticket_for_call(self, pbx: str, linkedid: str) -> Ticket | None: ...

    async def customer_by_phone(self, phone: str) -> Customer | None: ...

    async def caller_history(self, customer: Customer | None, phone: str | None, limit: int) -> CallerHistory:
        """The customer's (else the number's) open tickets and last `limit` tickets."""
        ...

    async def reusable_ticket(
        self, customer_id: int | None, phone: str | None, updated_since: float
    ) -> Ticket | None: ...

    async def create_ticket_for_call(
        self, new: NewTicket, call: Call, caller_e164: str | None, at: float
    ) -> tuple[Ticket, bool]:
        """Insert the ticket and its call atomically; if the call already has a ticket,
        return that one and False instead."""
        ...

    async def attach_call(
        self, ticket_id: int, call: Call, caller_e164: str | None, at: float
    ) -> tuple[Ticket, bool]:
        """Record the call on an existing ticket (idempotent); True if newly attached."""
        ...

    async def record_answer(self, call: Call, agent_id: str, at: float) -> Ticket | None:
        """Store the agent's answer; assign the ticket if unassigned (see service.answered_by).
        The ticket as stored now, or None if this answer was already known."""
        ...

    async def record_call_end(self, call: Call, at: float) -> bool:
        """Record the end once; False if it was recorded already."""
        ...

    async def open_ticket_by_number(self, number: str) -> Ticket | None: ...

    async def open_callback_ticket(self, customer_id: int | None, phone: str | None) -> Ticket | None: ...

    async def record_rang(self, call: Call) -> None: ...

    async def get_ticket(self, ticket_id: int) -> Ticket: ...
