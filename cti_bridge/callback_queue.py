"""Callback tickets nobody could take when their call ended wait in a team queue; as agents
resolve tickets their loads fall, and the queue is offered to them again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

import structlog

from cti_bridge.screenpop.outputs import Publisher
from cti_bridge.screenpop.payload import ticket_message
from cti_bridge.store import Store
from cti_bridge.tickets.dispatch import Availability, CallbackPolicy, dispatch_order

log = structlog.get_logger(__name__)

_OFFERED_AT_ONCE = 200  # the oldest queued callbacks looked at in one pass


class CallbackQueue:
    """Every `every` seconds, offers the queued callback tickets to the agents again: urgent
    queues first, then by priority and age (tickets.dispatch.dispatch_order)."""

    def __init__(
        self,
        store: Store,
        policy: CallbackPolicy,
        publisher: Publisher,
        *,
        urgent_queues: tuple[str, ...],
        every: float,
        notifications_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        away: Callable[[], Mapping[str, Availability]] = dict,
    ) -> None:
        self._store = store
        self._policy = policy
        self._publisher = publisher
        self._urgent_queues = urgent_queues
        self._every = every
        self._notifications_queued = notifications_queued
        self._clock = clock
        self._away = away  # agents the queues say are paused or logged off, now

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.offer()
            except Exception:
                # A store error (a locked file, a full disk) must not stop the daemon: the
                # tickets stay queued and the next pass offers them again.
                log.exception("callback.queue_pass_failed")

    async def offer(self) -> int:
        """One pass over the queue; how many tickets found an agent."""
        now = self._clock()
        waiting = await self._store.queued_callbacks(_OFFERED_AT_ONCE)
        placed = 0
        for queued in dispatch_order(waiting, self._urgent_queues):
            done = await self._store.offer_callback_again(
                queued.id,
                self._policy.dispatcher,
                at=now,
                response_since=now - self._policy.response_window,
                away=self._away(),
            )
            if done is None:
                continue
            placed += 1
            log.info("callback.taken_from_queue", ticket=queued.number, assignee=done.assignee)
            self._publisher.publish(
                ticket_message("callback", done.ticket, now, outcome="assigned", assignee=done.assignee)
            )
        if placed:
            self._notifications_queued()
        return placed
