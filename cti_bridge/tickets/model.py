"""Tickets, customers and the caller's history, as the core sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class TicketStatus(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING = "waiting"
    RESOLVED = "resolved"
    CLOSED = "closed"


OPEN_STATUSES = frozenset(
    {TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.WAITING}
)
PRIORITIES = ("P1", "P2", "P3", "P4")  # P1 is the most urgent


def most_urgent(*priorities: str) -> str:
    return min(priorities, key=PRIORITIES.index)


@dataclass(frozen=True, slots=True, kw_only=True)
class Customer:
    id: int
    name: str
    company: str | None = None
    email: str | None = None
    tier: str = "standard"
    vip: bool = False
    notes: str | None = None
    phones: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketSummary:
    id: int
    number: str
    status: TicketStatus
    priority: str
    category: str | None
    subject: str
    assignee: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticket(TicketSummary):
    rule: str | None
    description: str
    channel: str
    customer_id: int | None
    caller_number: str | None
    caller_name: str | None
    did: str | None
    queue: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTicket:
    """What prefill decided for a ticket about to be created."""

    status: TicketStatus
    priority: str
    category: str | None
    rule: str | None
    subject: str
    description: str
    customer_id: int | None
    caller_number: str | None
    caller_name: str | None
    did: str | None
    queue: str | None
    fields: dict[str, object] = field(default_factory=dict)  # rules, dialplan: field name -> value
    rule_reason: str | None = None  # why the rules named in `rule` fired, in words
    assignee: str | None = None  # an outbound call's ticket is the calling agent's from the start


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerHistory:
    customer: Customer | None
    open_tickets: tuple[TicketSummary, ...]
    recent_tickets: tuple[TicketSummary, ...]


@dataclass(frozen=True, slots=True)
class TicketNumbering:
    """Ticket numbers like T-000123, derived from the ticket's row id."""

    prefix: str = "T-"
    width: int = 6

    def format(self, ticket_id: int) -> str:
        return f"{self.prefix}{ticket_id:0{self.width}d}"


# What a post-call survey may score a call: 1 (very unhappy) .. 5 (very happy).
CSAT_SCORES = range(1, 6)
