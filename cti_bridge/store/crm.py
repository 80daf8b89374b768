"""A ticket's CRM answer: kept with the ticket, which may take the CRM's name for its caller."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from cti_bridge.store.database import Database, Session
from cti_bridge.store.ticket_rows import TICKET_COLUMNS, HistoryRow, append_history, ticket_of, to_json
from cti_bridge.tickets.crm import CrmLookup, CrmNaming
from cti_bridge.tickets.model import Ticket

CRM_ACTOR = "crm"  # in the history: the site's CRM, not a person


@dataclass(frozen=True, slots=True)
class RecordedLookup:
    ticket: Ticket  # as stored now
    changed: bool  # the ticket had no CRM answer, or a different one
    renamed: bool  # the ticket took the CRM's name (see tickets.crm.crm_naming)


async def record_lookup(
    db: Database, ticket_id: int, lookup: CrmLookup, *, naming: CrmNaming | None, at: float
) -> RecordedLookup:
    """Keep the CRM's answer on the ticket and, if `naming` still applies, rename its caller.

    A change (a first answer, other data, a rename) is a `caller_enriched` event in the
    ticket's history, actor `crm`; the same answer again (a repeat call) writes no event.
    The ticket's `updated_at` is left alone: an answer from the CRM is no work on the ticket.
    """
    profile = to_json(dataclasses.asdict(lookup.profile)) if lookup.profile is not None else None

    async def write(tx: Session) -> RecordedLookup:
        before = await tx.fetchone("SELECT found, profile FROM ticket_crm WHERE ticket_id = ?", (ticket_id,))
        changed = before is None or (bool(before["found"]), before["profile"]) != (lookup.found, profile)
        await tx.execute(
            "INSERT INTO ticket_crm (ticket_id, phone, found, profile, fetched_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (ticket_id) DO UPDATE SET phone = excluded.phone, found = excluded.found,"
            " profile = excluded.profile, fetched_at = excluded.fetched_at",
            (ticket_id, lookup.phone, int(lookup.found), profile, lookup.fetched_at),
        )
        renamed = False
        if naming is not None:
            # Only while nobody has given the ticket a customer or another subject meanwhile.
            renamed = (
                await tx.fetchone(
                    "UPDATE tickets SET caller_name = ?, subject = ?"
                    " WHERE id = ? AND customer_id IS NULL AND subject = ? RETURNING id",
                    (naming.caller_name, naming.subject, ticket_id, naming.replaces_subject),
                )
                is not None
            )
        if changed or renamed:
            await append_history(
                tx, ticket_id, at, [HistoryRow("caller_enriched", CRM_ACTOR, _event(lookup, renamed))]
            )
        row = await tx.fetchone(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?", (ticket_id,))
        assert row is not None
        return RecordedLookup(ticket_of(row), changed, renamed)

    return await db.transaction(write)


async def crm_of(db: Database, ticket_id: int) -> dict[str, Any] | None:
    """The ticket's CRM answer for its detail view: found, phone, fetched_at and the profile."""
    row = await db.fetchone(
        "SELECT phone, found, profile, fetched_at FROM ticket_crm WHERE ticket_id = ?", (ticket_id,)
    )
    if row is None:
        return None
    return {
        "found": bool(row["found"]),
        "phone": row["phone"],
        "fetched_at": row["fetched_at"],
        "profile": json.loads(row["profile"]) if row["profile"] else None,
    }


def _event(lookup: CrmLookup, renamed: bool) -> dict[str, Any]:
    profile = lookup.profile
    if profile is None:
        return {"found": False}
    data: dict[str, Any] = {"found": True, "renamed": renamed}
    for name in ("name", "external_id", "tier", "vip"):
        if (value := getattr(profile, name)) is not None:
            data[name] = value
    return data
