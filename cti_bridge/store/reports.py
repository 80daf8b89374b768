"""Reads for reports: the tickets created in a period with their whole histories, in two queries."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from types import MappingProxyType

from cti_bridge.store.database import Database
from cti_bridge.tickets.kpi import HistoryEntry, TicketHistory
from cti_bridge.tickets.model import TicketStatus


async def ticket_histories(db: Database, since: float, until: float) -> list[TicketHistory]:
    """Tickets created in [since, until), oldest first, each with every event of its history.

    Two statements whatever the number of tickets: the tickets, then all their events in
    ticket and time order (through the ticket_events (ticket_id, at) index).
    """
    tickets = await db.fetchall(
        "SELECT id, number, status, priority, category, queue, assignee, created_at,"
        " json_extract(fields, '$.ivr_path') AS ivr_path FROM tickets"
        " WHERE created_at >= ? AND created_at < ? ORDER BY created_at, id",
        (since, until),
    )
    rows = await db.fetchall(
        "SELECT e.ticket_id, e.at, e.kind, e.actor, e.data, e.from_status, e.to_status FROM ticket_events e"
        " JOIN tickets t ON t.id = e.ticket_id WHERE t.created_at >= ? AND t.created_at < ?"
        " ORDER BY e.ticket_id, e.at, e.id",
        (since, until),
    )
    return histories(tickets, rows)


def histories(tickets: Iterable[sqlite3.Row], event_rows: Iterable[sqlite3.Row]) -> list[TicketHistory]:
    """Ticket rows (id, number, status, priority, category, queue, assignee, created_at) with
    their events (rows of ticket_id, at, kind, actor, data, from_status, to_status, in order)."""
    events: dict[int, list[HistoryEntry]] = {}
    for row in event_rows:
        events.setdefault(row["ticket_id"], []).append(
            HistoryEntry(
                at=row["at"],
                kind=row["kind"],
                actor=row["actor"],
                data=MappingProxyType(json.loads(row["data"])),
                from_status=_status(row["from_status"]),
                to_status=_status(row["to_status"]),
            )
        )
    return [
        TicketHistory(
            id=t["id"],
            number=t["number"],
            status=TicketStatus(t["status"]),
            priority=t["priority"],
            category=t["category"],
            queue=t["queue"],
            assignee=t["assignee"],
            created_at=t["created_at"],
            ivr_path=t["ivr_path"] if "ivr_path" in t.keys() else None,  # noqa: SIM118 (sqlite3.Row)
            events=tuple(events.get(t["id"], ())),
        )
        for t in tickets
    ]


def _status(value: str | None) -> TicketStatus | None:
    return TicketStatus(value) if value else None
