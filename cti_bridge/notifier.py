"""The notifier: drains the notification outbox to `agents/<id>/notifications`."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable

import structlog

from cti_bridge.screenpop.outputs import Publisher
from cti_bridge.screenpop.payload import notification_message
from cti_bridge.store import notifications
from cti_bridge.store.database import Database, StoreUnavailable

log = structlog.get_logger(__name__)


class Notifier:
    """Publishes queued notifications, oldest first, and marks them sent.

    Delivery is at least once, up to the publisher: a row is marked sent only after its
    message was handed to the publisher, so a crash in between sends it again after the
    restart (clients tell repeats by the notification's `id`). Once handed over, a message
    lives in the publisher's memory until the broker has it; with `connected`, rows are only
    handed over while the broker is there, so an outage leaves them in the outbox, not in a
    memory queue that a stop would lose.
    """

    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        *,
        connected: asyncio.Event | None = None,
        poll_every: float = 5.0,
        batch: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """
        Args:
            db: the store holding the outbox.
            publisher: where the messages go.
            connected: set while the broker is reachable (MqttPublisher.connected); None = always.
            poll_every: the longest sleep, in seconds: other processes (the CLI) queue rows too
                and cannot call `wake`.
            batch: rows read per statement.
            clock: now, in epoch seconds.
        """
        self._db = db
        self._publisher = publisher
        self._connected = connected
        self._poll_every = poll_every
        self._batch = batch
        self._clock = clock
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Notifications were queued: send them now rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            self._wakeup.clear()
            if self._connected is not None:
                await self._connected.wait()
            try:
                await self.drain()
            except (
                sqlite3.OperationalError,
                StoreUnavailable,
            ) as exc:  # locked or busy past the timeout: next poll
                log.warning("notifier.drain_failed", error=str(exc), retry_in=self._poll_every)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_every)

    async def drain(self) -> int:
        """Hand every queued notification to the publisher; returns how many."""
        sent = 0
        while True:
            if self._connected is not None and not self._connected.is_set():
                return sent
            rows = await notifications.pending(self._db, self._batch)
            if not rows:
                return sent
            for row in rows:
                if not _topic_safe(row.recipient):
                    log.warning("notifier.bad_recipient", id=row.id, recipient=row.recipient)
                    continue  # marked sent below: no topic can ever carry it
                self._publisher.publish(
                    notification_message(
                        id=row.id,
                        recipient=row.recipient,
                        kind=row.kind,
                        ticket_number=row.ticket_number,
                        title=row.title,
                        body=row.body,
                        data=dict(row.data),
                        created_at=row.created_at,
                    )
                )
            await notifications.mark_sent(self._db, [row.id for row in rows], self._clock())
            sent += len(rows)
            log.info("notifier.sent", count=len(rows))


def _topic_safe(user: str) -> bool:
    """A user id can be one level of a topic: `user:<id>` recipients in the config are free text,
    and a wildcard in a published topic would fail the publisher's whole connection."""
    return bool(user) and not any(c in user for c in "/+#\0")
