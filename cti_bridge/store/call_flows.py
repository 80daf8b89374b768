"""The call flows beyond one answer: transfers, callbacks made, what the dialplan reported, and
finding the ticket an outbound call belongs to."""

from __future__ import annotations

from typing import Any

from cti_bridge.calls.model import Call, Transfer
from cti_bridge.store import notifications
from cti_bridge.store.database import Database, Session
from cti_bridge.store.ticket_rows import TICKET_COLUMNS, HistoryRow, append_history, ticket_of
from cti_bridge.tickets.model import OPEN_STATUSES, Ticket

_OPEN = tuple(str(s) for s in OPEN_STATUSES)
_OPEN_SQL = ",".join("?" * len(_OPEN))


async def open_ticket_by_number(db: Database, number: str) -> Ticket | None:
    """The ticket a click-to-dial (or the dialplan) named for a call, while it is open."""
    row = await db.fetchone(
        f"SELECT {TICKET_COLUMNS} FROM tickets WHERE number = ? AND status IN ({_OPEN_SQL})",
        (number, *_OPEN),
    )
    return ticket_of(row) if row else None


async def open_callback_ticket(db: Database, customer_id: int | None, phone: str | None) -> Ticket | None:
    """The customer's (else the number's) newest open callback ticket, whatever its age."""
    if customer_id is not None:
        where, params = "customer_id = ?", (customer_id,)
    elif phone is not None:
        where, params = "caller_number = ?", (phone,)
    else:
        return None
    row = await db.fetchone(
        f"SELECT {TICKET_COLUMNS} FROM tickets WHERE {where} AND callback_reason IS NOT NULL"
        f" AND status IN ({_OPEN_SQL}) ORDER BY created_at DESC LIMIT 1",
        (*params, *_OPEN),
    )
    return ticket_of(row) if row else None


async def record_transfer(db: Database, call: Call, transfer: Transfer) -> Ticket | None:
    """A 'transferred' event in the call's ticket's history, and the ticket's queue moves with
    the caller. None when the call has no ticket."""

    async def write(tx: Session) -> Ticket | None:
        found = await tx.fetchone(
            "UPDATE calls SET transfers = transfers + 1, queue = COALESCE(?, queue)"
            " WHERE pbx = ? AND linkedid = ? RETURNING ticket_id",
            (transfer.to_queue, call.key.pbx, call.key.linkedid),
        )
        if found is None:
            return None
        row = await tx.fetchone(
            "UPDATE tickets SET queue = COALESCE(?, queue), updated_at = MAX(updated_at, ?)"
            f" WHERE id = ? RETURNING {TICKET_COLUMNS}",
            (transfer.to_queue, transfer.at, found["ticket_id"]),
        )
        assert row is not None
        data: dict[str, Any] = {
            "call": str(call.key),
            "kind": str(transfer.kind),
            "from": transfer.from_agent,
            "to": transfer.to_agent,
            "queue": transfer.to_queue,
            "target": transfer.target,
        }
        actor = transfer.from_agent or "system"
        await append_history(tx, found["ticket_id"], transfer.at, [HistoryRow("transferred", actor, data)])
        return ticket_of(row)

    return await db.transaction(write)


async def hand_over(
    tx: Session, ticket_id: int, number: str, call: Call, agent_id: str, at: float
) -> str | None:
    """A transferred caller is now with `agent_id`: the ticket goes to them if it was the
    transferring agent's. Returns the agent it left, who is told (a notification)."""
    transfer = call.transfers[-1] if call.transfers else None
    if transfer is None or transfer.to_agent != agent_id or transfer.from_agent in (None, agent_id):
        return None
    moved = await tx.fetchone(
        "UPDATE tickets SET assignee = ?, updated_at = MAX(updated_at, ?)"
        " WHERE id = ? AND assignee = ? RETURNING status",
        (agent_id, at, ticket_id, transfer.from_agent),
    )
    if moved is None:
        return None  # someone else's ticket (a team queue, a supervisor): it stays theirs
    why = f"took the call transferred ({transfer.kind}) by {transfer.from_agent}"
    await append_history(
        tx,
        ticket_id,
        at,
        [HistoryRow("assigned", "system", {"to": agent_id, "from": transfer.from_agent, "why": why})],
    )
    await notifications.queue_notifications(
        tx,
        [transfer.from_agent],
        kind="ticket_transferred",
        ticket_id=ticket_id,
        title=f"{number} 已转给 {agent_id} / {number} went to {agent_id}",
        body=f"The call was transferred ({transfer.kind}); the ticket is now {agent_id}'s.",
        data={"ticket": number, "to": agent_id, "kind": str(transfer.kind)},
        at=at,
    )
    return transfer.from_agent


async def note_callback_made(tx: Session, ticket_id: int, call: Call, at: float) -> None:
    """An agent's call to a callback ticket's customer: the callback is made, answered or not."""
    row = await tx.fetchone(
        "SELECT callback_reason, callback_made_at, created_at FROM tickets WHERE id = ?", (ticket_id,)
    )
    if row is None or row["callback_reason"] is None:
        return
    missed = await tx.fetchone(
        "SELECT MAX(ended_at) AS at FROM calls WHERE ticket_id = ? AND outcome IN ('missed', 'abandoned')"
        " AND ended_at <= ?",
        (ticket_id, call.started_at),
    )
    since = (missed["at"] if missed and missed["at"] is not None else None) or row["created_at"]
    data = {
        "call": str(call.key),
        "answered": call.answered_at is not None,
        "agent": call.placed_by or call.agent_id,
        "after_seconds": round(max(0.0, call.started_at - since), 3),
        "outcome": str(call.outcome),
    }
    await tx.execute(
        "UPDATE tickets SET callback_made_at = COALESCE(callback_made_at, ?) WHERE id = ?",
        (call.started_at, ticket_id),
    )
    await append_history(
        tx, ticket_id, at, [HistoryRow("callback_made", str(data["agent"] or "system"), data)]
    )
