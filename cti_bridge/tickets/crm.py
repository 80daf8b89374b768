"""What the site's CRM says about a caller, as the core sees it (the HTTP edge is cti_bridge.crm)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cti_bridge.tickets.model import Ticket
from cti_bridge.tickets.prefill import call_subject, caller_label


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmOrder:
    """One recent order or purchase, as the CRM wrote it (dates and amounts are the CRM's text)."""

    id: str | None = None
    date: str | None = None
    total: str | None = None
    status: str | None = None
    summary: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmProfile:
    """The caller's record in the CRM; a field the CRM did not give (or the config does not map) is None."""

    name: str | None = None
    company: str | None = None
    email: str | None = None
    tier: str | None = None
    vip: bool | None = None
    external_id: str | None = None
    notes: str | None = None
    orders: tuple[CrmOrder, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmLookup:
    """The CRM's answer for one number: its record, or None when it does not know the number."""

    phone: str  # E.164
    profile: CrmProfile | None
    fetched_at: float  # when the CRM answered (a cached answer keeps its time)

    @property
    def found(self) -> bool:
        return self.profile is not None


class CrmStatus(StrEnum):
    """Where a call's CRM lookup is, as a screen-pop says it."""

    OFF = "off"  # no CRM configured, or no number to look up
    PENDING = "pending"  # asked; the answer follows in an `enriched` pop
    FOUND = "found"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"  # failed, timed out, circuit open or too many waiting


@dataclass(frozen=True, slots=True)
class CallerCrm:
    """A call's CRM state for its pop: the status and, once answered, the lookup."""

    status: CrmStatus
    lookup: CrmLookup | None = None

    @classmethod
    def of(cls, lookup: CrmLookup | None) -> CallerCrm:
        """The final state once the lookup is over (None: the CRM could not answer)."""
        if lookup is None:
            return cls(CrmStatus.UNAVAILABLE)
        return cls(CrmStatus.FOUND if lookup.found else CrmStatus.NOT_FOUND, lookup)

    @property
    def final(self) -> bool:
        return self.status is not CrmStatus.PENDING


@dataclass(frozen=True, slots=True)
class CrmNaming:
    """The caller name and subject a ticket takes from the CRM."""

    caller_name: str
    subject: str
    replaces_subject: str  # the subject it had: only that one is replaced (nobody edited it)


def crm_naming(ticket: Ticket, profile: CrmProfile | None) -> CrmNaming | None:
    """How a ticket is named after the CRM's answer, or None if it keeps its names.

    Only a ticket of no local customer (whose name prefill would have used) and whose subject
    is still the one prefill wrote takes the CRM's name: a person's edit is never overwritten.
    """
    if profile is None or not profile.name or ticket.customer_id is not None:
        return None
    automatic = call_subject(caller_label(None, ticket.caller_name, ticket.caller_number))
    if ticket.subject != automatic:
        return None
    naming = CrmNaming(profile.name, call_subject(profile.name), automatic)
    if (naming.caller_name, naming.subject) == (ticket.caller_name, ticket.subject):
        return None
    return naming
