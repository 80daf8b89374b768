"""What the HTTP API reads, always through a user's scope: lists of tickets and calls,
customers, and which ticket a recording or attachment belongs to.

A scope is None (supervisors, admins: everything) or the agents whose tickets a user may
see (an agent's team, themself included). An agent also sees a ticket whose call rang their
own phone: the screen-pop shows it before anyone is assigned.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

from cti_bridge.store.database import Database


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose tickets: `agents` None means all of them."""

    agents: frozenset[str] | None
    me: str | None = None  # the agent asking, whose rung calls they see too

    @classmethod
    def everything(cls) -> Scope:
        return cls(None)

    def where(self, alias: str = "t") -> tuple[str, tuple[Any, ...]]:
        """An SQL condition on the tickets table aliased `alias`, and its parameters."""
        if self.agents is None:
            return "1", ()
        agents = tuple(sorted(self.agents))
        marks = ", ".join("?" * len(agents))
        return (
            f"({alias}.assignee IN ({marks}) OR EXISTS (SELECT 1 FROM calls sc"
            f" WHERE sc.ticket_id = {alias}.id AND (sc.agent_id IN ({marks})"
            " OR instr(',' || sc.rang_agents || ',', ?) > 0)))",
            (*agents, *agents, f",{self.me or ''},"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketFilter:
    status: Collection[str] = ()
    priority: Collection[str] = ()
    assignee: str | None = None
    unassigned: bool = False
    category: str | None = None  # a path prefix: 技术故障 matches 技术故障/网络问题/...
    queue: str | None = None
    customer_id: int | None = None
    created_from: float | None = None
    created_until: float | None = None
    numbers: Collection[str] | None = None  # only these (search hits)


_LIST_COLUMNS = (
    "t.id, t.number, t.status, t.priority, t.category, t.subject, t.assignee, t.caller_number,"
    " t.caller_name, t.queue, t.callback_reason, t.customer_id, cu.name AS customer, cu.vip,"
    " t.created_at, t.updated_at, (SELECT COUNT(*) FROM calls c WHERE c.ticket_id = t.id) AS calls"
)


async def list_tickets(
    db: Database, scope: Scope, where: TicketFilter, *, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Tickets matching the filter that the scope may see, newest first, and how many match."""
    conditions, params = [], []
    visible, visible_params = scope.where()
    conditions.append(visible)
    params.extend(visible_params)
    if where.status:
        conditions.append(f"t.status IN ({', '.join('?' * len(where.status))})")
        params.extend(where.status)
    if where.priority:
        conditions.append(f"t.priority IN ({', '.join('?' * len(where.priority))})")
        params.extend(where.priority)
    if where.assignee is not None:
        conditions.append("t.assignee = ?")
        params.append(where.assignee)
    if where.unassigned:
        conditions.append("t.assignee IS NULL")
    if where.category:
        conditions.append("(t.category = ? OR t.category LIKE ? ESCAPE '\\')")
        params.extend((where.category, _like_prefix(where.category) + "/%"))
    if where.queue is not None:
        conditions.append("t.queue = ?")
        params.append(where.queue)
    if where.customer_id is not None:
        conditions.append("t.customer_id = ?")
        params.append(where.customer_id)
    if where.created_from is not None:
        conditions.append("t.created_at >= ?")
        params.append(where.created_from)
    if where.created_until is not None:
        conditions.append("t.created_at < ?")
        params.append(where.created_until)
    if where.numbers is not None:
        numbers = tuple(where.numbers) or ("",)
        conditions.append(f"t.number IN ({', '.join('?' * len(numbers))})")
        params.extend(numbers)
    clause = " AND ".join(conditions)

    async def read(tx: Any) -> tuple[list[dict[str, Any]], int]:
        rows = await tx.fetchall(
            f"SELECT {_LIST_COLUMNS} FROM tickets t LEFT JOIN customers cu ON cu.id = t.customer_id"
            f" WHERE {clause} ORDER BY t.id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        total = await tx.fetchone(f"SELECT COUNT(*) FROM tickets t WHERE {clause}", params)
        return [_ticket_row(r) for r in rows], total[0]

    return await db.read(read)


class VisibleTicket(NamedTuple):
    id: int
    status: str


async def visible_ticket(db: Database, scope: Scope, number: str) -> VisibleTicket | None:
    """The ticket's id and status, if it exists and the scope may see it."""
    visible, params = scope.where()
    row = await db.fetchone(
        f"SELECT t.id, t.status FROM tickets t WHERE t.number = ? AND {visible}", (number, *params)
    )
    return VisibleTicket(row["id"], row["status"]) if row is not None else None


async def recording_owner(db: Database, scope: Scope, recording_id: int) -> dict[str, Any] | None:
    """A recording the scope may see (through its ticket), with its file and ticket number."""
    visible, params = scope.where()
    row = await db.fetchone(
        "SELECT r.id, r.ticket_id, t.number, r.local_path, r.status, r.size_bytes, r.duration_seconds,"
        " r.error FROM recordings r JOIN tickets t ON t.id = r.ticket_id"
        f" WHERE r.id = ? AND {visible}",
        (recording_id, *params),
    )
    return dict(row) if row is not None else None


async def transcript_of(db: Database, recording_id: int) -> sqlite3.Row | None:
    return await db.fetchone(
        "SELECT recording_id, language, text, words, duration_seconds, created_at FROM transcripts"
        " WHERE recording_id = ? ORDER BY id DESC LIMIT 1",
        (recording_id,),
    )


async def attachment_owner(db: Database, scope: Scope, attachment_id: int) -> dict[str, Any] | None:
    visible, params = scope.where()
    row = await db.fetchone(
        "SELECT a.*, t.number FROM attachments a JOIN tickets t ON t.id = a.ticket_id"
        f" WHERE a.id = ? AND {visible}",
        (attachment_id, *params),
    )
    return dict(row) if row is not None else None


async def customer(db: Database, scope: Scope, customer_id: int) -> dict[str, Any] | None:
    """A customer, if the scope sees everything or one of their tickets."""
    row = await db.fetchone("SELECT * FROM customers WHERE id = ?", (customer_id,))
    if row is None:
        return None
    if scope.agents is not None:
        visible, params = scope.where()
        seen = await db.fetchone(
            f"SELECT 1 FROM tickets t WHERE t.customer_id = ? AND {visible} LIMIT 1", (customer_id, *params)
        )
        if seen is None:
            return None
    phones = await db.fetchall("SELECT phone FROM customer_phones WHERE customer_id = ?", (customer_id,))
    return {**dict(row), "vip": bool(row["vip"]), "phones": [p["phone"] for p in phones]}


async def ticket_subjects(db: Database, ids: list[int]) -> dict[int, str]:
    """Ticket id -> subject, for the ids given (a list page's worth)."""
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    rows = await db.fetchall(f"SELECT id, subject FROM tickets WHERE id IN ({marks})", ids)
    return {r["id"]: r["subject"] for r in rows}


async def list_calls(
    db: Database, scope: Scope, *, since: float | None, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """Calls with their ticket's number, newest first."""
    visible, params = scope.where()
    when, when_params = ("AND c.started_at >= ?", (since,)) if since is not None else ("", ())
    rows = await db.fetchall(
        "SELECT c.id, c.pbx, c.linkedid, c.direction, c.caller_number, c.caller_name, c.did, c.queue,"
        " c.agent_id, c.started_at, c.answered_at, c.ended_at, c.ring_seconds, c.talk_seconds,"
        " c.outcome, t.number AS ticket FROM calls c JOIN tickets t ON t.id = c.ticket_id"
        f" WHERE {visible} {when} ORDER BY c.id DESC LIMIT ? OFFSET ?",
        (*params, *when_params, limit, offset),
    )
    return [dict(r) for r in rows]


def _ticket_row(row: sqlite3.Row) -> dict[str, Any]:
    found = dict(row)
    found["vip"] = bool(found["vip"])
    return found


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
