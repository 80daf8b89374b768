"""The SQL store: tickets, calls, customers, recordings, the transcription job queue."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiosqlite

from cti_bridge.calls.model import Call, CallKey, Direction, Transfer
from cti_bridge.config.model import TicketRule
from cti_bridge.store import attachments, call_flows, dispatch, knowledge, notifications, reports
from cti_bridge.store import crm as crm_answers
from cti_bridge.store.database import Database, Session
from cti_bridge.store.search import SearchHit, search_tickets
from cti_bridge.store.ticket_rows import (
    TICKET_COLUMNS,
    HistoryRow,
    append_history,
    columns_of,
    summary_of,
    ticket_of,
    to_json,
)
from cti_bridge.tickets.categories import CategoryTree
from cti_bridge.tickets.dispatch import Availability, CallbackReason, Dispatcher
from cti_bridge.tickets.kpi import TicketHistory
from cti_bridge.tickets.model import (
    CSAT_SCORES,
    OPEN_STATUSES,
    CallerHistory,
    Customer,
    NewTicket,
    Ticket,
    TicketNumbering,
    TicketStatus,
)
from cti_bridge.tickets.rules import CallFacts, Decision, TicketSoFar, revise
from cti_bridge.tickets.workflow import (
    ChangePriority,
    Command,
    EventKind,
    HistoryEvent,
    TicketState,
    Transition,
    UpdateFields,
    WaitingOn,
    Workflow,
)

_OPEN = tuple(str(s) for s in OPEN_STATUSES)
_OPEN_SQL = ",".join("?" * len(_OPEN))


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerRow:
    """One customer to import."""

    name: str
    phones: tuple[str, ...]
    company: str | None = None
    email: str | None = None
    tier: str = "standard"
    vip: bool = False
    notes: str | None = None
    external_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Recording:
    id: int
    call_id: int
    ticket_id: int
    ticket_number: str
    pbx_path: str
    local_path: str
    status: str
    queue: str | None
    did: str | None
    pbx: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionJob:
    id: int
    recording_id: int
    ticket_id: int
    ticket_number: str
    local_path: str
    language: str
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenCall:
    """A call row the PBX never told us the end of."""

    id: int
    pbx: str
    linkedid: str
    ticket_id: int
    direction: str
    started_at: float
    answered_at: float | None
    agent_id: str | None
    placed_by: str | None
    recordings: tuple[str, ...]


class Store:
    """Everything the daemon and the CLI read and write, over one Database."""

    def __init__(self, database: Database, numbering: TicketNumbering) -> None:
        self._db = database
        self._numbering = numbering

    @classmethod
    async def open(cls, url: str, numbering: TicketNumbering) -> Store:
        return cls(await Database.open(url), numbering)

    async def close(self) -> None:
        await self._db.close()

    @property
    def database(self) -> Database:
        """For the modules that read and write through it directly (users, browse)."""
        return self._db

    # -- customers -----------------------------------------------------------

    async def customer_by_phone(self, phone: str) -> Customer | None:
        row = await self._db.fetchone(
            "SELECT c.*, (SELECT group_concat(phone, char(10)) FROM"
            " (SELECT phone FROM customer_phones WHERE customer_id = c.id ORDER BY phone)) AS phones"
            " FROM customer_phones p JOIN customers c ON c.id = p.customer_id WHERE p.phone = ?",
            (phone,),
        )
        if row is None:
            return None
        return _customer(row, tuple(row["phones"].split("\n")))

    async def import_customers(self, customers: Iterable[CustomerRow], at: float) -> tuple[int, int]:
        """Insert or update customers (matched by external id, else by phone).

        Returns:
            (created, updated) counts.
        """

        async def write(tx: Session) -> tuple[int, int]:
            created = updated = 0
            for customer in customers:
                customer_id = await _existing_customer(tx, customer)
                values = (
                    customer.name,
                    customer.company,
                    customer.email,
                    customer.tier,
                    int(customer.vip),
                    customer.notes,
                    customer.external_id,
                )
                if customer_id is None:
                    inserted = await tx.fetchone(
                        "INSERT INTO customers (name, company, email, tier, vip, notes, external_id,"
                        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (*values, at, at),
                    )
                    assert inserted is not None
                    customer_id = inserted["id"]
                    created += 1
                else:
                    await tx.execute(
                        "UPDATE customers SET name=?, company=?, email=?, tier=?, vip=?, notes=?,"
                        " external_id=?, updated_at=? WHERE id=?",
                        (*values, at, customer_id),
                    )
                    updated += 1
                for phone in customer.phones:
                    await tx.execute(
                        "INSERT INTO customer_phones (phone, customer_id) VALUES (?, ?)"
                        " ON CONFLICT (phone) DO UPDATE SET customer_id = excluded.customer_id",
                        (phone, customer_id),
                    )
            return created, updated

        return await self._db.transaction(write)

    # -- tickets for calls (TicketRepository) ----------------------------------

    async def ticket_for_call(self, pbx: str, linkedid: str) -> Ticket | None:
        row = await self._db.fetchone(
            f"SELECT {_prefixed('t')} FROM calls c JOIN tickets t ON t.id = c.ticket_id"
            " WHERE c.pbx = ? AND c.linkedid = ?",
            (pbx, linkedid),
        )
        return ticket_of(row) if row else None

    async def caller_history(self, customer: Customer | None, phone: str | None, limit: int) -> CallerHistory:
        where, params = _caller_filter(customer.id if customer else None, phone)
        if where is None:
            return CallerHistory(customer=customer, open_tickets=(), recent_tickets=())
        # Both lists in one statement: each is its own indexed subquery.
        rows = await self._db.fetchall(
            f"SELECT * FROM (SELECT 'open' AS list, {TICKET_COLUMNS} FROM tickets"
            f" WHERE ({where}) AND status IN ({_OPEN_SQL}) ORDER BY updated_at DESC LIMIT 50)"
            f" UNION ALL SELECT * FROM (SELECT 'recent' AS list, {TICKET_COLUMNS} FROM tickets"
            f" WHERE {where} ORDER BY created_at DESC LIMIT ?)",
            (*params, *_OPEN, *params, limit),
        )
        return CallerHistory(
            customer=customer,
            open_tickets=tuple(summary_of(r) for r in rows if r["list"] == "open"),
            recent_tickets=tuple(summary_of(r) for r in rows if r["list"] == "recent"),
        )

    async def reusable_ticket(
        self, customer_id: int | None, phone: str | None, updated_since: float
    ) -> Ticket | None:
        where, params = _caller_filter(customer_id, phone)
        if where is None:
            return None
        row = await self._db.fetchone(
            f"SELECT {TICKET_COLUMNS} FROM tickets WHERE ({where}) AND status IN ({_OPEN_SQL})"
            " AND updated_at >= ? ORDER BY updated_at DESC LIMIT 1",
            (*params, *_OPEN, updated_since),
        )
        return ticket_of(row) if row else None

    async def create_ticket_for_call(
        self, new: NewTicket, call: Call, caller_e164: str | None, at: float
    ) -> tuple[Ticket, bool]:
        try:
            return await self._create_ticket_for_call(new, call, caller_e164, at), True
        except sqlite3.IntegrityError as exc:
            return await self._ticket_of_recorded_call(call, exc), False

    async def _create_ticket_for_call(
        self, new: NewTicket, call: Call, caller_e164: str | None, at: float
    ) -> Ticket:
        async def write(tx: Session) -> Ticket:
            inserted = await tx.fetchone(
                "INSERT INTO tickets (status, priority, category, rule, subject, description,"
                " customer_id, caller_number, caller_name, did, queue, fields, assignee, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    str(new.status),
                    new.priority,
                    new.category,
                    new.rule,
                    new.subject,
                    new.description,
                    new.customer_id,
                    new.caller_number,
                    new.caller_name,
                    new.did,
                    new.queue,
                    to_json(new.fields),
                    new.assignee,
                    at,
                    at,
                ),
            )
            assert inserted is not None
            ticket_id = inserted["id"]
            row = await tx.fetchone(
                f"UPDATE tickets SET number = ? WHERE id = ? RETURNING {TICKET_COLUMNS}",
                (self._numbering.format(ticket_id), ticket_id),
            )
            assert row is not None
            await _insert_call(tx, ticket_id, call, caller_e164)
            await _event(
                tx,
                ticket_id,
                at,
                "created",
                "system",
                {
                    "call": str(call.key),
                    "rule": new.rule,
                    "why": new.rule_reason,
                    "category": new.category,
                    "priority": new.priority,
                },
            )
            return ticket_of(row)

        return await self._db.transaction(write)

    async def attach_call(
        self, ticket_id: int, call: Call, caller_e164: str | None, at: float
    ) -> tuple[Ticket, bool]:

        async def write(tx: Session) -> Ticket:
            await _insert_call(tx, ticket_id, call, caller_e164)
            row = await tx.fetchone(
                f"UPDATE tickets SET updated_at = MAX(updated_at, ?) WHERE id = ? RETURNING {TICKET_COLUMNS}",
                (at, ticket_id),
            )
            assert row is not None
            await _event(tx, ticket_id, at, "call_attached", "system", {"call": str(call.key)})
            return ticket_of(row)

        try:
            return await self._db.transaction(write), True
        except sqlite3.IntegrityError as exc:
            return await self._ticket_of_recorded_call(call, exc), False

    async def _ticket_of_recorded_call(self, call: Call, refused: sqlite3.IntegrityError) -> Ticket:
        """The call already has a ticket (a reconnect, a restart, another daemon on the same
        file): the calls table's UNIQUE (pbx, linkedid) refused it, and the insert rolled back."""
        ticket = await self.ticket_for_call(call.key.pbx, call.key.linkedid)
        if ticket is None:  # some other constraint
            raise refused
        return ticket

    async def record_rang(self, call: Call) -> None:
        await self._db.execute(
            "UPDATE calls SET rang_agents = ?, queue = COALESCE(queue, ?) WHERE pbx = ? AND linkedid = ?",
            (",".join(call.rang_agents), call.queue, call.key.pbx, call.key.linkedid),
        )

    async def record_answer(self, call: Call, agent_id: str, at: float) -> Ticket | None:
        async def write(tx: Session) -> Ticket | None:
            row = await tx.fetchone(
                "SELECT c.ticket_id, c.agent_id, t.assignee, t.status FROM calls c"
                " JOIN tickets t ON t.id = c.ticket_id WHERE c.pbx = ? AND c.linkedid = ?",
                (call.key.pbx, call.key.linkedid),
            )
            if row is None or row["agent_id"] == agent_id:
                return None
            await tx.execute(
                "UPDATE calls SET agent_id = ?, answered_at = COALESCE(answered_at, ?), queue = ?,"
                " rang_agents = ? WHERE pbx = ? AND linkedid = ?",
                (
                    agent_id,
                    call.answered_at or at,
                    call.queue,
                    ",".join(call.rang_agents),
                    call.key.pbx,
                    call.key.linkedid,
                ),
            )
            # The rule of tickets.service.answered_by: an unassigned ticket becomes the
            # answering agent's, and a new one is then assigned.
            ticket = await tx.fetchone(
                "UPDATE tickets SET assignee = COALESCE(assignee, ?),"
                " status = CASE WHEN assignee IS NULL AND status = 'new' THEN 'assigned' ELSE status END,"
                f" updated_at = MAX(updated_at, ?) WHERE id = ? RETURNING {TICKET_COLUMNS}",
                (agent_id, at, row["ticket_id"]),
            )
            assert ticket is not None
            events: list[tuple[str, str, dict[str, Any]]] = []
            if row["assignee"] is None:
                events.append(
                    (
                        "assigned",
                        "system",
                        {
                            "to": agent_id,
                            "why": "answered the call",
                            "from_status": row["status"],
                            "to_status": ticket["status"],
                        },
                    )
                )
            answered: dict[str, Any] = {"call": str(call.key)}
            if call.transfers and call.transfers[-1].to_agent == agent_id:
                answered["transferred_from"] = call.transfers[-1].from_agent
            if call.direction is Direction.OUTBOUND:
                answered["outbound"] = True
            events.append(("call_answered", agent_id, answered))
            await _events(tx, row["ticket_id"], at, events)
            return ticket_of(ticket)

        return await self._db.transaction(write)

    async def record_call_end(self, call: Call, at: float) -> bool:
        """Record how the call ended, once. An outbound call to a callback ticket's customer is
        that ticket's callback made (answered or not).

        Returns:
            True if this end was recorded now; False if it was known already (or no such call).
        """

        async def write(tx: Session) -> bool:
            ended = await tx.fetchone(
                "UPDATE calls SET ended_at = ?, answered_at = COALESCE(answered_at, ?),"
                " agent_id = COALESCE(?, agent_id), queue = COALESCE(?, queue), rang_agents = ?,"
                " ring_seconds = ?, talk_seconds = ?, hangup_cause = ?, hangup_cause_text = ?,"
                " outcome = ? WHERE pbx = ? AND linkedid = ? AND ended_at IS NULL RETURNING ticket_id",
                (
                    call.ended_at,
                    call.answered_at,
                    call.agent_id,
                    call.queue,
                    ",".join(call.rang_agents),
                    call.ring_seconds,
                    call.talk_seconds,
                    call.hangup_cause,
                    call.hangup_cause_text,
                    str(call.outcome) if call.outcome else None,
                    call.key.pbx,
                    call.key.linkedid,
                ),
            )
            if ended is None:  # no such call, or its end is already recorded
                return False
            await tx.execute(
                "UPDATE tickets SET updated_at = MAX(updated_at, ?) WHERE id = ?",
                (at, ended["ticket_id"]),
            )
            if call.direction is Direction.OUTBOUND:
                await call_flows.note_callback_made(tx, ended["ticket_id"], call, at)
            await _event(
                tx,
                ended["ticket_id"],
                at,
                "call_ended",
                "system",
                {
                    "call": str(call.key),
                    "outcome": str(call.outcome),
                    "cause": call.hangup_cause_text,
                    "talk_seconds": call.talk_seconds,
                },
            )

            return True

        return await self._db.transaction(write)

    async def record_csat(self, pbx: str, linkedid: str, score: int, at: float) -> Ticket | None:
        """Record a post-call survey's score on the ticket of the call (pbx, linkedid).

        One score per call: a repeated survey replaces the score. The score and a 'csat'
        history event (actor 'customer') are written in one transaction; a repeat with the
        same score writes nothing.

        Returns:
            The call's ticket, or None if no ticket has that call.

        Raises:
            ValueError: the score is not 1..5.
        """
        if type(score) is not int or score not in CSAT_SCORES:  # bool and float: no
            raise ValueError(f"CSAT score must be 1..5, got {score!r}")

        async def write(tx: Session) -> Ticket | None:
            call = await tx.fetchone(
                "SELECT c.id, c.ticket_id, c.agent_id, s.score FROM calls c"
                " LEFT JOIN csat_scores s ON s.call_id = c.id WHERE c.pbx = ? AND c.linkedid = ?",
                (pbx, linkedid),
            )
            if call is None:
                return None
            if call["score"] == score:
                row = await tx.fetchone(
                    f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?", (call["ticket_id"],)
                )
                assert row is not None
                return ticket_of(row)
            await tx.execute(
                "INSERT INTO csat_scores (call_id, ticket_id, score, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (call_id) DO UPDATE SET score = excluded.score, at = excluded.at",
                (call["id"], call["ticket_id"], score, at),
            )
            row = await tx.fetchone(
                "UPDATE tickets SET csat_score = ?, csat_at = ?, updated_at = MAX(updated_at, ?)"
                f" WHERE id = ? RETURNING {TICKET_COLUMNS}",
                (score, at, at, call["ticket_id"]),
            )
            assert row is not None
            data: dict[str, Any] = {"call": f"{pbx}/{linkedid}", "score": score}
            if call["agent_id"]:  # whom it scores, even when the survey ran after they left
                data["agent"] = call["agent_id"]
            if call["score"] is not None:
                data["previous"] = call["score"]
            await _event(tx, call["ticket_id"], at, "csat", "customer", data)
            return ticket_of(row)

        return await self._db.transaction(write)

    async def open_calls(self, pbx: str) -> list[OpenCall]:
        """Calls of a PBX whose end we have not recorded (e.g. we were down when they ended)."""
        rows = await self._db.fetchall(
            "SELECT c.id, c.pbx, c.linkedid, c.ticket_id, c.direction, c.started_at, c.answered_at,"
            " c.agent_id, c.placed_by,"
            " (SELECT group_concat(pbx_path, char(10)) FROM recordings r WHERE r.call_id = c.id)"
            " AS recordings FROM calls c WHERE c.pbx = ? AND c.ended_at IS NULL",
            (pbx,),
        )
        return [
            OpenCall(
                id=r["id"],
                pbx=r["pbx"],
                linkedid=r["linkedid"],
                ticket_id=r["ticket_id"],
                direction=r["direction"],
                started_at=r["started_at"],
                answered_at=r["answered_at"],
                agent_id=r["agent_id"],
                placed_by=r["placed_by"],
                recordings=tuple(r["recordings"].split("\n")) if r["recordings"] else (),
            )
            for r in rows
        ]

    async def get_ticket(self, ticket_id: int) -> Ticket:
        row = await self._db.fetchone(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?", (ticket_id,))
        if row is None:
            raise LookupError(f"no ticket with id {ticket_id}")
        return ticket_of(row)

    # -- recordings and transcription jobs -------------------------------------

    async def add_recording(self, call: Call, pbx_path: str, local_path: str, at: float) -> int | None:
        """Note a recording of a call (idempotent). None when the call has no ticket."""
        # One statement, so atomic without a transaction: the call's row supplies the ids.
        # (`WHERE true`-style filter before ON CONFLICT: SQLite's parser needs a WHERE there.)
        added = await self._db.fetchone(
            "INSERT INTO recordings (call_id, ticket_id, pbx_path, local_path, created_at)"
            " SELECT id, ticket_id, ?, ?, ? FROM calls WHERE pbx = ? AND linkedid = ?"
            " ON CONFLICT (call_id, pbx_path) DO NOTHING RETURNING id",
            (pbx_path, local_path, at, call.key.pbx, call.key.linkedid),
        ) or await self._db.fetchone(
            "SELECT r.id FROM calls c JOIN recordings r ON r.call_id = c.id"
            " WHERE c.pbx = ? AND c.linkedid = ? AND r.pbx_path = ?",
            (call.key.pbx, call.key.linkedid, pbx_path),
        )
        return int(added["id"]) if added else None

    async def call_recordings(self, call: Call) -> list[Recording]:
        """The recordings noted for a call so far."""
        rows = await self._db.fetchall(
            "SELECT r.*, t.number AS ticket_number, c.queue, c.did, c.pbx FROM calls c"
            " JOIN recordings r ON r.call_id = c.id JOIN tickets t ON t.id = r.ticket_id"
            " WHERE c.pbx = ? AND c.linkedid = ? ORDER BY r.id",
            (call.key.pbx, call.key.linkedid),
        )
        return [_recording(r) for r in rows]

    async def recordings_to_link(self) -> list[Recording]:
        """Recordings of ended calls not yet linked (e.g. the daemon stopped while waiting)."""
        rows = await self._db.fetchall(
            "SELECT r.*, t.number AS ticket_number, c.queue, c.did, c.pbx FROM recordings r"
            " JOIN calls c ON c.id = r.call_id JOIN tickets t ON t.id = r.ticket_id"
            " WHERE r.status = 'recording' AND c.ended_at IS NOT NULL ORDER BY r.id"
        )
        return [_recording(r) for r in rows]

    async def recording(self, recording_id: int) -> Recording:
        row = await self._db.fetchone(
            "SELECT r.*, t.number AS ticket_number, c.queue, c.did, c.pbx FROM recordings r"
            " JOIN calls c ON c.id = r.call_id JOIN tickets t ON t.id = r.ticket_id WHERE r.id = ?",
            (recording_id,),
        )
        if row is None:
            raise LookupError(f"no recording {recording_id}")
        return _recording(row)

    async def link_recording(
        self,
        recording_id: int,
        *,
        status: str,
        size_bytes: int | None,
        duration_seconds: float | None,
        error: str | None,
        language: str | None,
        at: float,
    ) -> int | None:
        """Mark a recording linked (or missing/incomplete) and queue its transcription.

        Returns:
            The transcription job id, if one was queued.
        """

        async def write(tx: Session) -> int | None:
            row = await tx.fetchone(
                "UPDATE recordings SET status = ?, size_bytes = ?, duration_seconds = ?, error = ?,"
                " linked_at = ? WHERE id = ? RETURNING ticket_id, local_path",
                (status, size_bytes, duration_seconds, error, at, recording_id),
            )
            assert row is not None
            await _event(
                tx,
                row["ticket_id"],
                at,
                "recording_" + status,
                "system",
                {
                    "path": row["local_path"],
                    "error": error,
                    "duration_seconds": duration_seconds,
                },
            )
            if language is None:
                return None
            job = await tx.fetchone(
                "INSERT INTO transcription_jobs (recording_id, language, created_at)"
                " VALUES (?, ?, ?) ON CONFLICT (recording_id) DO NOTHING RETURNING id",
                (recording_id, language, at),
            )
            return job["id"] if job else None

        return await self._db.transaction(write)

    async def claim_job(self, owner: str, now: float, lease_seconds: float) -> TranscriptionJob | None:
        """Take the oldest ready job, or one whose lease ran out (its worker or daemon died)."""

        async def write(tx: Session) -> TranscriptionJob | None:
            row = await tx.fetchone(
                "UPDATE transcription_jobs SET state = 'running', attempts = attempts + 1,"
                " lease_owner = ?, lease_expires_at = ?, started_at = ? WHERE id = ("
                "SELECT j.id FROM transcription_jobs j WHERE (j.state = 'queued' AND j.not_before <= ?)"
                " OR (j.state = 'running' AND j.lease_expires_at < ?) ORDER BY j.id LIMIT 1) RETURNING id",
                (owner, now + lease_seconds, now, now, now),
            )
            if row is None:
                return None
            job = await tx.fetchone(
                "SELECT j.id, j.recording_id, j.language, j.attempts, r.local_path, r.ticket_id,"
                " t.number AS ticket_number FROM transcription_jobs j"
                " JOIN recordings r ON r.id = j.recording_id JOIN tickets t ON t.id = r.ticket_id"
                " WHERE j.id = ?",
                (row["id"],),
            )
            assert job is not None
            return TranscriptionJob(**columns_of(job, TranscriptionJob))

        return await self._db.transaction(write)

    async def complete_job(
        self, job: TranscriptionJob, owner: str, result: dict[str, Any], at: float
    ) -> bool:
        """Store the transcript, if `owner` still holds the job's lease. False if it does not
        (the lease ran out and someone else took the job): the result is then discarded."""

        async def write(tx: Session) -> bool:
            taken = await tx.fetchone(
                "UPDATE transcription_jobs SET state = 'done', finished_at = ?, error = NULL,"
                " lease_expires_at = NULL WHERE id = ? AND state = 'running' AND lease_owner = ?"
                " RETURNING id",
                (at, job.id, owner),
            )
            if taken is None:
                return False
            await tx.execute(
                "INSERT INTO transcripts (job_id, recording_id, ticket_id, language, text, words,"
                " duration_seconds, elapsed_seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.recording_id,
                    job.ticket_id,
                    job.language,
                    result["text"],
                    json.dumps(result["words"], ensure_ascii=False),
                    result["duration_seconds"],
                    result["elapsed_seconds"],
                    at,
                ),
            )
            await tx.execute(
                "UPDATE tickets SET updated_at = MAX(updated_at, ?) WHERE id = ?",
                (at, job.ticket_id),
            )
            await _event(
                tx,
                job.ticket_id,
                at,
                "transcribed",
                "system",
                {
                    "recording_id": job.recording_id,
                    "language": job.language,
                    "duration_seconds": result["duration_seconds"],
                },
            )
            return True

        return await self._db.transaction(write)

    async def fail_job(
        self, job: TranscriptionJob, owner: str, reason: str, *, retry_at: float | None, at: float
    ) -> bool:
        """Record a failed attempt: queue it again from `retry_at`, or fail it for good."""
        state = "queued" if retry_at is not None else "failed"

        async def write(tx: Session) -> bool:
            held = await tx.fetchone(
                "UPDATE transcription_jobs SET state = ?, error = ?, not_before = ?, lease_owner = NULL,"
                " lease_expires_at = NULL, finished_at = ? WHERE id = ? AND state = 'running'"
                " AND lease_owner = ? RETURNING id",
                (state, reason, retry_at or 0, None if retry_at else at, job.id, owner),
            )
            if held is not None and retry_at is None:
                await _event(
                    tx,
                    job.ticket_id,
                    at,
                    "transcription_failed",
                    "system",
                    {
                        "recording_id": job.recording_id,
                        "reason": reason,
                    },
                )
            return held is not None

        return await self._db.transaction(write)

    async def release_jobs(self, owner: str) -> int:
        """Give back jobs this daemon was running (clean shutdown): queued again at once."""
        released = await self._db.fetchall(
            "UPDATE transcription_jobs SET state = 'queued', attempts = MAX(attempts - 1, 0),"
            " lease_owner = NULL, lease_expires_at = NULL WHERE state = 'running' AND lease_owner = ?"
            " RETURNING id",
            (owner,),
        )
        return len(released)

    async def running_job_owners(self) -> list[str]:
        """The lease owners of running jobs, each once."""
        rows = await self._db.fetchall(
            "SELECT DISTINCT lease_owner FROM transcription_jobs"
            " WHERE state = 'running' AND lease_owner IS NOT NULL ORDER BY lease_owner"
        )
        return [r["lease_owner"] for r in rows]

    async def requeue_jobs_of(self, owner: str) -> int:
        """Queue again, at once, the jobs of a daemon run that is gone (killed or crashed).

        Unlike `release_jobs` the attempt stays counted: it was cut short by a crash, not by a
        stop, and the count is what shows a job that keeps crashing its daemon.
        """
        requeued = await self._db.fetchall(
            "UPDATE transcription_jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL"
            " WHERE state = 'running' AND lease_owner = ? RETURNING id",
            (owner,),
        )
        return len(requeued)

    async def job_states(self) -> dict[str, int]:
        rows = await self._db.fetchall("SELECT state, COUNT(*) AS n FROM transcription_jobs GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    # -- reading tickets (CLI, pops) --------------------------------------------

    async def list_tickets(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE t.status = ?", [status]) if status else ("", [])
        rows = await self._db.fetchall(
            "SELECT t.number, t.status, t.priority, t.category, t.subject, t.assignee,"
            " t.caller_number, t.queue, t.created_at, t.updated_at, cu.name AS customer,"
            " (SELECT COUNT(*) FROM calls c WHERE c.ticket_id = t.id) AS calls"
            f" FROM tickets t LEFT JOIN customers cu ON cu.id = t.customer_id {where}"
            " ORDER BY t.id DESC LIMIT ?",
            (*params, limit),
        )
        return [dict(r) for r in rows]

    async def apply_command(
        self, number: str, command: Command, *, workflow: Workflow, actor: str, at: float
    ) -> Transition:
        """Apply a lifecycle command to a ticket and record its events, atomically.

        The ticket is read, the pure workflow decides, and the new state and its events are
        written in one transaction: a refused command (InvalidTransition, MissingFieldsError,
        FieldValidationError, ...) changes nothing and is raised as is.

        Raises:
            LookupError: no ticket with that number.
        """

        return await self.apply_commands(number, [command], workflow=workflow, actor=actor, at=at)

    async def apply_commands(
        self, number: str, commands: Sequence[Command], *, workflow: Workflow, actor: str, at: float
    ) -> Transition:
        """Apply commands one after another in one transaction: all of them, or none (a
        browser's "close with resolution" is start, resolve and close). Returns the ticket's
        state now and every event the commands appended, in order.

        Raises:
            LookupError: no ticket with that number.
            ValueError: no commands.
        """
        if not commands:
            raise ValueError("no commands to apply")

        async def write(tx: Session) -> Transition:
            row = await tx.fetchone(
                "SELECT id, status, priority, assignee, waiting_on, fields,"
                f" {', '.join(_FIELD_COLUMNS)} FROM tickets WHERE number = ?",
                (number,),
            )
            if row is None:
                raise LookupError(f"no ticket {number}")
            state = _workflow_state(row, workflow)
            events: list[HistoryEvent] = []
            for command in commands:
                transition = workflow.apply(state, command, actor=actor, at=at)
                await _write_transition(tx, row["id"], transition, at)
                await _notify_mentions(tx, row["id"], number, transition, at)
                state = transition.state
                events.extend(transition.events)
            return Transition(state, tuple(events))

        return await self._db.transaction(write)

    async def revise_by_rules(
        self,
        ticket_id: int,
        *,
        transcript: str | None = None,
        description: str | None = None,
        rules: Sequence[TicketRule],
        workflow: Workflow,
        at: float,
    ) -> Decision | None:
        """Let the ticket rules read a call's transcript, or a description a person wrote:
        keyword and regex rules may now set the category, raise the priority and fill in
        extracted fields (tickets.rules.revise says what they may override). The changes are
        written as the workflow's own commands, by actor `rules` with the rules' reason, so
        the history replays like any other edit.

        IVR choices are not stored with a call, so a rule that needs one decided at prefill
        or not at all. A resolved or closed ticket is left alone.

        Returns:
            What the rules changed, or None if nothing.
        """

        async def write(tx: Session) -> Decision | None:
            row = await tx.fetchone(
                "SELECT id, status, priority, assignee, waiting_on, fields, queue, did,"
                f" {', '.join(_FIELD_COLUMNS)},"
                " (SELECT pbx FROM calls WHERE ticket_id = t.id ORDER BY id DESC LIMIT 1) AS pbx"
                " FROM tickets t WHERE id = ?",
                (ticket_id,),
            )
            if row is None or row["status"] not in _OPEN:
                return None
            state = _workflow_state(row, workflow)
            ticket = TicketSoFar(
                category=state.fields.get("category"),
                priority=state.priority,
                fields={k: str(v) for k, v in state.fields.items()},
                set_by_people=await _set_by_people(tx, ticket_id),
            )
            facts = CallFacts(pbx=row["pbx"] or "", queue=row["queue"], did=row["did"])
            decision = revise(rules, facts, ticket, description=description, transcript=transcript)
            if decision.is_empty:
                return None
            values = {name: found.value for name, found in decision.fields.items()}
            if decision.category is not None:
                values["category"] = decision.category
            commands: list[Command] = []
            if values:
                commands.append(UpdateFields(values=values, reason=decision.reason))
            if decision.priority is not None:
                commands.append(ChangePriority(priority=decision.priority, reason=decision.reason))
            for command in commands:
                transition = workflow.apply(state, command, actor=_RULES_ACTOR, at=at)
                await _write_transition(tx, ticket_id, transition, at)
                state = transition.state
            return decision

        return await self._db.transaction(write)

    async def record_dialplan_fields(
        self, call: Call, values: dict[str, str], *, workflow: Workflow, at: float
    ) -> Ticket | None:
        """Field values the dialplan reported for a call (IVR path, a mapped UserEvent) once its
        ticket was open: written as workflow edits by actor `pbx`, never over what a person set,
        and only the values the field schema accepts (the rest are dropped).

        Returns:
            The ticket if anything changed, else None.
        """

        async def write(tx: Session) -> Ticket | None:
            row = await tx.fetchone(
                "SELECT t.id, status, priority, assignee, waiting_on, fields,"
                f" {', '.join(_FIELD_COLUMNS)} FROM calls c JOIN tickets t ON t.id = c.ticket_id"
                " WHERE c.pbx = ? AND c.linkedid = ?",
                (call.key.pbx, call.key.linkedid),
            )
            if row is None or row["status"] not in _OPEN:
                return None
            state = _workflow_state(row, workflow)
            people = await _set_by_people(tx, row["id"])
            wanted = {
                name: value
                for name, value in values.items()
                if name not in people and str(state.fields.get(name, "")) != value
            }
            accepted = workflow.schema.accepted(wanted)
            if not accepted:
                return None
            command = UpdateFields(values=accepted, reason="reported by the dialplan")
            transition = workflow.apply(state, command, actor=_PBX_ACTOR, at=at)
            await _write_transition(tx, row["id"], transition, at)
            ticket = await tx.fetchone(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?", (row["id"],))
            assert ticket is not None
            return ticket_of(ticket)

        return await self._db.transaction(write)

    # -- call flows (cti_bridge.store.call_flows) --------------------------------

    async def open_ticket_by_number(self, number: str) -> Ticket | None:
        return await call_flows.open_ticket_by_number(self._db, number)

    async def open_callback_ticket(self, customer_id: int | None, phone: str | None) -> Ticket | None:
        return await call_flows.open_callback_ticket(self._db, customer_id, phone)

    async def record_transfer(self, call: Call, transfer: Transfer) -> Ticket | None:
        return await call_flows.record_transfer(self._db, call, transfer)

    async def hand_over(self, call: Call, agent_id: str, at: float) -> tuple[Ticket, str] | None:
        """A transferred call's ticket goes to the agent who took the caller, if it was the
        transferring agent's (who gets a notification). (ticket, the agent it left) or None."""

        async def write(tx: Session) -> tuple[Ticket, str] | None:
            found = await tx.fetchone(
                f"SELECT {_prefixed('t')} FROM calls c JOIN tickets t ON t.id = c.ticket_id"
                " WHERE c.pbx = ? AND c.linkedid = ?",
                (call.key.pbx, call.key.linkedid),
            )
            if found is None:
                return None
            left = await call_flows.hand_over(tx, found["id"], found["number"], call, agent_id, at)
            if left is None:
                return None
            row = await tx.fetchone(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?", (found["id"],))
            assert row is not None
            return ticket_of(row), left

        return await self._db.transaction(write)

    async def search(
        self,
        query: str,
        *,
        region: str | None = None,
        limit: int = 20,
        categories: CategoryTree | None = None,
    ) -> list[SearchHit]:
        """Tickets by number, phone, customer, category or text: see store.search.search_tickets."""
        return await search_tickets(self._db, query, region=region, limit=limit, categories=categories)

    async def ticket_detail(self, number: str) -> dict[str, Any] | None:
        """A ticket with its customer, calls, recordings, transcripts and history."""
        row = await self._db.fetchone(
            f"SELECT {TICKET_COLUMNS}, fields, waiting_on, callback_reason, callback_made_at FROM tickets"
            " WHERE number = ?",
            (number,),
        )
        if row is None:
            return None
        detail = {**dict(row), "fields": json.loads(row["fields"])}
        ticket_id = row["id"]
        customer = await self._db.fetchone("SELECT * FROM customers WHERE id = ?", (row["customer_id"],))
        detail["customer"] = dict(customer) if customer else None
        detail["calls"] = [
            dict(r)
            for r in await self._db.fetchall(
                "SELECT pbx, linkedid, direction, caller_number, caller_name, did, queue, agent_id,"
                " rang_agents, started_at, answered_at, ended_at, ring_seconds, talk_seconds,"
                " hangup_cause, hangup_cause_text, outcome, callback_at, transfers, placed_by FROM calls"
                " WHERE ticket_id = ?"
                " ORDER BY id",
                (ticket_id,),
            )
        ]
        detail["recordings"] = [
            dict(r)
            for r in await self._db.fetchall(
                "SELECT r.id, r.pbx_path, r.local_path, r.status, r.size_bytes, r.duration_seconds,"
                " r.error, j.state AS transcription, j.attempts, j.error AS transcription_error"
                " FROM recordings r LEFT JOIN transcription_jobs j ON j.recording_id = r.id"
                " WHERE r.ticket_id = ? ORDER BY r.id",
                (ticket_id,),
            )
        ]
        detail["transcripts"] = [
            {**dict(r), "words": json.loads(r["words"])}
            for r in await self._db.fetchall(
                "SELECT recording_id, language, text, words, duration_seconds, elapsed_seconds,"
                " created_at FROM transcripts WHERE ticket_id = ? ORDER BY id",
                (ticket_id,),
            )
        ]
        detail["csat"] = [
            dict(r)
            for r in await self._db.fetchall(
                "SELECT c.pbx, c.linkedid, s.score, s.at FROM csat_scores s JOIN calls c ON c.id = s.call_id"
                " WHERE s.ticket_id = ? ORDER BY s.call_id",
                (ticket_id,),
            )
        ]
        detail["attachments"] = [
            {k: v for k, v in dataclasses.asdict(a).items() if k != "ticket_id"}
            for a in await attachments.attachments_of(self._db, ticket_id)
        ]
        detail["crm"] = await crm_answers.crm_of(self._db, ticket_id)  # None: no CRM answer kept
        detail["history"] = [
            {**dict(r), "data": json.loads(r["data"])}
            for r in await self._db.fetchall(
                "SELECT at, kind, actor, data, from_status, to_status, reason FROM ticket_events"
                " WHERE ticket_id = ? ORDER BY id",
                (ticket_id,),
            )
        ]
        return detail

    # -- attachments (cti_bridge.store.attachments) -------------------------------

    async def attach(
        self, number: str, source: Path, *, folder: Path, actor: str, at: float, name: str | None = None
    ) -> attachments.Attachment:
        """Copy a file into `folder` and record it on the ticket, with its SHA-256."""
        ticket_id = await self.ticket_id(number)
        if ticket_id is None:
            raise attachments.AttachmentError(f"no ticket {number}")
        return await attachments.add_attachment(
            self._db, ticket_id, number, source, folder=folder, actor=actor, at=at, name=name
        )

    async def damaged_attachments(self, number: str) -> list[tuple[attachments.Attachment, str]]:
        ticket_id = await self.ticket_id(number)
        return [] if ticket_id is None else await attachments.damaged(self._db, ticket_id)

    # -- reports (cti_bridge.store.reports) ---------------------------------------

    async def ticket_histories(self, since: float, until: float) -> list[TicketHistory]:
        """Tickets created in [since, until) with their whole histories, for KPIs (two queries)."""
        return await reports.ticket_histories(self._db, since, until)

    # -- callback dispatch (cti_bridge.store.dispatch) ---------------------------

    async def assign_callback(
        self,
        call: CallKey,
        reason: CallbackReason,
        dispatcher: Dispatcher,
        *,
        at: float,
        response_since: float,
        on_call: Collection[str] = (),
        away: Mapping[str, Availability] | None = None,
    ) -> dispatch.CallbackDispatch | None:
        """Dispatch the callback of a call once: see cti_bridge.store.dispatch.assign_callback."""
        return await dispatch.assign_callback(
            self._db,
            call,
            reason,
            dispatcher,
            at=at,
            response_since=response_since,
            on_call=on_call,
            away=away,
        )

    async def queued_callbacks(self, limit: int = 200) -> list[dispatch.QueuedCallback]:
        """Open callback tickets nobody holds, oldest first."""
        return await dispatch.queued_callbacks(self._db, limit)

    async def offer_callback_again(
        self,
        ticket_id: int,
        dispatcher: Dispatcher,
        *,
        at: float,
        response_since: float,
        away: Mapping[str, Availability] | None = None,
    ) -> dispatch.CallbackDispatch | None:
        """See cti_bridge.store.dispatch.offer_again."""
        return await dispatch.offer_again(
            self._db, ticket_id, dispatcher, at=at, response_since=response_since, away=away
        )

    async def calls_awaiting_callback(self, since: float) -> list[tuple[CallKey, CallbackReason]]:
        """Missed/abandoned calls ended since `since` whose callback was never handled."""
        return await dispatch.calls_awaiting_callback(self._db, since)

    # -- knowledge base (cti_bridge.store.knowledge) -----------------------------

    async def ticket_id(self, number: str) -> int | None:
        return await knowledge.ticket_id(self._db, number)

    async def kb_add_article(
        self,
        *,
        title: str,
        body: str,
        actor: str,
        at: float,
        tags: Iterable[str] = (),
        category: str | None = None,
    ) -> knowledge.Article:
        return await knowledge.add_article(
            self._db, title=title, body=body, actor=actor, at=at, tags=tags, category=category
        )

    async def kb_update_article(self, article_id: int, *, at: float, **changes: Any) -> knowledge.Article:
        return await knowledge.update_article(self._db, article_id, at=at, **changes)

    async def kb_article(self, article_id: int) -> knowledge.Article | None:
        return await knowledge.get_article(self._db, article_id)

    async def kb_articles(self, *, category: str | None = None, limit: int = 50) -> list[knowledge.Article]:
        return await knowledge.list_articles(self._db, category=category, limit=limit)

    async def kb_search(
        self, query: str, *, limit: int = 10, category: str | None = None
    ) -> list[knowledge.ArticleMatch]:
        return await knowledge.search(self._db, query, limit=limit, category=category)

    async def kb_suggest(self, ticket_id: int, limit: int = 5) -> list[knowledge.ArticleMatch]:
        return await knowledge.suggest_for_ticket(self._db, ticket_id, limit)

    async def kb_article_from_ticket(self, ticket_id: int, actor: str, at: float) -> knowledge.Article:
        return await knowledge.article_from_ticket(self._db, ticket_id, actor, at)


# -- helpers -------------------------------------------------------------------


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in TICKET_COLUMNS.split(","))


def _caller_filter(customer_id: int | None, phone: str | None) -> tuple[str | None, tuple[Any, ...]]:
    # A known customer's tickets include those from their other numbers.
    if customer_id is not None:
        return "customer_id = ?", (customer_id,)
    if phone is not None:
        return "caller_number = ?", (phone,)
    return None, ()


async def _insert_call(tx: Session, ticket_id: int, call: Call, caller: str | None) -> None:
    await tx.execute(
        "INSERT INTO calls (pbx, linkedid, ticket_id, direction, caller_number, caller_name, did,"
        " queue, agent_id, rang_agents, started_at, answered_at, placed_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            call.key.pbx,
            call.key.linkedid,
            ticket_id,
            str(call.direction),
            caller or call.caller_number,
            call.caller_name,
            call.did,
            call.queue,
            call.agent_id,
            ",".join(call.rang_agents),
            call.started_at,
            call.answered_at,
            call.placed_by,
        ),
    )


async def _event(tx: Session, ticket_id: int, at: float, kind: str, actor: str, data: dict[str, Any]) -> None:
    await _events(tx, ticket_id, at, [(kind, actor, data)])


async def _events(
    tx: Session, ticket_id: int, at: float, events: Sequence[tuple[str, str, dict[str, Any]]]
) -> None:
    """Append (kind, actor, data) events in one statement."""
    await append_history(tx, ticket_id, at, [HistoryRow(kind, actor, data) for kind, actor, data in events])


async def _existing_customer(tx: Session, customer: CustomerRow) -> int | None:
    if customer.external_id:
        row = await tx.fetchone("SELECT id FROM customers WHERE external_id = ?", (customer.external_id,))
        if row:
            return int(row["id"])
    for phone in customer.phones:
        row = await tx.fetchone("SELECT customer_id FROM customer_phones WHERE phone = ?", (phone,))
        if row:
            return int(row["customer_id"])
    return None


def _customer(row: aiosqlite.Row, phones: tuple[str, ...]) -> Customer:
    return Customer(
        id=row["id"],
        name=row["name"],
        company=row["company"],
        email=row["email"],
        tier=row["tier"],
        vip=bool(row["vip"]),
        notes=row["notes"],
        phones=phones,
    )


def _recording(row: aiosqlite.Row) -> Recording:
    return Recording(**columns_of(row, Recording))


# Standard fields that live in a column of their own (the rest are in `tickets.fields`), with
# what the column holds when the field is empty.
_FIELD_COLUMNS: dict[str, str | None] = {"category": None, "subject": "", "description": ""}


async def _write_transition(tx: Session, ticket_id: int, transition: Transition, at: float) -> None:
    """The ticket's new state and the events that led to it."""
    after = transition.state
    extra = dict(after.fields)
    columns = [_or(extra.pop(name, None), empty) for name, empty in _FIELD_COLUMNS.items()]
    await tx.execute(
        "UPDATE tickets SET status = ?, priority = ?, assignee = ?, waiting_on = ?, fields = ?,"
        f" {', '.join(f'{name} = ?' for name in _FIELD_COLUMNS)}, updated_at = MAX(updated_at, ?)"
        " WHERE id = ?",
        (
            str(after.status),
            after.priority,
            after.assignee,
            str(after.waiting_on) if after.waiting_on else None,
            to_json(extra),
            *columns,
            at,
            ticket_id,
        ),
    )
    events = transition.events
    await append_history(
        tx,
        ticket_id,
        at,
        [HistoryRow(e.kind, e.actor, e.data, e.from_status, e.to_status, e.reason) for e in events],
    )


async def _notify_mentions(
    tx: Session, ticket_id: int, number: str, transition: Transition, at: float
) -> None:
    """Each @mentioned user gets a notification, committed with the comment that names them."""
    for event in transition.events:
        mentioned = [user for user in event.data.get("mentions", ()) if user != event.actor]
        if event.kind is not EventKind.COMMENTED or not mentioned:
            continue
        text = str(event.data["text"])
        await notifications.queue_notifications(
            tx,
            mentioned,
            kind="mention",
            ticket_id=ticket_id,
            title=f"{event.actor} 在 {number} 中提到了你 / {event.actor} mentioned you on {number}",
            body=text if len(text) <= _MENTION_BODY else text[: _MENTION_BODY - 1] + "…",
            data={"ticket": number, "by": event.actor, "visibility": str(event.data.get("visibility"))},
            at=at,
        )


_MENTION_BODY = 280  # characters of the comment quoted in a mention's notification


# Actors that are the product itself, not a person: what they set, rules may set again.
_RULES_ACTOR = "rules"
_PBX_ACTOR = "pbx"  # values the dialplan reported
_MACHINE_ACTORS = ("system", _RULES_ACTOR, "sla", "dispatch", _PBX_ACTOR)


async def _set_by_people(tx: Session, ticket_id: int) -> frozenset[str]:
    """The fields (and `priority`) a person has set or cleared on the ticket."""
    rows = await tx.fetchall(
        "SELECT kind, data FROM ticket_events WHERE ticket_id = ? AND kind IN ('fields_updated',"
        f" 'priority_changed') AND actor NOT IN ({', '.join('?' * len(_MACHINE_ACTORS))})",
        (ticket_id, *_MACHINE_ACTORS),
    )
    names: set[str] = set()
    for row in rows:
        if row["kind"] == "priority_changed":
            names.add("priority")
        else:
            names.update(json.loads(row["data"]).get("changes", {}))
    return frozenset(names)


def _workflow_state(row: aiosqlite.Row, workflow: Workflow) -> TicketState:
    stored = {**json.loads(row["fields"]), **{name: row[name] for name in _FIELD_COLUMNS}}
    values = workflow.schema.validate({k: v for k, v in stored.items() if v is not None})
    return TicketState(
        status=TicketStatus(row["status"]),
        priority=row["priority"],
        assignee=row["assignee"],
        waiting_on=WaitingOn(row["waiting_on"]) if row["waiting_on"] else None,
        fields=MappingProxyType({k: v for k, v in values.items() if v is not None}),
    )


def _or(value: Any, empty: Any) -> Any:
    return empty if value is None else value
