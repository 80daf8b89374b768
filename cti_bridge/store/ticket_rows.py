"""Tickets and their history as rows, for every store module: the columns a Ticket is read
from, rows into dataclasses, JSON for stored values, and appending history events."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import date, time
from typing import Any, NamedTuple

from cti_bridge.store.database import Session
from cti_bridge.tickets.model import Ticket, TicketStatus, TicketSummary

TICKET_COLUMNS = ", ".join(field.name for field in dataclasses.fields(Ticket))


def columns_of(row: sqlite3.Row, kind: type[Any]) -> dict[str, Any]:
    """The row's columns that the dataclass `kind` has fields for (queries name them alike)."""
    return {field.name: row[field.name] for field in dataclasses.fields(kind)}


def ticket_of(row: sqlite3.Row) -> Ticket:
    return Ticket(**{**columns_of(row, Ticket), "status": TicketStatus(row["status"])})


def summary_of(row: sqlite3.Row) -> TicketSummary:
    return TicketSummary(**{**columns_of(row, TicketSummary), "status": TicketStatus(row["status"])})


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_value)


def _json_value(value: Any) -> Any:
    """Typed field values (dates, read-only mappings) as JSON; the schema types them again on
    the way back in."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, date | time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class HistoryRow(NamedTuple):
    """One event for a ticket's history; a status change names both ends."""

    kind: str
    actor: str
    data: Mapping[str, Any]
    from_status: str | None = None
    to_status: str | None = None
    reason: str | None = None


async def append_history(tx: Session, ticket_id: int, at: float, events: Sequence[HistoryRow]) -> list[int]:
    """Append events to a ticket's history in one statement; their ids, in order."""
    written = await tx.fetchall(
        "INSERT INTO ticket_events (ticket_id, at, kind, actor, data, from_status, to_status, reason)"
        " VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(events)) + " RETURNING id",
        [
            value
            for e in events
            for value in (
                ticket_id,
                at,
                str(e.kind),
                e.actor,
                to_json(e.data),
                str(e.from_status) if e.from_status else None,
                str(e.to_status) if e.to_status else None,
                e.reason,
            )
        ],
    )
    return [row["id"] for row in written]
