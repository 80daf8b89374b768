"""Why a transcription did not produce a result, as seen by callers of the worker pool."""

from __future__ import annotations


class TranscriptionError(Exception):
    """Base of the pool's errors; ``reason`` says what went wrong in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TranscriptionFailed(TranscriptionError):
    """The worker ran the job and reported it failed.

    Attributes:
        permanent: True when retrying cannot help (bad audio, missing model).
    """

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


class WorkerCrashed(TranscriptionError):
    """The worker process died or broke the protocol while it held the job.

    The pool has already started a replacement; whether to retry is the caller's call.
    """


class WorkerStartFailed(TranscriptionError):
    """A worker process could not be started or did not become ready."""
