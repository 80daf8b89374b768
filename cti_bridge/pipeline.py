"""The event path: AMI frames -> domain events -> call tracking -> tickets, pops, recordings, callbacks."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from cti_bridge.ami.client import AmiFrame
from cti_bridge.ami.mapping import MalformedEvent, map_message
from cti_bridge.calls import events as ev
from cti_bridge.calls.agents import AgentDirectory
from cti_bridge.calls.model import (
    AgentAnswered,
    AgentRang,
    AgentRingStopped,
    Call,
    CallEnded,
    CallKey,
    CallQualified,
    CallUpdate,
    DialplanReported,
    Direction,
    Outcome,
    RecordingAnnounced,
    Transferred,
)
from cti_bridge.calls.presence import AgentPresence, AgentStatus
from cti_bridge.calls.tracker import CallTracker
from cti_bridge.calls.user_events import UserEventRules
from cti_bridge.crm.recognition import CallerRecognition
from cti_bridge.recordings import RecordingService
from cti_bridge.screenpop.outputs import OutboundMessage, Publisher
from cti_bridge.screenpop.payload import (
    PopEvent,
    agent_state_message,
    callback_message,
    screen_pop,
    ticket_message,
)
from cti_bridge.store import Store, waiting_for_store
from cti_bridge.tickets.dispatch import Availability, CallbackPolicy
from cti_bridge.tickets.model import CSAT_SCORES
from cti_bridge.tickets.prefill import dialplan_fields
from cti_bridge.tickets.service import TicketForCall, TicketService, answered_by
from cti_bridge.tickets.workflow import Workflow

log = structlog.get_logger(__name__)


# How far back a starting daemon looks for calls whose callback it never dispatched.
_LEFT_OVER_CALLBACKS = 24 * 3600.0


class CallPipeline:
    """Reads the PBXs' events in arrival order; works each caller's calls in order.

    Mapping and call tracking run on one consumer in arrival order: they are pure and
    take microseconds. What a call's updates then do waits on the store (a ticket is a
    few indexed statements, each a round trip to the database thread), so that work runs
    in a lane per caller: one caller's calls stay in order, so a repeat call finds the
    ticket the first one opened, while different callers' round trips overlap instead of
    queueing one behind another. A customer calling from two numbers at the same moment
    gets two lanes, and so may get two tickets. Pops that need nothing from the store go
    out from the consumer itself, ahead of their lane.
    """

    def __init__(
        self,
        tracker: CallTracker,
        tickets: TicketService,
        store: Store,
        recordings: RecordingService,
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
        callbacks: CallbackPolicy | None = None,
        notifications_queued: Callable[[], None] = lambda: None,
        user_events: UserEventRules | None = None,
        workflow: Workflow | None = None,
        reassign_on_transfer: bool = True,
        presence: AgentPresence | None = None,
        recognition: CallerRecognition | None = None,
        backlog_limit: int = 10_000,
    ) -> None:
        """`callbacks`: how missed, abandoned and after-hours calls are dispatched; None: they are not.
        `recognition`: the CRM lookup of inbound callers; None: no CRM configured.
        `backlog_limit`: call updates kept waiting for the store at most (store.backlog_limit)."""
        self._tracker = tracker
        self._tickets = tickets
        self._store = store
        self._recordings = recordings
        self._publisher = publisher
        self._clock = clock
        self._callbacks = callbacks
        self._notifications_queued = notifications_queued  # a dispatch wrote to the outbox
        self._user_events = user_events or UserEventRules()
        self._workflow = workflow  # None: what the dialplan reports later is not written
        self._reassign_on_transfer = reassign_on_transfer
        self._ending: set[CallKey] = set()  # calls whose end waits in a lane
        self.presence = presence or AgentPresence(AgentDirectory(()))
        self._recognition = recognition
        self._queue: asyncio.Queue[AmiFrame | ev.CallEvent] = asyncio.Queue()
        self._started = asyncio.Event()  # run() has done its start-up work and reads the queue
        self._open: dict[CallKey, TicketForCall] = {}
        self._answered_by: dict[CallKey, str] = {}  # answers this session popped
        self._handlers: dict[type, Callable[[Any, float, bool], Awaitable[None]]] = {
            CallQualified: self._on_call_qualified,
            AgentRang: self._on_agent_rang,
            AgentRingStopped: self._on_ring_stopped,
            AgentAnswered: self._on_agent_answered,
            Transferred: self._on_transferred,
            DialplanReported: self._on_dialplan_reported,
            RecordingAnnounced: self._on_recording_announced,
            CallEnded: self._on_call_ended,
            SurveyAnswered: self._on_survey_answered,
        }
        self._lanes: dict[str, deque[_Work]] = {}
        self._lane_of_call: dict[CallKey, str] = {}
        self._lane_group: asyncio.TaskGroup | None = None
        self._lane_numbers = itertools.count(1)
        self._updates_pending = 0
        self._lanes_idle = asyncio.Event()
        self._lanes_idle.set()
        self._backlog_limit = backlog_limit
        self._backlog_full_since: float | None = None
        self.events_seen = 0
        self.malformed = 0
        self.failed = 0
        self.dropped = 0  # call updates refused because the backlog was full

    @property
    def backlog(self) -> int:
        """Call updates waiting in the lanes (for the store, mostly)."""
        return self._updates_pending

    @property
    def live_calls(self) -> list[Call]:
        """The calls in progress now, as the tracker sees them."""
        return self._tracker.live_calls

    def submit(self, item: AmiFrame | ev.CallEvent) -> None:
        """The AMI sink: enqueue only (called from inside the protocol's data_received)."""
        self._queue.put_nowait(item)

    async def run(self) -> None:
        try:
            await self._call_back_left_over()
        except Exception:
            # The calls stay undispatched in the store: the next start looks for them again.
            log.exception("callback.left_over_failed")
        self._started.set()
        async with asyncio.TaskGroup() as lanes:  # cancelling run() cancels the lanes too
            self._lane_group = lanes
            while True:
                item = await self._queue.get()
                try:
                    await self.process(item)
                except Exception:
                    # A bug or a store error on one event must not stop the PBXs' event stream;
                    # the next resync reconciles whatever this event would have changed.
                    self.failed += 1
                    log.exception("pipeline.event_failed", item=type(item).__name__)
                finally:
                    self._queue.task_done()

    async def drain(self) -> None:
        """Wait until everything submitted so far has been processed, lanes included."""
        await self._started.wait()
        while True:
            await self._queue.join()
            await self._lanes_idle.wait()
            if self._queue.empty():
                return

    async def stop_tracking(self, grace: float = 10.0) -> int:
        """At a stop, once no more events come: process what is queued, then give each live
        call without a ticket yet its ticket (`CallTracker.open_unrouted`), so nothing the
        daemon knew of is forgotten if the call ends before the next start. Bounded like
        `drain_for_stop` while the store refuses writes; returns the call updates left undone."""
        if left := await self.drain_for_stop(grace):
            return left
        now = self._clock()
        for update in self._tracker.open_unrouted():
            if self._tickets.tracks(update.call):
                self._to_lane(_Work(update, now))
        return await self.drain_for_stop(grace)

    async def drain_for_stop(self, grace: float = 10.0) -> int:
        """drain(), unless the store refuses writes for `grace` seconds on end: a stop must not
        wait for an operator to free the disk. Returns how many call updates were left
        undone (0 when drained); what is left is logged as an error, and lost."""
        database = self._store.database
        stopping_since = time.time()
        drained = asyncio.create_task(self.drain(), name="call-pipeline-drain")
        try:
            while True:
                done, _ = await asyncio.wait({drained}, timeout=min(1.0, grace))
                if done:
                    drained.result()
                    return 0
                failing_since = database.write_health.failing_since
                # Failing since before the stop counts from the stop: the retries get `grace`.
                if failing_since is not None and time.time() - max(failing_since, stopping_since) >= grace:
                    log.error(
                        "pipeline.stopped_with_backlog",
                        backlog=self._updates_pending,
                        store_error=database.write_health.last_error,
                        note="the store refused writes; these call updates are lost",
                    )
                    return self._updates_pending
        finally:
            drained.cancel()

    async def process(self, item: AmiFrame | ev.CallEvent) -> None:
        self.events_seen += 1
        if isinstance(item, AmiFrame):
            try:
                event = map_message(item.pbx, item.message, item.received_at)
            except MalformedEvent as exc:
                self.malformed += 1
                log.warning("ami.malformed_event", pbx=item.pbx, error=str(exc))
                return
            if event is None:
                return
        else:
            event = item
        if isinstance(event, ev.PbxDisconnected):
            return
        if isinstance(event, ev.QueueMemberChanged | ev.QueueMembersListed):
            self._agent_states(event)
            return
        if isinstance(event, ev.UserEventReceived):
            self._user_event(event)
        for update in self._tracker.handle(event):
            if self._tickets.tracks(update.call):
                popped = self._pop_at_once(update, event.at)
                self._to_lane(_Work(update, event.at, popped))
        if isinstance(event, ev.LiveChannelsListed):
            await self._close_calls_ended_while_away(event)

    # -- lanes -------------------------------------------------------------------

    def _to_lane(self, work: _Work) -> None:
        if self._updates_pending >= self._backlog_limit:
            self._drop(work)
            return
        if self._backlog_full_since is not None:
            log.warning(
                "pipeline.backlog_accepting_again", dropped=self.dropped, pending=self._updates_pending
            )
            self._backlog_full_since = None
        update = work.update
        if isinstance(update, SurveyAnswered):
            # Behind the call's own updates while the call is live (the caller is still on the
            # line in the survey); once it has ended, its ticket is in the store and found by
            # (pbx, linkedid), so a lane of its own will do.
            lane = self._lane_of_call.get(update.key) or f"call:{update.key}"
        else:
            call = update.call
            # A call keeps the lane it started in, whatever its later updates say.
            lane = self._lane_of_call.get(call.key) or _caller_lane(call)
            if isinstance(update, CallEnded):
                self._lane_of_call.pop(call.key, None)
                self._ending.add(call.key)
            else:
                self._lane_of_call[call.key] = lane
        self._updates_pending += 1
        self._lanes_idle.clear()
        waiting = self._lanes.get(lane)
        if waiting is not None:
            waiting.append(work)
            return
        assert self._lane_group is not None, "CallPipeline.run() owns the lanes"
        waiting = self._lanes[lane] = deque([work])
        self._lane_group.create_task(
            self._work_lane(lane, waiting), name=f"call-lane-{next(self._lane_numbers)}"
        )

    def _drop(self, work: _Work) -> None:
        """The backlog is full (the store has refused writes for a long while, or cannot keep
        up): the update is lost, and said so loudly. It is not spilled to a file: the store's
        disk is the one that is full, and a second disk's spill would need every domain update
        serialised and replayed at the next start, to save calls only past `backlog_limit`
        updates of outage. What the lanes hold already is kept: a call's update that made it
        in still gets its ticket (the call handlers open it when it is missing)."""
        self.dropped += 1
        now = time.monotonic()
        if self._backlog_full_since is None or self.dropped % 1000 == 1:
            log.error(
                "pipeline.backlog_full",
                call=str(work.call_key),
                update=type(work.update).__name__,
                limit=self._backlog_limit,
                dropped=self.dropped,
                store_error=self._store.database.write_health.last_error,
                hint="updates are dropped until the store takes writes again (store.backlog_limit)",
            )
        if self._backlog_full_since is None:
            self._backlog_full_since = now

    async def _work_lane(self, lane: str, waiting: deque[_Work]) -> None:
        try:
            # A write the store refuses for a passing reason (full disk, a lock held by another
            # process) waits and is retried here, so this caller's updates stay in order and the
            # ones arriving meanwhile wait in `waiting` (bounded by backlog_limit in total).
            with waiting_for_store():
                while waiting:
                    work = waiting.popleft()
                    try:
                        await self._apply(work)
                    finally:
                        if isinstance(work.update, CallEnded):
                            self._ending.discard(work.call_key)
                        self._updates_pending -= 1
                        if self._updates_pending == 0:
                            self._lanes_idle.set()
        finally:
            # Nothing awaits between the empty check and here: a new update for this
            # caller either made it into `waiting` or will start a new lane.
            del self._lanes[lane]

    async def _apply(self, work: _Work) -> None:
        update = work.update
        with structlog.contextvars.bound_contextvars(call=str(work.call_key)):
            try:
                await self._handlers[type(update)](update, work.event_at, work.popped)
            except Exception:
                # One call's failure (a store error, say) must not stop the others.
                self.failed += 1
                log.exception("pipeline.update_failed", update=type(update).__name__)
            finally:
                structlog.contextvars.unbind_contextvars("ticket")  # bound by the handler

    # -- handlers --------------------------------------------------------------

    async def _on_call_qualified(self, update: CallQualified, event_at: float, _popped: bool) -> None:
        opened = await self._tickets.open_for_call(update.call)
        self._open[update.call.key] = opened
        if self._recognition is not None:  # the CRM lookup starts now; nothing here waits for it
            self._recognition.call_opened(update.call, opened)
        ticket = opened.ticket
        structlog.contextvars.bind_contextvars(ticket=ticket.number)
        if opened.created:
            log.info(
                "ticket.created",
                caller=opened.caller_e164,
                queue=ticket.queue,
                category=ticket.category,
                priority=ticket.priority,
                rule=ticket.rule,
            )
            self._notify("created", ticket, event_at, call=str(update.call.key))
        elif opened.attached:
            log.info("ticket.call_attached", caller=opened.caller_e164)
            self._notify("call_attached", ticket, event_at, call=str(update.call.key))
        for path in update.call.recordings:
            await self._recordings.announced(update.call, path)

    async def _on_agent_rang(self, update: AgentRang, event_at: float, popped: bool) -> None:
        if not popped:
            opened = await self._ticket_for(update.call)
            self._pop(_rang_pop(update.call), update.agent_id, update.call, opened, event_at)
        await self._tickets.agent_rang(update.call)

    async def _on_ring_stopped(self, update: AgentRingStopped, event_at: float, popped: bool) -> None:
        if not popped:
            opened = await self._ticket_for(update.call)
            self._pop("cancelled", update.agent_id, update.call, opened, event_at, reason=str(update.why))

    async def _on_transferred(self, update: Transferred, event_at: float, _popped: bool) -> None:
        await self._ticket_for(update.call)
        ticket = await self._store.record_transfer(update.call, update.transfer)
        if ticket is None:
            return
        transfer = update.transfer
        log.info(
            "call.transferred",
            kind=str(transfer.kind),
            from_agent=transfer.from_agent,
            to_agent=transfer.to_agent,
            queue=transfer.to_queue,
        )
        self._notify(
            "transferred",
            ticket,
            event_at,
            call=str(update.call.key),
            kind=str(transfer.kind),
            from_agent=transfer.from_agent,
            to_agent=transfer.to_agent,
            queue=transfer.to_queue,
        )

    async def _on_dialplan_reported(self, update: DialplanReported, event_at: float, _popped: bool) -> None:
        call = update.call
        if self._workflow is None:
            return
        await self._ticket_for(call)
        values = dialplan_fields(call)
        ticket = await self._store.record_dialplan_fields(call, values, workflow=self._workflow, at=event_at)
        if ticket is not None:
            self._notify("fields_reported", ticket, event_at, call=str(call.key), fields=sorted(values))

    async def _on_agent_answered(self, update: AgentAnswered, event_at: float, popped: bool) -> None:
        call, agent_id = update.call, update.agent_id
        opened = await self._ticket_for(call)  # known already when the pop went out at once
        if not popped:
            popped = self._pop_answer(call, agent_id, event_at, opened)
        ticket = await self._tickets.agent_answered(call, agent_id, event_at)
        if ticket is None:
            return  # already recorded: a resync re-reporting an answered call, no second pop
        transfer = call.transfers[-1] if call.transfers else None
        if transfer is not None and transfer.to_agent == agent_id and self._reassign_on_transfer:
            handed = await self._store.hand_over(call, agent_id, event_at)
            if handed is not None:
                ticket, left = handed
                self._notifications_queued()
                log.info("ticket.handed_over", agent=agent_id, left=left, kind=str(transfer.kind))
                # The first agent's desk drops the pop: the caller and the ticket left them.
                self._pop(
                    "cancelled", left, call, replace(opened, ticket=ticket), event_at, reason="transferred"
                )
        if not popped:
            # A call known from before a restart or reconnect: only the store could tell
            # that this answer had not been popped yet.
            opened = self._open[call.key] = replace(opened, ticket=ticket)
            self._pop("answered", agent_id, call, opened, event_at)
        self._notify("call_answered", ticket, event_at, agent_id=agent_id)

    async def _on_recording_announced(
        self, update: RecordingAnnounced, _event_at: float, _popped: bool
    ) -> None:
        await self._ticket_for(update.call)
        await self._recordings.announced(update.call, update.path)

    async def _on_call_ended(self, update: CallEnded, event_at: float, _popped: bool) -> None:
        call = update.call
        self._answered_by.pop(call.key, None)
        if self._recognition is not None:
            self._recognition.call_ended(call)
        opened = self._open.pop(call.key, None) or await self._tickets.open_for_call(call)
        if not await self._tickets.call_ended(call, event_at):
            return  # recorded before: a resync or a restart telling the same end again
        log.info(
            "call.ended",
            outcome=str(call.outcome),
            agent=call.agent_id,
            ring_seconds=_round(call.ring_seconds),
            talk_seconds=_round(call.talk_seconds),
            cause=call.hangup_cause_text,
        )
        self._notify(
            "call_ended",
            opened.ticket,
            event_at,
            call=str(call.key),
            outcome=str(call.outcome),
            agent_id=call.agent_id,
            talk_seconds=_round(call.talk_seconds),
        )
        self._recordings.call_ended(call)
        await self._call_back(call, opened, event_at)

    async def _call_back_left_over(self) -> None:
        """Dispatch the callbacks of calls that ended while the last run was stopping (their end
        recorded, their dispatch not). The agent learns of them from the notification outbox."""
        policy = self._callbacks
        if policy is None:
            return
        now = self._clock()
        for key, reason in await self._store.calls_awaiting_callback(now - _LEFT_OVER_CALLBACKS):
            done = await self._store.assign_callback(
                key,
                reason,
                policy.dispatcher,
                at=now,
                response_since=now - policy.response_window,
                away=self.agents_away(),
            )
            if done is not None:
                self._notifications_queued()
                log.info("callback.dispatched_late", call=str(key), assignee=done.assignee)
                self._notify("callback", done.ticket, now, call=str(key), reason=str(reason))

    async def _call_back(self, call: Call, opened: TicketForCall, event_at: float) -> None:
        """A call nobody answered (or after hours): its ticket goes to whoever is to call back,
        and their screen shows it."""
        policy = self._callbacks
        reason = policy.reason(call) if policy is not None else None
        if policy is None or reason is None:
            return
        on_call = {c.agent_id for c in self._tracker.live_calls if c.agent_id and c.answered_at is not None}
        done = await self._store.assign_callback(
            call.key,
            reason,
            policy.dispatcher,
            at=event_at,
            response_since=event_at - policy.response_window,
            on_call=on_call,
            away=self.agents_away(),
        )
        if done is None:
            return  # dispatched before (a resync or restart re-reporting the end), or closed
        self._notifications_queued()
        outcome = str(done.assignment.outcome) if done.assignment is not None else "kept"
        log.info(
            "callback.dispatched",
            reason=str(reason),
            outcome=outcome,
            assignee=done.assignee,
            explanation=done.explanation,
        )
        self._notify(
            "callback",
            done.ticket,
            event_at,
            call=str(call.key),
            reason=str(reason),
            outcome=outcome,
            assignee=done.assignee,
        )
        if done.assignee is None:
            return  # left in a team queue: nobody's screen to show it on
        message = callback_message(
            agent_id=done.assignee,
            reason=reason,
            assigned=done.assignment is not None,
            explanation=done.explanation,
            call=call,
            caller_e164=opened.caller_e164,
            ticket=done.ticket,
            customer=opened.history.customer,
            dispatched_at=event_at,
            now=self._clock(),
        )
        self._publisher.publish(message)

    async def _on_survey_answered(self, update: SurveyAnswered, event_at: float, _popped: bool) -> None:
        key = update.key
        ticket = await self._store.record_csat(key.pbx, key.linkedid, update.score, event_at)
        if ticket is None:
            log.warning("csat.no_ticket", score=update.score, why="no ticket has this call")
            return
        structlog.contextvars.bind_contextvars(ticket=ticket.number)
        log.info("ticket.csat", score=update.score)
        self._notify("csat", ticket, event_at, call=str(key), score=update.score)

    async def _close_calls_ended_while_away(self, event: ev.LiveChannelsListed) -> None:
        """After a daemon restart the tracker cannot know calls that ended while we were
        down; the store can: its open calls that the PBX no longer lists are over."""
        live = {channel.linkedid for channel in event.channels}
        tracked = {call.key for call in self._tracker.live_calls}
        booted_at = self._tracker.booted_at(event.pbx)
        for open_call in await self._store.open_calls(event.pbx):
            key = CallKey(open_call.pbx, open_call.linkedid)
            # Tracked, or ended by this very resync and waiting in its lane: not ours to end.
            if open_call.linkedid in live or key in tracked or key in self._ending:
                continue
            ticket = await self._tickets.ticket(open_call.ticket_id)
            last_known = max(open_call.started_at, open_call.answered_at or 0.0)
            if booted_at is not None and last_known < booted_at:
                # The PBX restarted since: the call was cut by it. What we know of it ends
                # at its last recorded moment, not at our reconnect.
                ended_at, outcome = last_known, Outcome.INTERRUPTED
            else:
                ended_at = event.at
                outcome = Outcome.ANSWERED if open_call.answered_at else Outcome.LOST
            call = Call(
                key=key,
                direction=Direction(open_call.direction),
                caller_number=ticket.caller_number,
                caller_name=ticket.caller_name,
                did=ticket.did,
                queue=ticket.queue,
                started_at=open_call.started_at,
                answered_at=open_call.answered_at,
                agent_id=open_call.agent_id,
                placed_by=open_call.placed_by,
                ended_at=ended_at,
                outcome=outcome,
                recordings=open_call.recordings,
            )
            self._to_lane(_Work(CallEnded(call), event.at))

    def agents_away(self) -> dict[str, Availability]:
        """Agents the PBX's queues say are paused or logged out: no callbacks for them."""
        return {
            agent: Availability.PAUSED if status is AgentStatus.PAUSED else Availability.LOGGED_OFF
            for agent, status in self.presence.unavailable().items()
        }

    def _agent_states(self, event: ev.QueueMemberChanged | ev.QueueMembersListed) -> None:
        for state in self.presence.apply(event):
            log.info(
                "agent.state",
                agent=state.agent_id,
                status=str(state.status),
                queues=[m.queue for m in state.queues],
                reason=state.pause_reason or None,
            )
            self._publisher.publish(agent_state_message(state, self._clock()))

    def _user_event(self, event: ev.UserEventReceived) -> None:
        """Send a survey's score to its call's lane (a score that is not 1-5 is dropped), and say
        so when a UserEvent matched none of the site's mappings."""
        reading = self._user_events.read(event)
        if reading.empty:
            log.info(
                "user_event.unmatched",
                pbx=event.pbx,
                name=event.name,
                headers=[name for name, _ in event.fields],
                hint="map it under user_events: in the config if it means something",
            )
            return
        for survey in reading.surveys:
            key = CallKey(event.pbx, survey.linkedid)
            raw = survey.raw_score
            score = int(raw) if raw is not None and raw.strip().isdecimal() else None
            if score is None or score not in CSAT_SCORES:
                log.warning(
                    "csat.bad_score_ignored",
                    call=str(key),
                    score=raw,
                    expected=f"a {survey.mapping.score} header of 1-5 in UserEvent {survey.mapping.event}",
                )
                continue
            self._to_lane(_Work(SurveyAnswered(key, score), event.at))

    # -- pops -------------------------------------------------------------------

    def _pop_at_once(self, update: CallUpdate, event_at: float) -> bool:
        """Pop from the consumer itself when nothing is needed from the store: the call's
        ticket is known (and, for an answer, see `_pop_answer`). The agent's screen then
        never waits behind store work queued in the caller's lane. True if it popped."""
        opened = self._open.get(update.call.key)
        if opened is None:
            return False
        try:
            if isinstance(update, AgentRang):
                self._pop(_rang_pop(update.call), update.agent_id, update.call, opened, event_at)
                return True
            if isinstance(update, AgentRingStopped):
                self._pop("cancelled", update.agent_id, update.call, opened, event_at, reason=str(update.why))
                return True
            if isinstance(update, AgentAnswered):
                return self._pop_answer(update.call, update.agent_id, event_at, opened)
        except Exception:
            # The update still goes to its lane, which writes it and tries the pop again.
            log.exception("screenpop.failed", call=str(update.call.key))
        return False

    def _pop_answer(self, call: Call, agent_id: str, event_at: float, opened: TicketForCall) -> bool:
        """Pop an answer before it is written, when that is safe: this session recorded the
        call, so it knows of no earlier answer by this agent. True if it popped."""
        if not opened.attached or self._answered_by.get(call.key) == agent_id:
            return False
        self._answered_by[call.key] = agent_id
        opened = self._open[call.key] = replace(opened, ticket=answered_by(opened.ticket, agent_id, event_at))
        self._pop("answered", agent_id, call, opened, event_at)
        return True

    # -- helpers ----------------------------------------------------------------

    async def _ticket_for(self, call: Call) -> TicketForCall:
        opened = self._open.get(call.key)
        if opened is None:
            opened = self._open[call.key] = await self._tickets.open_for_call(call)
        structlog.contextvars.bind_contextvars(ticket=opened.ticket.number)
        return opened

    def _pop(
        self,
        event: PopEvent,
        agent_id: str,
        call: Call,
        opened: TicketForCall,
        event_at: float,
        reason: str | None = None,
    ) -> None:
        crm = None
        if self._recognition is not None:  # what the CRM said so far, and the ticket as it named it
            opened, crm = self._recognition.popping(event, agent_id, call, opened)
        payload = screen_pop(
            reason=reason,
            event=event,
            agent_id=agent_id,
            call=call,
            caller_e164=opened.caller_e164,
            ticket=opened.ticket,
            history=opened.history,
            created=opened.created,
            event_at=event_at,
            now=self._clock(),
            crm=crm,
        )
        self._publisher.publish(
            OutboundMessage(f"agents/{agent_id}/screenpop", payload.model_dump_json().encode())
        )
        log.info("screenpop.sent", agent=agent_id, pop=event, reason=reason)

    def _notify(self, event: str, ticket: Any, at: float, **data: Any) -> None:
        self._publisher.publish(ticket_message(event, ticket, at, **data))


@dataclass(frozen=True, slots=True)
class SurveyAnswered:
    """The caller scored the call `key` in the post-call survey (a mapped UserEvent)."""

    key: CallKey
    score: int


@dataclass(frozen=True, slots=True)
class _Work:
    """A call update on its way through a lane; `popped`: its pop already went out."""

    update: CallUpdate | SurveyAnswered
    event_at: float
    popped: bool = False

    @property
    def call_key(self) -> CallKey:
        return self.update.key if isinstance(self.update, SurveyAnswered) else self.update.call.key


def _rang_pop(call: Call) -> PopEvent:
    return "dialing" if call.direction is Direction.OUTBOUND else "ringing"


def _caller_lane(call: Call) -> str:
    digits = "".join(c for c in call.caller_number or "" if c.isdigit())
    # No usable number (withheld, "anonymous"): no ticket to share, so a lane of its own.
    return f"tel:{digits}" if len(digits) >= 3 else f"call:{call.key}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
