"""The SLA scheduler: fires each ticket's SLA warnings and escalations once, on time, across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from cti_bridge.config.model import Config
from cti_bridge.screenpop.outputs import OutboundMessage, Publisher
from cti_bridge.screenpop.payload import sla_message
from cti_bridge.store import sla as sla_store
from cti_bridge.store.database import Database, StoreUnavailable
from cti_bridge.store.sla import FiredSla, SlaSnapshot
from cti_bridge.tickets.kpi import sla_now
from cti_bridge.tickets.sla import (
    EscalationDue,
    SlaPlan,
    SlaPolicy,
    WarningDue,
    WatchedTicket,
    plan_sla,
)

log = structlog.get_logger(__name__)

# Sleep a little past a due instant: a timer that wakes a hair early would find nothing due yet.
_LATE = 0.05
# Wake-ups (ticket changes) come in bursts on a busy call path; one pass a second answers them
# all, instead of one read of every open ticket per change.
_WAKE_GAP = 1.0
# Passes in a row within one check: one more after each escalation that raised a priority, or
# after a ticket changed under a plan; bounded, in case tickets keep changing.
_MAX_ROUNDS = 4


@dataclass(frozen=True, slots=True)
class TeamDirectory:
    """Which team a ticket is escalated in: its assignee's, else the team holding unassigned ones.

    Tickets have no team of their own: an agent's comes from `agents[].team`, a supervisor's is
    the team they supervise, and an unassigned (or unknown) assignee's is `dispatch.default_team`.
    """

    by_user: Mapping[str, str]
    default: str | None = None

    @classmethod
    def from_config(cls, config: Config) -> TeamDirectory:
        by_user = {t.supervisor: t.name for t in config.teams if t.supervisor is not None}
        by_user |= {a.id: a.team for a in config.agents if a.team is not None}
        return cls(by_user, config.dispatch.default_team)

    def team_of(self, assignee: str | None) -> str | None:
        if assignee is not None and assignee in self.by_user:
            return self.by_user[assignee]
        return self.default


@dataclass(frozen=True, slots=True)
class SlaPass:
    """The outcome of one look at the open tickets."""

    fired: tuple[FiredSla, ...]
    wake_at: float | None  # when something next becomes due, unless a ticket changes first
    replan: bool  # some action was not written because its ticket changed meanwhile: look again


class SlaScheduler:
    """Reads the open tickets, plans with `plan_sla`, fires what is due, sleeps until the next due.

    Nothing is kept between passes but the store: every pass reads the open tickets and the
    marks already fired, so a restart (or a second daemon on the same file) just looks again,
    fires what was missed while it was down, and never fires a mark twice.
    """

    def __init__(
        self,
        db: Database,
        policy: SlaPolicy,
        publisher: Publisher,
        *,
        teams: TeamDirectory,
        recheck_every: float = 60.0,
        notifications_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """
        Args:
            db: the store (the scheduler's own connection, or the daemon's).
            policy: targets, warning, escalations, supervisors.
            publisher: where `tickets/<number>/sla` notices go.
            teams: which team's supervisor a ticket is escalated to.
            recheck_every: the longest sleep, in seconds: tickets changed by another process (the
                CLI) cannot call `wake`, and are seen at the next look.
            notifications_queued: called after a pass queued notifications (wakes the notifier).
            clock: now, in epoch seconds.
        """
        self._db = db
        self._policy = policy
        self._publisher = publisher
        self._teams = teams
        self._recheck_every = recheck_every
        self._notifications_queued = notifications_queued
        self._clock = clock
        self._wakeup = asyncio.Event()

    @classmethod
    def from_config(
        cls,
        config: Config,
        db: Database,
        publisher: Publisher,
        *,
        notifications_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> SlaScheduler:
        return cls(
            db,
            SlaPolicy.from_config(config),
            publisher,
            teams=TeamDirectory.from_config(config),
            recheck_every=config.sla.recheck_every.total_seconds(),
            notifications_queued=notifications_queued,
            clock=clock,
        )

    def wake(self) -> None:
        """A ticket changed (created, answered, paused, reprioritised): plan again soon."""
        self._wakeup.set()

    async def run(self) -> None:
        """Look, fire, sleep until the next due instant, a wake-up or `recheck_every`; forever."""
        loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()  # before reading: a change made during the pass wakes the next one
            started = loop.time()
            delay = self._recheck_every
            try:
                result = await self.check()
            except (
                sqlite3.OperationalError,
                StoreUnavailable,
            ) as exc:  # locked or busy past the timeout: try again later
                log.warning("sla.check_failed", error=str(exc), retry_in=delay)
            else:
                if result.wake_at is not None:
                    delay = min(delay, max(0.0, result.wake_at - self._clock()) + _LATE)
                if result.replan:
                    self._wakeup.set()
            if await self._sleep(delay):
                await asyncio.sleep(max(0.0, _WAKE_GAP - (loop.time() - started)))

    async def check(self) -> SlaPass:
        """One pass: read the open tickets, fire every due warning and escalation, say when to look again."""
        if not self._policy.targets:
            return SlaPass((), None, False)
        fired: list[FiredSla] = []
        for _ in range(_MAX_ROUNDS):
            snapshot = await sla_store.watched_tickets(self._db)
            now = self._clock()
            # Off the event loop: a few thousand tickets on a business calendar take a while.
            plan = await asyncio.to_thread(self._plan, snapshot, now)
            done, replan = await self._fire(plan, snapshot)
            fired += done
            if not replan:
                break
        if any(f.notified for f in fired):
            self._notifications_queued()
        return SlaPass(tuple(fired), plan.wake_at, replan)

    async def _fire(self, plan: SlaPlan, snapshot: SlaSnapshot) -> tuple[list[FiredSla], bool]:
        """Fire the plan's actions in order; True if some ticket must be planned again first."""
        versions = dict(snapshot.versions)
        fired: list[FiredSla] = []
        replan: set[int] = set()
        for action in plan.actions:
            ticket_id = action.mark.ticket_id
            if ticket_id in replan:
                continue
            done = await sla_store.fire(self._db, action, version=versions[ticket_id], at=self._clock())
            if done is None:  # the ticket changed since the snapshot (or the mark is there)
                log.info("sla.skipped", ticket_id=ticket_id, mark=action.mark.key)
                replan.add(ticket_id)
                continue
            versions[ticket_id] = done.version
            fired.append(done)
            # After the commit: a crash in between loses this notice, never the history events
            # or the outbox rows, which the notifier publishes.
            self._publisher.publish(_notice(done))
            log.info(
                "sla.fired",
                ticket=done.ticket.number,
                mark=action.mark.key,
                late_seconds=round(done.fired_at - action.at, 3),
                reason=action.reason,
            )
            if isinstance(action, EscalationDue) and action.priority_to != action.priority_from:
                # The rest of the plan counted this ticket's other target on the old priority's
                # target; a scheduler that never stopped would count it on the new one from now on.
                replan.add(ticket_id)
        return fired, bool(replan)

    def _plan(self, snapshot: SlaSnapshot, now: float) -> SlaPlan:
        watched = []
        for ticket in snapshot.tickets:
            sla = sla_now(ticket, policy=self._policy, now=now)
            watched.append(
                WatchedTicket(sla=sla, assignee=ticket.assignee, team=self._teams.team_of(ticket.assignee))
            )
        return plan_sla(watched, policy=self._policy, fired=snapshot.fired, now=now)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if woken by `wake` before."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)
            return True
        return False


def _notice(done: FiredSla) -> OutboundMessage:
    action = done.action
    fired = {
        "ticket": done.ticket,
        "target": str(action.mark.target),
        "reached_at": action.at,
        "fired_at": done.fired_at,
        "notify": list(done.notified),
        "reason": action.reason,
    }
    if isinstance(action, WarningDue):
        return sla_message(event="sla_warning", due_at=action.due_at, **fired)
    return sla_message(
        event="sla_breached",
        due_at=action.at,
        priority_from=action.priority_from,
        priority_to=action.priority_to,
        reassigned_to=action.reassign_to,
        **fired,
    )
