"""What the SLA scheduler reads (open tickets, their histories, fired marks) and writes (a fired
warning or escalation, with its history events and notifications, in one transaction)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cti_bridge.store.database import Database, Session
from cti_bridge.store.notifications import queue_notifications
from cti_bridge.store.reports import histories
from cti_bridge.store.ticket_rows import HistoryRow, append_history, summary_of
from cti_bridge.tickets.kpi import TicketHistory
from cti_bridge.tickets.model import OPEN_STATUSES, TicketStatus, TicketSummary
from cti_bridge.tickets.sla import EscalationDue, SlaAction, SlaMark, SlaMarkKind, WarningDue

_OPEN = tuple(str(s) for s in OPEN_STATUSES)
_OPEN_SQL = ",".join("?" * len(_OPEN))
ACTOR = "sla"
WARNING_EVENT, BREACH_EVENT = "sla_warning", "sla_breached"
WARNING_NOTIFICATION, BREACH_NOTIFICATION = "sla_warning", "sla_breach"


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaSnapshot:
    """The open tickets as of one read, with what has fired for them."""

    tickets: tuple[TicketHistory, ...]  # each with the history the SLA clock reads, oldest first
    fired: frozenset[SlaMark]
    versions: Mapping[int, int]  # ticket id -> id of its last history event (0: none)


@dataclass(frozen=True, slots=True, kw_only=True)
class FiredSla:
    """A warning or escalation written to the store."""

    action: SlaAction
    ticket: TicketSummary  # as it is after the action (raised priority, new assignee)
    fired_at: float
    notified: tuple[str, ...]  # user ids a notification was queued for
    version: int  # the ticket's last history event now: for its next action in the same plan


async def watched_tickets(db: Database) -> SlaSnapshot:
    """The open tickets, their histories and fired marks, read as one snapshot.

    Indexed statements whatever the store's size: open tickets through
    tickets_status(status, ...), their events through ticket_events_ticket(ticket_id, at),
    their marks through sla_marks_ticket. Closed and resolved tickets (most of a store) are
    never read.
    """
    return await db.read(_read_snapshot)


async def _read_snapshot(tx: Session) -> SlaSnapshot:
    tickets = await tx.fetchall(
        "SELECT id, number, status, priority, category, queue, assignee, created_at FROM tickets"
        f" WHERE status IN ({_OPEN_SQL}) ORDER BY id",
        _OPEN,
    )
    # Only what the clock reads: status changes (the call path's `assigned` keeps its statuses
    # in data) and responses. Internal notes, the bulk of a busy ticket's history, change no
    # status and are no response; parsing them was most of a pass's time.
    rows = await tx.fetchall(
        "SELECT e.ticket_id, e.at, e.kind, e.actor, e.data, e.from_status, e.to_status"
        " FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id"
        f" WHERE t.status IN ({_OPEN_SQL}) AND CASE e.kind"
        " WHEN 'commented' THEN json_extract(e.data, '$.visibility') = 'customer'"
        " WHEN 'created' THEN 1 WHEN 'assigned' THEN 1 WHEN 'call_answered' THEN 1"
        " ELSE e.to_status IS NOT NULL END"
        " ORDER BY e.ticket_id, e.at, e.id",
        _OPEN,
    )
    last_events = await tx.fetchall(
        "SELECT t.id, (SELECT coalesce(max(e.id), 0) FROM ticket_events e WHERE e.ticket_id = t.id)"
        f" AS version FROM tickets t WHERE t.status IN ({_OPEN_SQL})",
        _OPEN,
    )
    marks = await tx.fetchall(
        f"SELECT m.key FROM tickets t JOIN sla_marks m ON m.ticket_id = t.id WHERE t.status IN ({_OPEN_SQL})",
        _OPEN,
    )
    return SlaSnapshot(
        tickets=tuple(histories(tickets, rows)),
        fired=frozenset(SlaMark.parse(m["key"]) for m in marks),
        versions={row["id"]: row["version"] for row in last_events},
    )


async def fire(db: Database, action: SlaAction, *, version: int, at: float) -> FiredSla | None:
    """Write a due warning or escalation, atomically.

    In one transaction: the mark, a history event for the warning or breach itself, for an
    escalation the raised priority and the reassignment to the supervisor (each with its own
    event, actor `sla`), and a notification per recipient in the outbox.

    Args:
        db: the store.
        action: from `plan_sla`.
        version: the ticket's last history event id in the snapshot the action was planned on.
        at: now.

    Returns:
        What was written, or None when nothing was: the ticket changed since the snapshot
        (plan again), is no longer open, or the mark was already fired (before a restart, or
        by another daemon on the same file).
    """
    return await db.transaction(_fire, action, version, at)


async def _fire(tx: Session, action: SlaAction, version: int, at: float) -> FiredSla | None:
    mark = action.mark
    ticket = await tx.fetchone(
        "SELECT id, number, status, priority, category, subject, assignee, created_at, updated_at,"
        " (SELECT coalesce(max(e.id), 0) FROM ticket_events e WHERE e.ticket_id = t.id) AS version"
        " FROM tickets t WHERE id = ?",
        (mark.ticket_id,),
    )
    # The plan was made on a snapshot: if anything happened to the ticket since (a response, a
    # pause, a new priority), the action may no longer be due, or due differently.
    if ticket is None or ticket["version"] != version or ticket["status"] not in _OPEN:
        return None
    inserted = await tx.fetchone(
        "INSERT INTO sla_marks (key, ticket_id, target, kind, due_at, fired_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (key) DO NOTHING RETURNING key",
        (mark.key, mark.ticket_id, str(mark.target), str(mark.kind), action.at, at),
    )
    if inserted is None:
        return None
    status = TicketStatus(ticket["status"])
    priority, assignee = ticket["priority"], ticket["assignee"]
    fired = WARNING_EVENT if isinstance(action, WarningDue) else BREACH_EVENT
    facts = _details(action) | {"notify": list(action.notify)}
    events = [HistoryRow(fired, ACTOR, facts, status, status, action.reason)]
    if isinstance(action, EscalationDue):
        label = _label(action)
        if action.priority_to != priority:
            reason = f"SLA {label} breached: priority raised from {priority} to {action.priority_to}"
            data = {"priority": action.priority_to, "previous": priority}
            events.append(HistoryRow("priority_changed", ACTOR, data, status, status, reason))
            priority = action.priority_to
        if action.reassign_to is not None and action.reassign_to != assignee:
            reason = f"SLA {label} breached: escalated to the supervisor {action.reassign_to}"
            if status is TicketStatus.NEW:  # as an assignment does in the workflow
                data = {"assignee": action.reassign_to}
                events.append(HistoryRow("assigned", ACTOR, data, status, TicketStatus.ASSIGNED, reason))
                status = TicketStatus.ASSIGNED
            else:
                data = {"assignee": action.reassign_to, "previous": assignee}
                events.append(HistoryRow("reassigned", ACTOR, data, status, status, reason))
            assignee = action.reassign_to
    row = await tx.fetchone(
        "UPDATE tickets SET status = ?, priority = ?, assignee = ?, updated_at = MAX(updated_at, ?)"
        " WHERE id = ? RETURNING id, number, status, priority, category, subject, assignee, created_at,"
        " updated_at",
        (str(status), priority, assignee, at, mark.ticket_id),
    )
    assert row is not None
    written = await append_history(tx, mark.ticket_id, at, events)
    summary = summary_of(row)
    kind, title = (
        (WARNING_NOTIFICATION, f"SLA 即将超时 / SLA warning: {summary.number}")
        if mark.kind is SlaMarkKind.WARNING
        else (BREACH_NOTIFICATION, f"SLA 已超时 / SLA breached: {summary.number}")
    )
    await queue_notifications(
        tx,
        action.notify,
        kind=kind,
        ticket_id=summary.id,
        title=title,
        body=f"{summary.subject}\n{action.reason}",
        data={"number": summary.number, "priority": summary.priority, "assignee": summary.assignee}
        | _details(action),
        at=at,
    )
    return FiredSla(
        action=action,
        ticket=summary,
        fired_at=at,
        notified=tuple(dict.fromkeys(n for n in action.notify if n)),
        version=max(written),
    )


def _details(action: SlaAction) -> dict[str, Any]:
    """The facts of an action, as history event data and notification data share them."""
    details: dict[str, Any] = {"target": str(action.mark.target), "reached_at": action.at}
    if isinstance(action, WarningDue):
        details["due_at"] = action.due_at
    elif isinstance(action, EscalationDue):
        details |= {
            "priority_from": action.priority_from,
            "priority_to": action.priority_to,
            "reassigned_to": action.reassign_to,
        }
    return details


def _label(action: SlaAction) -> str:
    return str(action.mark.target).replace("_", " ")
