"""Callback tickets: the agents' loads as the store knows them, and a call's callback dispatched once."""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cti_bridge.calls.model import CallKey
from cti_bridge.store import notifications
from cti_bridge.store.database import Database, Session
from cti_bridge.store.ticket_rows import TICKET_COLUMNS, HistoryRow, append_history, ticket_of
from cti_bridge.tickets.dispatch import (
    AgentLoad,
    Assignment,
    Availability,
    CallbackReason,
    CallbackRequest,
    Dispatcher,
)
from cti_bridge.tickets.kpi import NON_AGENT_ACTORS
from cti_bridge.tickets.model import OPEN_STATUSES, Ticket, TicketStatus

ACTOR = "dispatch"
_OPEN = tuple(str(s) for s in OPEN_STATUSES)
_OPEN_SQL = ",".join("?" * len(_OPEN))
_NON_AGENTS = tuple(sorted(NON_AGENT_ACTORS))


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackDispatch:
    """What became of one call's callback.

    `assignment` is the dispatcher's decision, or None when the ticket already had an owner,
    who keeps it and the callback (`explanation` then says so).
    """

    ticket: Ticket  # as stored after the dispatch
    call: CallKey
    reason: CallbackReason
    assignment: Assignment | None
    explanation: str

    @property
    def assignee(self) -> str | None:
        return self.ticket.assignee


async def agent_loads(
    db: Database,
    agent_ids: Iterable[str],
    *,
    response_since: float,
    on_call: Collection[str] = (),
    away: Mapping[str, Availability] | None = None,
) -> dict[str, AgentLoad]:
    """Each agent's open tickets and median first response, read as one snapshot.

    Args:
        agent_ids: the agents to measure (those the dispatcher knows).
        response_since: the window of the response measure: tickets created since then.
        on_call: agents on a call right now.
        away: agents the PBX's queues say are paused or logged off; the others (and agents
            the queues never mentioned) are taken as available.

    Returns:
        agent id -> AgentLoad, for every agent asked about.
    """
    return await db.read(_agent_loads, tuple(agent_ids), response_since, frozenset(on_call), dict(away or {}))


async def assign_callback(
    db: Database,
    call: CallKey,
    reason: CallbackReason,
    dispatcher: Dispatcher,
    *,
    at: float,
    response_since: float,
    on_call: Collection[str] = (),
    away: Mapping[str, Availability] | None = None,
) -> CallbackDispatch | None:
    """Make the ticket of `call` a callback ticket and place it, in one transaction.

    The loads are counted inside the transaction, so two callbacks dispatched at once never
    both see an agent just under their cap. An unassigned ticket goes where the dispatcher
    says: to an agent (status `new` becomes `assigned`), to a supervisor, or left in a team
    queue. A ticket that already has an assignee (the caller's open ticket, which the call
    joined) stays theirs: a second dispatch would take the customer away from the agent who
    knows them; the missed call is recorded there as a callback request instead.
    History: a `callback_requested` event, then `assigned` (data.assignee, as the workflow's
    own) or `callback_queued`, all by actor 'dispatch' with from/to status and the
    explanation as their reason.

    Returns:
        What was done, or None when there is nothing to do: the call is unknown, its
        callback was already handled (a replay or restart: each call is dispatched once), or
        its ticket is no longer open.
    """
    return await db.transaction(
        _assign_callback, call, reason, dispatcher, at, response_since, frozenset(on_call), dict(away or {})
    )


async def calls_awaiting_callback(db: Database, since: float) -> list[tuple[CallKey, CallbackReason]]:
    """Missed and abandoned calls that ended since `since` and whose callback was never handled:
    the end and the dispatch are two transactions, and the daemon may stop between them."""
    rows = await db.fetchall(
        "SELECT pbx, linkedid, outcome FROM calls INDEXED BY calls_awaiting_callback"
        " WHERE callback_at IS NULL AND outcome IN ('missed', 'abandoned') AND ended_at >= ?"
        " ORDER BY ended_at",
        (since,),
    )
    return [(CallKey(r["pbx"], r["linkedid"]), CallbackReason(r["outcome"])) for r in rows]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedCallback:
    """A callback ticket waiting in a team queue (tickets.dispatch.Pending)."""

    id: int
    number: str
    priority: str
    queue: str | None
    created_at: float


async def queued_callbacks(db: Database, limit: int = 200) -> list[QueuedCallback]:
    """Open callback tickets that nobody holds, oldest first, at most `limit`."""
    rows = await db.fetchall(
        "SELECT id, number, priority, queue, created_at FROM tickets INDEXED BY tickets_callback_queue"
        f" WHERE callback_reason IS NOT NULL AND assignee IS NULL AND status IN ({_OPEN_SQL})"
        " ORDER BY created_at LIMIT ?",
        (*_OPEN, limit),
    )
    return [QueuedCallback(**dict(r)) for r in rows]


