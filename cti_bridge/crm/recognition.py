"""Caller recognition: each inbound call's caller looked up in the CRM beside the call path.

The call pipeline tells this module three things (see `CallPipeline`): a call's ticket was
opened, a pop is about to go out, the call ended. Nothing the pipeline does waits for the CRM:
a pop goes out with what is known at that moment (a cached answer, else `crm_status: pending`)
and, when the answer comes, the ticket keeps it, a `caller_enriched` notice goes to
`tickets/{number}` and every agent already popped for the call gets an `enriched` pop.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from cti_bridge.calls.model import Call, CallKey
from cti_bridge.crm.service import CrmService
from cti_bridge.screenpop.outputs import OutboundMessage, Publisher
from cti_bridge.screenpop.payload import CrmInfo, screen_pop, ticket_message
from cti_bridge.store import Store
from cti_bridge.store import crm as crm_answers
from cti_bridge.tickets.crm import CallerCrm, CrmLookup, CrmNaming, CrmStatus, crm_naming
from cti_bridge.tickets.model import TicketSummary
from cti_bridge.tickets.service import TicketForCall

log = structlog.get_logger(__name__)

_OFF = CallerCrm(CrmStatus.OFF)


@dataclass(eq=False, slots=True)
class _Watch:
    """One call whose caller is being (or was) looked up."""

    phone: str
    call: Call  # as last seen by a pop
    opened: TicketForCall  # likewise
    state: CallerCrm
    naming: CrmNaming | None = None
    popped: dict[str, bool] = field(default_factory=dict)  # agent -> their last pop had the answer
    ended: bool = False
    done: bool = False


class CallerRecognition:
    """The pipeline's hook into the CRM. Its lookups run as tasks of `run()`'s TaskGroup."""

    def __init__(
        self, crm: CrmService, store: Store, publisher: Publisher, clock: Callable[[], float] = time.time
    ) -> None:
        self._crm = crm
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._watching: dict[CallKey, _Watch] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._numbers = itertools.count(1)

    @property
    def watching(self) -> int:
        return len(self._watching)

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                await asyncio.Future()  # until cancelled; the TaskGroup then cancels the lookups
        finally:
            self._tasks = None

    # -- the pipeline's hooks (plain calls: they never wait) -------------------------------

    def call_opened(self, call: Call, opened: TicketForCall) -> None:
        """A call's ticket is known: look its caller up (a kept answer is used at once)."""
        phone = opened.caller_e164
        if phone is None or call.key in self._watching or self._tasks is None:
            return
        hit = self._crm.cached(phone)
        watch = _Watch(phone, call, opened, CallerCrm.of(hit) if hit else CallerCrm(CrmStatus.PENDING))
        if hit is not None:
            watch.naming = crm_naming(opened.ticket, hit.profile)
        self._watching[call.key] = watch
        self._spawn(self._recognise(watch), f"crm-call-{next(self._numbers)}")

    def popping(
        self, event: str, agent_id: str, call: Call, opened: TicketForCall
    ) -> tuple[TicketForCall, CallerCrm]:
        """A pop for `agent_id` is being built: the ticket as the CRM named it, and the CRM state.

        A withdrawn pop (`cancelled`) takes the agent off the list the CRM's answer goes to.
        """
        watch = self._watching.get(call.key)
        if watch is None:
            return opened, _OFF
        watch.call, watch.opened = call, opened
        if event == "cancelled":
            watch.popped.pop(agent_id, None)
        else:
            watch.popped[agent_id] = watch.state.final
        return _named(opened, watch.naming), watch.state

    def call_ended(self, call: Call) -> None:
        watch = self._watching.get(call.key)
        if watch is None:
            return
        watch.ended = True
        if watch.done:
            del self._watching[call.key]

    # -- the lookup's own task ----------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        assert self._tasks is not None
        self._tasks.create_task(work, name=name)

    async def _recognise(self, watch: _Watch) -> None:
        key = watch.call.key
        with structlog.contextvars.bound_contextvars(call=str(key), ticket=watch.opened.ticket.number):
            try:
                lookup = watch.state.lookup if watch.state.final else await self._crm.lookup(watch.phone)
                watch.state = CallerCrm.of(lookup)
                if lookup is not None:
                    if watch.naming is None:
                        watch.naming = crm_naming(watch.opened.ticket, lookup.profile)
                    await self._keep(watch, lookup)
                self._enrich_pops(watch)
            except Exception:
                # Whatever went wrong here stays here: the call, its ticket and pops go on.
                log.exception("crm.recognition_failed")
            finally:
                watch.done = True
                if watch.ended:
                    self._watching.pop(key, None)

    async def _keep(self, watch: _Watch, lookup: CrmLookup) -> None:
        """The answer on the ticket (and the ticket's caller renamed), then its notice."""
        ticket_id = watch.opened.ticket.id
        try:
            kept = await crm_answers.record_lookup(
                self._store.database, ticket_id, lookup, naming=watch.naming, at=self._clock()
            )
        except Exception:
            log.exception("crm.keep_failed")  # the pops still get the answer
            return
        if watch.naming is not None and not kept.renamed:
            watch.naming = None  # someone gave the ticket a customer or a subject meanwhile
        if not kept.changed and not kept.renamed:
            return  # the same answer as this ticket's last call had
        log.info("ticket.caller_enriched", found=lookup.found, renamed=kept.renamed)
        info = CrmInfo.of(lookup)
        self._publisher.publish(
            ticket_message(
                "caller_enriched",
                kept.ticket,
                self._clock(),
                call=str(watch.call.key),
                crm_status=str(watch.state.status),
                crm=info.model_dump(mode="json") if info is not None else None,
                renamed=kept.renamed,
            )
        )

    def _enrich_pops(self, watch: _Watch) -> None:
        """Every agent popped before the answer was known gets the call's pop again, with it."""
        now = self._clock()
        opened = _named(watch.opened, watch.naming)
        for agent_id, had_it in list(watch.popped.items()):
            if had_it:
                continue
            payload = screen_pop(
                event="enriched",
                agent_id=agent_id,
                call=watch.call,
                caller_e164=watch.phone,
                ticket=opened.ticket,
                history=opened.history,
                created=opened.created,
                event_at=now,
                now=now,
                crm=watch.state,
            )
            self._publisher.publish(
                OutboundMessage(f"agents/{agent_id}/screenpop", payload.model_dump_json().encode())
            )
            watch.popped[agent_id] = True
            log.info("screenpop.sent", agent=agent_id, pop="enriched", crm=str(watch.state.status))


def _named(opened: TicketForCall, naming: CrmNaming | None) -> TicketForCall:
    """The call's ticket as the CRM named it, also where the caller's history lists it."""
    ticket = opened.ticket
    if naming is None or ticket.subject != naming.replaces_subject:
        return opened

    def renamed(entries: tuple[TicketSummary, ...]) -> tuple[TicketSummary, ...]:
        return tuple(replace(e, subject=naming.subject) if e.id == ticket.id else e for e in entries)

    history = opened.history
    return replace(
        opened,
        ticket=replace(ticket, caller_name=naming.caller_name, subject=naming.subject),
        history=replace(
            history,
            open_tickets=renamed(history.open_tickets),
            recent_tickets=renamed(history.recent_tickets),
        ),
    )
