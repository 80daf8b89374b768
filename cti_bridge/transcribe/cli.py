"""Transcribe WAV files from the command line through a worker pool (``cti-bridge transcribe``)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from tqdm import tqdm

from cti_bridge.transcribe.errors import TranscriptionError, WorkerCrashed, WorkerStartFailed
from cti_bridge.transcribe.pool import WorkerPool
from cti_bridge.transcribe.result import TranscriptionResult


async def transcribe_files(
    paths: Sequence[str | os.PathLike[str]],
    model_path: str,
    language: str,
    workers: int,
    progress: bool,
) -> list[TranscriptionResult | TranscriptionError]:
    """Transcribe files concurrently, one per worker process at a time.

    Args:
        paths: WAV files.
        model_path: The Vosk model directory; every worker loads it before the first file.
        language: The model's language tag.
        workers: Worker processes to run (never more than there are files).
        progress: Show a progress bar on stderr when there is more than one file.

    Returns:
        For each path, in input order, its result or the error that stopped it. A file
        whose worker crashed is tried once more before its ``WorkerCrashed`` is returned;
        if no worker can start (e.g. the model is missing), every path gets that error.
    """
    if not paths:
        return []
    size = max(1, min(workers, len(paths)))
    # tqdm writes a few bytes per redraw and rate-limits redraws, so it is left on the loop.
    with tqdm(
        total=len(paths),
        unit="file",
        desc="transcribing",
        file=sys.stderr,
        disable=not (progress and len(paths) > 1),
    ) as bar:
        try:
            async with WorkerPool(size, preload=(model_path,)) as pool, asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(
                        _transcribe_one(pool, job_id, os.fspath(path), model_path, language, bar),
                        name=f"transcribe-file-{job_id}",
                    )
                    for job_id, path in enumerate(paths, start=1)
                ]
        except WorkerStartFailed as exc:
            return [exc for _ in paths]
    return [task.result() for task in tasks]


async def _transcribe_one(
    pool: WorkerPool, job_id: int, path: str, model_path: str, language: str, bar: tqdm[None]
) -> TranscriptionResult | TranscriptionError:
    try:
        try:
            return await pool.transcribe(job_id, path, model_path, language)
        except WorkerCrashed:
            # One retry: a crash may be the machine (OOM killer) rather than this file.
            return await pool.transcribe(job_id, path, model_path, language)
    except TranscriptionError as exc:
        return exc
    finally:
        bar.update(1)
