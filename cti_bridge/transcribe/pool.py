"""A pool of Vosk worker processes that transcribes one recording per worker at a time."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import structlog

from cti_bridge.transcribe import protocol
from cti_bridge.transcribe.errors import (
    TranscriptionError,
    TranscriptionFailed,
    WorkerCrashed,
    WorkerStartFailed,
)
from cti_bridge.transcribe.result import TranscriptionResult

__all__ = [
    "TranscriptionError",
    "TranscriptionFailed",
    "WorkerCrashed",
    "WorkerPool",
    "WorkerStartFailed",
]

_log = structlog.get_logger(__name__)

# A reply line holds a whole transcript with per-word timings: an hour of speech is a few
# MB of JSON, far past asyncio's default 64 KiB line limit.
_REPLY_LIMIT = 64 * 1024 * 1024
# How long to wait for a worker whose stdout closed to report its exit status.
_EXIT_STATUS_WAIT = 2.0
_RESTART_BACKOFF = (1.0, 2.0, 5.0, 15.0, 60.0)


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.pid = process.pid
        self.stdin = process.stdin
        self.stdout = process.stdout

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


class WorkerPool:
    """Runs ``size`` worker processes and hands each job to an idle one.

    Use as an async context manager: entering starts the workers and waits until each is
    ready (with its preloaded models loaded); leaving closes their stdin, waits, and kills
    any that do not exit in time. Jobs still waiting for a worker when the pool closes are
    the caller's to cancel first.

    A caller that cancels ``transcribe`` (or times it out) gets the worker killed and
    replaced, since a Vosk job cannot be interrupted and its late reply would be mistaken
    for the next job's.
    """

    def __init__(
        self,
        size: int,
        *,
        preload: Sequence[str] = (),
        start_timeout: float = 120.0,
        stop_timeout: float = 10.0,
    ) -> None:
        """Configure the pool; nothing starts before ``async with``.

        Args:
            size: Number of worker processes (each loads its own copy of every model).
            preload: Model directories every worker loads before it reports ready.
            start_timeout: Seconds a worker may take to become ready (model loading).
            stop_timeout: Seconds a worker may take to finish its job and exit on close.
        """
        if size < 1:
            raise ValueError(f"a worker pool needs at least one worker, not {size}")
        self._size = size
        self._preload = tuple(preload)
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._workers: dict[int, _Worker] = {}
        self._busy: set[int] = set()
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._restarts: set[asyncio.Task[None]] = set()
        self._restart_count = 0
        self._closing = False

    @property
    def size(self) -> int:
        """The number of workers the pool keeps running."""
        return self._size

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers, idle or busy (fewer than ``size`` during a restart)."""
        return list(self._workers)

    def busy_pids(self) -> list[int]:
        """Process ids of the workers that hold a job right now."""
        return sorted(self._busy)

    async def __aenter__(self) -> Self:
        try:
            async with asyncio.TaskGroup() as tasks:
                for index in range(self._size):
                    tasks.create_task(self._start_worker(), name=f"transcribe-worker-start-{index}")
        except BaseException as exc:
            await self._shutdown()
            if isinstance(exc, BaseExceptionGroup):
                failures = exc.subgroup(TranscriptionError)
                if failures is not None:
                    raise failures.exceptions[0] from exc
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def transcribe(self, job_id: int, path: str, model_path: str, language: str) -> TranscriptionResult:
        """Transcribe a WAV file in the next idle worker.

        Args:
            job_id: Identifies the job in logs and in the worker protocol.
            path: The WAV file, as the worker process sees it.
            model_path: The Vosk model directory (loaded by the worker on first use).
            language: The model's language tag.

        Returns:
            The transcript with timed words; per-channel transcripts for stereo files.

        Raises:
            TranscriptionFailed: The worker could not transcribe it; ``permanent`` says
                whether a retry can help.
            WorkerCrashed: The worker died or broke the protocol; a replacement is starting.
        """
        if self._closing:
            raise RuntimeError("the worker pool is closed")
        job = protocol.Job(id=job_id, path=path, model_path=model_path, language=language)
        log = _log.bind(job_id=job_id)
        worker = await self._take_worker()
        log = log.bind(worker_pid=worker.pid)
        log.debug("transcribe.sent", path=path, language=language)
        try:
            reply = await self._exchange(worker, job)
        except _WorkerLost as lost:
            try:
                status = await _exit_status(worker)
            finally:
                self._retire(worker)
            log.warning("transcribe.worker_crashed", reason=lost.reason, exit=status)
            raise WorkerCrashed(f"worker {worker.pid} {lost.reason} ({status})") from None
        except BaseException:
            # Cancelled mid-job: the worker is still busy with it, so it cannot be reused.
            log.info("transcribe.abandoned", note="worker killed: it cannot drop a job")
            self._retire(worker)
            raise
        self._busy.discard(worker.pid)
        self._idle.put_nowait(worker)

        if isinstance(reply, protocol.Failed):
            log.info("transcribe.failed", reason=reply.reason, permanent=reply.permanent)
            raise TranscriptionFailed(reply.reason, permanent=reply.permanent)
        assert isinstance(reply, protocol.Done)
        try:
            result = protocol.result_from_payload(reply.result, elapsed=reply.elapsed, worker_pid=worker.pid)
        except protocol.ProtocolError as exc:
            raise TranscriptionFailed(exc.reason, permanent=False) from None
        log.info(
            "transcribe.done",
            audio_seconds=round(result.duration_seconds, 2),
            elapsed=round(result.elapsed_seconds, 2),
            speed=round(result.speed, 2),
            words=len(result.words),
        )
        return result

    async def _take_worker(self) -> _Worker:
        while True:
            worker = await self._idle.get()
            if worker.process.returncode is None:
                self._busy.add(worker.pid)
                return worker
            # Died while idle (OOM killer, operator): replace it and wait for another.
            _log.warning("transcribe.idle_worker_died", worker_pid=worker.pid)
            self._retire(worker)

    async def _exchange(self, worker: _Worker, job: protocol.Job) -> protocol.Done | protocol.Failed:
        """Send one job and read its reply.

        Raises:
            _WorkerLost: The pipe broke, stdout closed, or the reply was not for this job.
        """
        try:
            worker.stdin.write(protocol.encode_job(job))
            await worker.stdin.drain()
            line = await worker.stdout.readline()
        except (BrokenPipeError, ConnectionResetError):
            raise _WorkerLost("closed its stdin mid-job") from None
        except ValueError:  # the reply overran _REPLY_LIMIT
            raise _WorkerLost("sent a reply line over the size limit") from None
        if not line.endswith(b"\n"):
            raise _WorkerLost("exited mid-job")
        try:
            reply = protocol.decode_reply(line)
        except protocol.ProtocolError as exc:
            raise _WorkerLost(f"broke the protocol: {exc.reason}") from None
        if not isinstance(reply, protocol.Done | protocol.Failed) or reply.id != job.id:
            raise _WorkerLost(f"answered job {job.id} with {reply!r:.200}")
        return reply

    async def _start_worker(self) -> None:
        """Start one worker, wait for its ready line, and add it to the idle queue.

        Raises:
            WorkerStartFailed: It exited, reported a fatal error, or was not ready in time.
        """
        args = [sys.executable, "-m", "cti_bridge.transcribe.worker"]
        for model_path in self._preload:
            args += ["--preload", model_path]
        try:
            process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=_REPLY_LIMIT,
            )
        except OSError as exc:
            raise WorkerStartFailed(f"cannot start {args[0]}: {exc}") from exc
        worker = _Worker(process)
        try:
            async with asyncio.timeout(self._start_timeout):
                line = await worker.stdout.readline()
            reply = protocol.decode_reply(line) if line.endswith(b"\n") else None
        except TimeoutError:
            reply = protocol.Fatal(f"not ready after {self._start_timeout:.0f} s")
        except protocol.ProtocolError as exc:
            reply = protocol.Fatal(f"broke the protocol: {exc.reason}")
        except BaseException:
            await _reap(worker)
            raise
        if not isinstance(reply, protocol.Ready):
            reason = reply.reason if isinstance(reply, protocol.Fatal) else "exited before ready"
            status = await _exit_status(worker)
            await _reap(worker)
            raise WorkerStartFailed(f"worker {worker.pid}: {reason} ({status})")
        if self._closing:
            await _reap(worker)
            return
        self._workers[worker.pid] = worker
        self._idle.put_nowait(worker)
        _log.info(
            "transcribe.worker_ready",
            worker_pid=worker.pid,
            model_load_seconds={k: round(v, 2) for k, v in reply.model_load_seconds.items()},
        )

    def _retire(self, worker: _Worker) -> None:
        """Kill a worker that can no longer be trusted and start its replacement."""
        self._workers.pop(worker.pid, None)
        self._busy.discard(worker.pid)
        worker.kill()
        if self._closing:
            return
        self._restart_count += 1
        task = asyncio.create_task(
            self._replace(worker), name=f"transcribe-worker-restart-{self._restart_count}"
        )
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _replace(self, old: _Worker) -> None:
        """Reap ``old`` and start a worker in its place, backing off while starts fail.

        Failures are logged, never raised: only ``_shutdown`` awaits this task, to cancel it.
        """
        await old.process.wait()
        attempt = 0
        while True:
            try:
                await self._start_worker()
            except WorkerStartFailed as exc:
                reason = exc.reason
            except Exception as exc:
                # Logged here because no caller will ever see it: the pool must keep trying.
                _log.exception("transcribe.worker_restart_error")
                reason = repr(exc)
            else:
                _log.info("transcribe.worker_replaced", old_pid=old.pid)
                return
            delay = _RESTART_BACKOFF[min(attempt, len(_RESTART_BACKOFF) - 1)]
            attempt += 1
            _log.error("transcribe.worker_restart_failed", reason=reason, retry_in=delay)
            await asyncio.sleep(delay)

    async def _shutdown(self) -> None:
        self._closing = True
        restarts = list(self._restarts)
        for task in restarts:
            task.cancel()
        await asyncio.gather(*restarts, return_exceptions=True)
        workers = list(self._workers.values())
        self._workers.clear()
        async with asyncio.TaskGroup() as tasks:
            for worker in workers:
                tasks.create_task(self._stop_worker(worker), name=f"transcribe-worker-stop-{worker.pid}")

    async def _stop_worker(self, worker: _Worker) -> None:
        # EOF on stdin lets a worker finish its current job and exit by itself.
        worker.stdin.close()
        try:
            async with asyncio.timeout(self._stop_timeout):
                await worker.process.wait()
        except TimeoutError:
            _log.warning("transcribe.worker_killed_on_stop", worker_pid=worker.pid)
            await _reap(worker)


class _WorkerLost(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _reap(worker: _Worker) -> None:
    worker.kill()
    await worker.process.wait()


async def _exit_status(worker: _Worker) -> str:
    """Describe how a worker ended, e.g. "killed by SIGKILL", waiting briefly for it."""
    try:
        async with asyncio.timeout(_EXIT_STATUS_WAIT):
            code = await worker.process.wait()
    except TimeoutError:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
