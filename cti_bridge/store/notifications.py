"""The notification outbox: rows queued inside the transaction that caused them, published later."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cti_bridge.store.database import Database, Session


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One queued notification to one user."""

    id: int
    recipient: str
    kind: str
    ticket_id: int | None
    ticket_number: str | None
    title: str
    body: str
    data: Mapping[str, Any]
    created_at: float


async def queue_notifications(
    tx: Session,
    recipients: Iterable[str],
    *,
    kind: str,
    ticket_id: int | None,
    title: str,
    body: str = "",
    data: Mapping[str, Any] | None = None,
    at: float,
) -> None:
    """Queue one notification per recipient, inside the caller's transaction.

    Call it from the `work` of a `Database.transaction`, next to the change the notification
    is about (a mention in a comment, a callback dispatched, an SLA breach): the rows commit or
    roll back with that change, and the daemon's notifier publishes them afterwards, to
    `agents/<recipient>/notifications`.

    Args:
        tx: the session of the transaction making the change.
        recipients: user ids; blanks and repeats are skipped, so role lists can be passed as is.
        kind: what happened, e.g. `sla_warning`, `sla_breach`, `mention`, `callback_assigned`.
        ticket_id: the ticket it is about, if any.
        title: one line for a toast, e.g. "SLA 已超时 / SLA breached: T-000042".
        body: more words (may be empty).
        data: JSON-serialisable details for clients (ticket number, target, ...).
        at: when, in epoch seconds.
    """
    users = [user for user in dict.fromkeys(r.strip() for r in recipients) if user]
    if not users:
        return
    payload = json.dumps(dict(data or {}), ensure_ascii=False)
    await tx.execute(
        "INSERT INTO notifications (recipient, kind, ticket_id, title, body, data, created_at) VALUES "
        + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(users)),
        [value for user in users for value in (user, kind, ticket_id, title, body, payload, at)],
    )


async def pending(db: Database, limit: int = 100) -> list[Notification]:
    """The oldest notifications not yet handed to the publisher, oldest first.

    Args:
        db: the store.
        limit: at most this many.
    """
    rows = await db.fetchall(
        "SELECT n.id, n.recipient, n.kind, n.ticket_id, t.number AS ticket_number, n.title, n.body,"
        " n.data, n.created_at FROM notifications n LEFT JOIN tickets t ON t.id = n.ticket_id"
        " WHERE n.sent_at IS NULL ORDER BY n.id LIMIT ?",
        (limit,),
    )
    return [
        Notification(
            id=row["id"],
            recipient=row["recipient"],
            kind=row["kind"],
            ticket_id=row["ticket_id"],
            ticket_number=row["ticket_number"],
            title=row["title"],
            body=row["body"],
            data=json.loads(row["data"]),
            created_at=row["created_at"],
        )
        for row in rows
    ]


async def mark_sent(db: Database, ids: Sequence[int], at: float) -> None:
    """Note that these notifications were handed to the publisher at `at` (repeats are harmless)."""
    if not ids:
        return
    await db.execute(
        f"UPDATE notifications SET sent_at = ? WHERE sent_at IS NULL AND id IN ({','.join('?' * len(ids))})",
        (at, *ids),
    )
