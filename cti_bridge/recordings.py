"""Links each call's MixMonitor recording to its ticket once the file is complete."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import structlog

from cti_bridge.calls.model import Call
from cti_bridge.config.model import PbxConfig, TranscriptionConfig
from cti_bridge.screenpop.outputs import Publisher
from cti_bridge.screenpop.payload import ticket_message
from cti_bridge.store import Recording, Store, waiting_for_store
from cti_bridge.tickets.rules import routing_matches
from cti_bridge.transcribe.audio import AudioError, inspect_wav, is_wav_complete

log = structlog.get_logger(__name__)

_FIRST_POLL_SECONDS = 0.1
_MAX_POLL_SECONDS = 2.0


def local_path(pbx: PbxConfig, pbx_path: str) -> Path:
    """Where this host sees a file the PBX wrote: the longest matching mapping wins."""
    path = PurePosixPath(pbx_path)
    for mapping in sorted(pbx.recording_paths, key=lambda m: len(m.pbx), reverse=True):
        root = PurePosixPath(mapping.pbx)
        if path == root or root in path.parents:
            return mapping.local / path.relative_to(root)
    return Path(pbx_path)


def language_for(config: TranscriptionConfig, *, pbx: str, queue: str | None, did: str | None) -> str:
    for rule in config.language_rules:
        if routing_matches(rule.when, pbx=pbx, queue=queue, did=did):
            return rule.language
    return config.default_language


class RecordingService:
    """Notes recordings as the PBX announces them; links them when the call is over.

    Waiting for a file runs in a task per call, owned by `run()`'s TaskGroup; a wait
    cut short by a stop is picked up again at the next start (status stays
    `recording` in the store until linked).
    """

    def __init__(
        self,
        store: Store,
        pbxs: list[PbxConfig],
        transcription: TranscriptionConfig,
        publisher: Publisher,
        jobs_queued: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._pbxs = {pbx.name: pbx for pbx in pbxs}
        self._transcription = transcription
        self._publisher = publisher
        self._jobs_queued = jobs_queued
        self._clock = clock
        self._tasks: asyncio.TaskGroup | None = None
        self._linking: set[int] = set()  # resume-at-start and a resync may both find one

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            for recording in await self._store.recordings_to_link():
                self._spawn(self._wait_and_link(recording), f"recording-{recording.id}")
            await asyncio.Future()  # until cancelled; the TaskGroup then cancels the waits

    async def announced(self, call: Call, pbx_path: str) -> int | None:
        """Note a recording of the call (idempotent); its id, or None if the call has no ticket."""
        local = local_path(self._pbxs[call.key.pbx], pbx_path)
        recording_id = await self._store.add_recording(call, pbx_path, str(local), self._clock())
        log.info("recording.announced", recording_id=recording_id, path=str(local))
        return recording_id

    def call_ended(self, call: Call) -> None:
        if call.recordings:
            self._spawn(self._link_call(call), f"recording-call-{call.key}")

    def _spawn(self, coroutine: object, name: str) -> None:
        if self._tasks is None:
            raise RuntimeError("RecordingService.run() is not running")
        self._tasks.create_task(coroutine, name=name)  # type: ignore[arg-type]

    async def _link_call(self, call: Call) -> None:
        with structlog.contextvars.bound_contextvars(call=str(call.key)):
            noted = {r.pbx_path: r for r in await self._store.call_recordings(call)}
            for pbx_path in call.recordings:
                recording = noted.get(pbx_path)
                if recording is None:  # announced while the daemon was down, say
                    recording_id = await self.announced(call, pbx_path)
                    if recording_id is None:
                        continue
                    recording = await self._store.recording(recording_id)
                if recording.status == "recording":  # not linked yet
                    await self._wait_and_link(recording)

    async def _wait_and_link(self, recording: Recording) -> None:
        if recording.id in self._linking:
            return
        self._linking.add(recording.id)
        try:
            with waiting_for_store():  # a full or locked store delays the link, never loses it
                await self._link(recording)
        finally:
            self._linking.discard(recording.id)

    async def _link(self, recording: Recording) -> None:
        path = Path(recording.local_path)
        deadline = time.monotonic() + self._transcription.recording_wait.total_seconds()
        complete = await asyncio.to_thread(is_wav_complete, path)
        pause = _FIRST_POLL_SECONDS
        while not complete and time.monotonic() < deadline:
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            # MixMonitor closes the file within moments of the hangup; a file still missing
            # after that is rarely coming, so look less and less often.
            pause = min(pause * 2, _MAX_POLL_SECONDS)
            complete = await asyncio.to_thread(is_wav_complete, path)
        exists = await asyncio.to_thread(path.exists)
        size = duration = error = None
        if complete:
            status = "linked"
            try:
                duration = (await asyncio.to_thread(inspect_wav, path)).duration_seconds
            except AudioError as exc:
                error = exc.reason
        elif exists:
            status, error = "incomplete", "the PBX never finished writing the file"
        else:
            status, error = "missing", "no such file"
        if exists:
            size = (await asyncio.to_thread(path.stat)).st_size
        language = None
        if self._transcription.enabled:
            language = language_for(
                self._transcription, pbx=recording.pbx, queue=recording.queue, did=recording.did
            )
        now = self._clock()
        job_id = await self._store.link_recording(
            recording.id,
            status=status,
            size_bytes=size,
            duration_seconds=duration,
            error=error,
            language=language,
            at=now,
        )
        log.info(
            "recording.linked",
            recording_id=recording.id,
            status=status,
            error=error,
            ticket=recording.ticket_number,
            job_id=job_id,
        )
        ticket = await self._store.get_ticket(recording.ticket_id)
        self._publisher.publish(
            ticket_message(
                "recording_" + status,
                ticket,
                now,
                path=recording.local_path,
                error=error,
                duration_seconds=duration,
            )
        )
        if job_id is not None:
            self._jobs_queued()
