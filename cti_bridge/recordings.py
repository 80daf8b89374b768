"""Links each call's MixMonitor recording to its ticket once the file is complete."""

from __future__ import annotations

import asyncio
import os
import posixpath
import time
from collections.abc import Callable, Iterable
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


# Where MixMonitor writes when the dialplan names no folder; the one root of a PBX without
# `recording_paths` (same host, same paths).
DEFAULT_RECORDINGS_ROOT = "/var/spool/asterisk/monitor"


class RecordingRefused(Exception):
    """A recording path from the PBX that names a file outside the recordings roots.

    The path comes from the PBX side (MIXMONITOR_FILENAME, a MixMonitor event): a hostile
    dialplan or whoever controls the PBX could name /etc/shadow or `../../` their way out.
    Such a file is never read, linked, served or transcribed.

    Attributes:
        reason: What is wrong, naming the roots, e.g. "outside the recordings roots (...)".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def recording_roots(pbx: PbxConfig) -> list[tuple[PurePosixPath, Path]]:
    """(root as the PBX names it, same root on this host), longest PBX root first."""
    if not pbx.recording_paths:
        return [(PurePosixPath(DEFAULT_RECORDINGS_ROOT), Path(DEFAULT_RECORDINGS_ROOT))]
    pairs = [(PurePosixPath(posixpath.normpath(m.pbx)), m.local) for m in pbx.recording_paths]
    return sorted(pairs, key=lambda pair: len(str(pair[0])), reverse=True)


def local_path(pbx: PbxConfig, pbx_path: str) -> Path:
    """Where this host sees a file the PBX wrote: the longest matching mapping wins.

    Raises:
        RecordingRefused: The path is not absolute, holds a NUL, or (once `.` and `..` are
            resolved) lies outside every recordings root of the PBX (`recording_paths`, or
            /var/spool/asterisk/monitor without any).
    """
    if "\0" in pbx_path or not pbx_path.startswith("/"):
        raise RecordingRefused(f"not an absolute file path: {pbx_path!r}")
    # normpath, not resolve(): the path is the PBX's, and `..` must not climb out of a root.
    path = PurePosixPath(posixpath.normpath(pbx_path))
    roots = recording_roots(pbx)
    for root, local in roots:
        if root in path.parents:
            return local / path.relative_to(root)
    named = ", ".join(str(root) for root, _ in roots)
    raise RecordingRefused(
        f"outside the recordings roots of PBX {pbx.name!r} ({named}): {pbx_path!r}; "
        "map its folder under recording_paths if it is one"
    )


def _complete_inside(path: Path, roots: list[Path]) -> bool | None:
    """is_wav_complete() for a file inside the roots; None, without opening it, for one outside."""
    if os.path.lexists(path) and not contained(path, roots):
        return None
    return is_wav_complete(path)


def contained(path: Path, roots: Iterable[Path]) -> bool:
    """Whether `path`, symlinks followed, is a file inside one of `roots` (symlinks followed).
    Blocking (it reads the filesystem): call it through asyncio.to_thread."""
    real = Path(os.path.realpath(path))
    return any(Path(os.path.realpath(root)) in real.parents for root in roots)


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
        self.refused = 0  # recordings whose path led outside the recordings roots

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            for recording in await self._store.recordings_to_link():
                self._spawn(self._wait_and_link(recording), f"recording-{recording.id}")
            await asyncio.Future()  # until cancelled; the TaskGroup then cancels the waits

    async def announced(self, call: Call, pbx_path: str) -> int | None:
        """Note a recording of the call (idempotent); its id, or None if the call has no ticket.
        A path outside the recordings roots is noted as refused: the ticket's history says
        why, and the file is never looked at."""
        try:
            local = local_path(self._pbxs[call.key.pbx], pbx_path)
        except RecordingRefused as exc:
            recording_id = await self._store.add_recording(call, pbx_path, "", self._clock())
            if recording_id is not None:
                recording = await self._store.recording(recording_id)
                if recording.status == "recording":  # not refused before
                    await self._refuse(recording, exc.reason)
            return recording_id
        recording_id = await self._store.add_recording(call, pbx_path, str(local), self._clock())
        log.info("recording.announced", recording_id=recording_id, path=str(local))
        return recording_id

    async def _refuse(self, recording: Recording, reason: str) -> None:
        self.refused += 1
        # The path may carry the caller's number: the log's processor masks it like any other.
        log.warning("recording.refused", recording_id=recording.id, path=recording.pbx_path, reason=reason)
        now = self._clock()
        await self._store.link_recording(
            recording.id,
            status="refused",
            size_bytes=None,
            duration_seconds=None,
            error=reason,
            language=None,  # nothing to transcribe
            at=now,
        )
        ticket = await self._store.get_ticket(recording.ticket_id)
        self._publisher.publish(ticket_message("recording_refused", ticket, now, error=reason))

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
        pbx = self._pbxs.get(recording.pbx)
        try:
            if pbx is None:
                raise RecordingRefused(f"PBX {recording.pbx!r} is no longer configured")
            path = local_path(pbx, recording.pbx_path)  # again: noted by an older version, say
        except RecordingRefused as exc:
            await self._refuse(recording, exc.reason)
            return
        # A symlink inside the root may lead anywhere: what counts is where it ends up. Looked
        # at before every read, since the PBX side may swap one in while we wait for the file.
        roots = [local for _, local in recording_roots(pbx)]
        deadline = time.monotonic() + self._transcription.recording_wait.total_seconds()
        complete = await asyncio.to_thread(_complete_inside, path, roots)
        pause = _FIRST_POLL_SECONDS
        while complete is False and time.monotonic() < deadline:
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            # MixMonitor closes the file within moments of the hangup; a file still missing
            # after that is rarely coming, so look less and less often.
            pause = min(pause * 2, _MAX_POLL_SECONDS)
            complete = await asyncio.to_thread(_complete_inside, path, roots)
        if complete is None:
            await self._refuse(recording, "the file is a link that leads outside the recordings roots")
            return
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