async def offer_again(
    db: Database,
    ticket_id: int,
    dispatcher: Dispatcher,
    *,
    at: float,
    response_since: float,
    on_call: Collection[str] = (),
    away: Mapping[str, Availability] | None = None,
) -> CallbackDispatch | None:
    """Offer a queued callback ticket to the agents again, in one transaction.

    Writes only when someone takes it (an `assigned` event by 'dispatch' with the
    explanation, and the agent's notification): a retry that finds nobody leaves no trace in
    the history. None when nobody can take it, or it is no longer a queued callback.
    """
    return await db.transaction(
        _offer_again, ticket_id, dispatcher, at, response_since, frozenset(on_call), dict(away or {})
    )


async def _offer_again(
    tx: Session,
    ticket_id: int,
    dispatcher: Dispatcher,
    at: float,
    response_since: float,
    on_call: frozenset[str],
    away: Mapping[str, Availability],
) -> CallbackDispatch | None:
    row = await tx.fetchone(
        "SELECT t.id, t.status, t.assignee, t.category, t.queue, t.callback_reason,"
        " COALESCE(cu.vip, 0) AS vip, (SELECT c.pbx || char(10) || c.linkedid FROM calls c"
        " WHERE c.ticket_id = t.id ORDER BY c.id DESC LIMIT 1) AS last_call"
        " FROM tickets t LEFT JOIN customers cu ON cu.id = t.customer_id WHERE t.id = ?",
        (ticket_id,),
    )
    if (
        row is None
        or row["assignee"] is not None
        or row["callback_reason"] is None
        or row["status"] not in _OPEN
    ):
        return None
    loads = await _agent_loads(tx, tuple(a.id for a in dispatcher.agents), response_since, on_call, away)
    request = CallbackRequest(category=row["category"], queue=row["queue"], vip=bool(row["vip"]))
    assignment = dispatcher.choose(request, loads)
    assignee = assignment.assignee
    if assignee is None:
        return None
    status = row["status"]
    reason = CallbackReason(row["callback_reason"])
    to_status = str(TicketStatus.ASSIGNED) if status == "new" else status
    ticket = await _mark(tx, ticket_id, reason, at, assignee, to_status)
    decision = {
        "assignee": assignee,
        "outcome": str(assignment.outcome),
        "team": assignment.team,
        "required_skills": list(assignment.required_skills),
        "callback": str(reason),
        "offered_again": True,
    }
    await _events(tx, ticket_id, at, [("assigned", status, to_status, assignment.explanation, decision)])
    pbx, _, linkedid = (row["last_call"] or "\n").partition("\n")
    key = CallKey(pbx, linkedid)
    await _notify(tx, ticket, assignee, reason, key, assignment.explanation, at)
    return CallbackDispatch(
        ticket=ticket, call=key, reason=reason, assignment=assignment, explanation=assignment.explanation
    )


async def _assign_callback(
    tx: Session,
    key: CallKey,
    reason: CallbackReason,
    dispatcher: Dispatcher,
    at: float,
    response_since: float,
    on_call: frozenset[str],
    away: Mapping[str, Availability],
) -> CallbackDispatch | None:
    row = await tx.fetchone(
        "SELECT c.id AS call_id, c.callback_at, COALESCE(c.queue, t.queue) AS call_queue, t.id,"
        " t.status, t.assignee, t.category, COALESCE(cu.vip, 0) AS vip FROM calls c"
        " JOIN tickets t ON t.id = c.ticket_id LEFT JOIN customers cu ON cu.id = t.customer_id"
        " WHERE c.pbx = ? AND c.linkedid = ?",
        (key.pbx, key.linkedid),
    )
    if row is None or row["callback_at"] is not None or row["status"] not in _OPEN:
        return None
    ticket_id, status, owner = row["id"], row["status"], row["assignee"]
    await tx.execute("UPDATE calls SET callback_at = ? WHERE id = ?", (at, row["call_id"]))
    what = f"{reason.replace('_', ' ')} call {key}"
    requested = {"call": str(key), "callback": str(reason)}
    if owner is not None:
        explanation = f"{what}: {owner} already owns the ticket and calls back"
        ticket = await _mark(tx, ticket_id, reason, at, owner, status)
        await _events(tx, ticket_id, at, [("callback_requested", status, status, explanation, requested)])
        await _notify(tx, ticket, owner, reason, key, explanation, at)
        return CallbackDispatch(
            ticket=ticket, call=key, reason=reason, assignment=None, explanation=explanation
        )
    loads = await _agent_loads(tx, tuple(a.id for a in dispatcher.agents), response_since, on_call, away)
    request = CallbackRequest(category=row["category"], queue=row["call_queue"], vip=bool(row["vip"]))
    assignment = dispatcher.choose(request, loads)
    assignee = assignment.assignee
    to_status = str(TicketStatus.ASSIGNED) if assignee is not None and status == "new" else status
    ticket = await _mark(tx, ticket_id, reason, at, assignee, to_status)
    decision: dict[str, Any] = {
        **requested,
        "outcome": str(assignment.outcome),
        "team": assignment.team,
        "required_skills": list(assignment.required_skills),
    }
    # `assigned` with data.assignee is the workflow's own event: replaying the history rebuilds
    # the assignee. A ticket left in the queue changes neither status nor assignee.
    kind = "assigned" if assignee is not None else "callback_queued"
    if assignee is not None:
        decision = {"assignee": assignee, **decision}
    await _events(
        tx,
        ticket_id,
        at,
        [
            ("callback_requested", status, status, what, requested),
            (kind, status, to_status, assignment.explanation, decision),
        ],
    )
    if assignee is not None:
        await _notify(tx, ticket, assignee, reason, key, assignment.explanation, at)
    return CallbackDispatch(
        ticket=ticket, call=key, reason=reason, assignment=assignment, explanation=assignment.explanation
    )


