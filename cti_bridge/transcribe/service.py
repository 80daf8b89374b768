"""Runs the durable transcription queue: claims jobs from the store, feeds the worker pool,
stores transcripts, announces them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import structlog

from cti_bridge.config.model import ModelConfig, TicketRule, TranscriptionConfig
from cti_bridge.screenpop.outputs import Publisher
from cti_bridge.screenpop.payload import ticket_message
from cti_bridge.store import Store, StoreUnavailable, TranscriptionJob, waiting_for_store
from cti_bridge.tickets.errors import TicketError
from cti_bridge.tickets.workflow import Workflow
from cti_bridge.transcribe.errors import TranscriptionFailed, WorkerCrashed
from cti_bridge.transcribe.pool import WorkerPool

log = structlog.get_logger(__name__)

_POLL_SECONDS = 5.0  # also catches jobs queued by another daemon or freed by an expired lease
_RETRY_SECONDS = (5.0, 30.0, 120.0)


def model_path(model: ModelConfig) -> Path:
    """Directory of a Vosk model given by path or by a Python package that ships one."""
    if model.path is not None:
        return model.path
    assert model.package is not None
    return Path(str(resources.files(model.package) / "model"))


def lease_owner() -> str:
    """host/pid/run: tells this daemon run's leases from a previous one on the same host."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def run_is_gone(owner: str) -> bool:
    """Whether the daemon run named by a `lease_owner()` string has certainly ended: it ran on
    this host and its process is gone (or is this process, which is a later run). Another host's
    run, or a live process with that pid, is left to its lease."""
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's live process
        return False
    return False


class TranscriptionService:
    """At most one job per worker in flight; each job's outcome is stored exactly once."""

    def __init__(
        self,
        store: Store,
        pool: WorkerPool,
        config: TranscriptionConfig,
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
        *,
        rules: Sequence[TicketRule] = (),
        workflow: Workflow | None = None,
    ) -> None:
        self._store = store
        self._rules = rules if workflow is not None else ()
        self._workflow = workflow
        self._pool = pool
        self._config = config
        self._publisher = publisher
        self._clock = clock
        self._models = {language: str(model_path(m)) for language, m in config.models.items()}
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(config.workers)
        self.owner = lease_owner()
        self.completed = 0

    def jobs_queued(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        await self._requeue_jobs_of_gone_runs()
        try:
            async with asyncio.TaskGroup() as tasks:
                while True:
                    await self._slots.acquire()
                    try:
                        job = await self._claim()
                    except StoreUnavailable as exc:
                        # A full disk or a lock held elsewhere: the jobs wait in the store.
                        log.warning("transcription.claim_failed", error=exc.reason, retry_in=_POLL_SECONDS)
                        job = None
                    if job is None:
                        self._slots.release()
                        self._wakeup.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wakeup.wait(), _POLL_SECONDS)
                        continue
                    tasks.create_task(self._run_job(job), name=f"transcription-job-{job.id}")
        finally:
            # Jobs cut short by a stop go back to the queue at once, not after the lease.
            released = await asyncio.shield(self._store.release_jobs(self.owner))
            if released:
                log.info("transcription.released_on_stop", jobs=released)

    async def _requeue_jobs_of_gone_runs(self) -> None:
        """Jobs that an earlier run on this host was running when it was killed go back to the
        queue now, not when their lease runs out (30 minutes by default)."""
        for owner in await self._store.running_job_owners():
            if owner != self.owner and run_is_gone(owner):
                jobs = await self._store.requeue_jobs_of(owner)
                log.warning("transcription.requeued_after_crash", owner=owner, jobs=jobs)

    async def _claim(self) -> TranscriptionJob | None:
        return await self._store.claim_job(self.owner, self._clock(), self._config.lease.total_seconds())

    async def _run_job(self, job: TranscriptionJob) -> None:
        try:
            # A transcript is hard won: its write waits for a full or locked store to take it.
            with (
                waiting_for_store(),
                structlog.contextvars.bound_contextvars(job_id=job.id, ticket=job.ticket_number),
            ):
                await self._attempt(job)
        finally:
            self._slots.release()
            self._wakeup.set()

    async def _attempt(self, job: TranscriptionJob) -> None:
        model = self._models.get(job.language)
        if model is None:
            await self._failed(job, f"no model configured for language {job.language!r}", permanent=True)
            return
        try:
            result = await self._pool.transcribe(job.id, job.local_path, model, job.language)
        except TranscriptionFailed as exc:
            await self._failed(job, exc.reason, permanent=exc.permanent)
            return
        except WorkerCrashed as exc:
            await self._failed(job, f"worker crashed: {exc.reason}", permanent=False)
            return
        payload = dataclasses.asdict(result)
        now = self._clock()
        if not await self._store.complete_job(job, self.owner, payload, now):
            log.warning("transcription.lease_lost", note="another worker owns the job now")
            return
        self.completed += 1
        log.info(
            "transcription.done",
            seconds=round(result.duration_seconds, 2),
            elapsed=round(result.elapsed_seconds, 2),
            words=len(result.words),
        )
        await self._apply_rules(job, result.text, now)
        ticket = await self._store.get_ticket(job.ticket_id)
        self._publisher.publish(
            ticket_message(
                "transcribed",
                ticket,
                now,
                recording_id=job.recording_id,
                language=job.language,
                text=result.text,
                duration_seconds=result.duration_seconds,
            )
        )

    async def _apply_rules(self, job: TranscriptionJob, transcript: str, now: float) -> None:
        """Keyword and regex rules read the transcript (the ticket's category, priority and
        extracted fields). The transcript is stored already: a rule the workflow refuses
        (an extracted value that is no valid field value, say) is logged and changes nothing."""
        if not self._rules or self._workflow is None or not transcript:
            return
        try:
            decision = await self._store.revise_by_rules(
                job.ticket_id, transcript=transcript, rules=self._rules, workflow=self._workflow, at=now
            )
        except TicketError as exc:
            log.warning("ticket.rules_refused", ticket=job.ticket_number, error=str(exc))
            return
        if decision is not None:
            log.info("ticket.rules_applied", ticket=job.ticket_number, why=decision.reason)

    async def _failed(self, job: TranscriptionJob, reason: str, *, permanent: bool) -> None:
        retry_at = None
        if not permanent and job.attempts < self._config.max_attempts:
            backoff = _RETRY_SECONDS[min(job.attempts - 1, len(_RETRY_SECONDS) - 1)]
            # A crashed worker is replaced at once: retry the job straight away the first time.
            retry_at = self._clock() + (0.0 if job.attempts == 1 else backoff)
        await self._store.fail_job(job, self.owner, reason, retry_at=retry_at, at=self._clock())
        log.warning(
            "transcription.failed",
            reason=reason,
            attempts=job.attempts,
            will_retry=retry_at is not None,
        )
        if retry_at is None:
            ticket = await self._store.get_ticket(job.ticket_id)
            self._publisher.publish(
                ticket_message(
                    "transcription_failed",
                    ticket,
                    self._clock(),
                    recording_id=job.recording_id,
                    reason=reason,
                )
            )