async def _notify(
    tx: Session, ticket: Ticket, agent: str, reason: CallbackReason, key: CallKey, why: str, at: float
) -> None:
    """The agent's notification, in the outbox with the dispatch itself: the live MQTT message
    can be lost with the daemon, this one is published until it is delivered."""
    caller = ticket.caller_number or "?"
    await notifications.queue_notifications(
        tx,
        [agent],
        kind="callback_assigned",
        ticket_id=ticket.id,
        title=f"请回电 {caller}（{ticket.number}）/ Call back {caller} ({ticket.number})",
        body=why,
        data={"ticket": ticket.number, "call": str(key), "reason": str(reason)},
        at=at,
    )


async def _mark(
    tx: Session, ticket_id: int, reason: CallbackReason, at: float, assignee: str | None, status: str
) -> Ticket:
    """Mark the ticket a callback ticket (its first reason stays), held by `assignee` in `status`."""
    row = await tx.fetchone(
        "UPDATE tickets SET callback_reason = COALESCE(callback_reason, ?), assignee = ?, status = ?,"
        f" updated_at = MAX(updated_at, ?) WHERE id = ? RETURNING {TICKET_COLUMNS}",
        (str(reason), assignee, status, at, ticket_id),
    )
    assert row is not None
    return ticket_of(row)


async def _events(
    tx: Session, ticket_id: int, at: float, events: Iterable[tuple[str, str, str, str, dict[str, Any]]]
) -> None:
    """Append (kind, from_status, to_status, reason, data) events by the dispatcher."""
    rows = [HistoryRow(kind, ACTOR, data, before, after, why) for kind, before, after, why, data in events]
    await append_history(tx, ticket_id, at, rows)


async def _agent_loads(
    tx: Session,
    agent_ids: tuple[str, ...],
    response_since: float,
    on_call: frozenset[str],
    away: Mapping[str, Availability],
) -> dict[str, AgentLoad]:
    if not agent_ids:
        return {}
    agents = ",".join("?" * len(agent_ids))
    # One index range per agent and status (tickets_assignee_status), never a table scan.
    counts = await tx.fetchall(
        f"SELECT assignee, COUNT(*) AS n FROM tickets WHERE assignee IN ({agents})"
        f" AND status IN ({','.join('?' * len(_OPEN))}) GROUP BY assignee",
        (*agent_ids, *_OPEN),
    )
    open_tickets = {r["assignee"]: r["n"] for r in counts}
    # A first response as cti_bridge.tickets.kpi defines it: the first answer of a call,
    # `started`, `resolved` or customer-visible comment by an agent; credited to that agent.
    # Through the window's response events only (the partial index ticket_events_responses,
    # whose IN term is repeated word for word): left to itself, SQLite walks the whole history
    # by ticket_events_ticket to save the GROUP BY's sort.
    firsts = await tx.fetchall(
        "SELECT r.actor, r.first_at - t.created_at AS seconds FROM ("
        " SELECT ticket_id, actor, MIN(at) AS first_at"
        " FROM ticket_events INDEXED BY ticket_events_responses"
        " WHERE kind IN ('call_answered', 'started', 'resolved', 'commented') AND at >= ?"
        f" AND actor NOT IN ({','.join('?' * len(_NON_AGENTS))})"
        " AND (kind <> 'commented' OR json_extract(data, '$.visibility') = 'customer')"
        " GROUP BY ticket_id"
        f") r JOIN tickets t ON t.id = r.ticket_id WHERE t.created_at >= ? AND r.actor IN ({agents})",
        (response_since, *_NON_AGENTS, response_since, *agent_ids),
    )
    seconds: dict[str, list[float]] = {}
    for first in firsts:
        seconds.setdefault(first["actor"], []).append(max(0.0, first["seconds"]))
    return {
        agent: AgentLoad(
            agent_id=agent,
            availability=away.get(agent)
            or (Availability.ON_CALL if agent in on_call else Availability.AVAILABLE),
            open_tickets=open_tickets.get(agent, 0),
            median_response=statistics.median(seconds[agent]) if agent in seconds else None,
        )
        for agent in agent_ids
    }
