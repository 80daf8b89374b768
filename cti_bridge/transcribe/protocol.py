"""The JSON-lines protocol between the worker pool and its worker processes.

Pool → worker (stdin), one job per line::

    {"id": 7, "path": "/rec/a.wav", "model_path": "/models/ko", "language": "ko"}

Worker → pool (stdout): ``{"type": "ready", "pid": N, "model_load_seconds": {path: s}}``
once at start (or ``{"type": "fatal", "reason": ...}`` and exit when a preload fails), then
per job exactly one of ``{"type": "done", "id": 7, "result": {...}, "elapsed": s}`` or
``{"type": "failed", "id": 7, "reason": "...", "permanent": true}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard, TypeVar

from cti_bridge.transcribe.result import ChannelTranscript, TranscriptionResult, Word

_T = TypeVar("_T")


class ProtocolError(Exception):
    """A line that is not a valid message; ``job_id`` is set when the line named one."""

    def __init__(self, reason: str, job_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class Job:
    """One recording to transcribe."""

    id: int
    path: str
    model_path: str
    language: str


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker is up; preloaded models and how long each took to load."""

    pid: int
    model_load_seconds: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Done:
    """A job finished; ``result`` is the engine's payload (see ``result_from_payload``)."""

    id: int
    result: Mapping[str, Any]
    elapsed: float


@dataclass(frozen=True, slots=True)
class Failed:
    """A job failed inside the worker, which is still healthy."""

    id: int | None
    reason: str
    permanent: bool


@dataclass(frozen=True, slots=True)
class Fatal:
    """The worker cannot serve at all (a preloaded model failed) and is exiting."""

    reason: str


Reply = Ready | Done | Failed | Fatal


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as a UTF-8 JSON line (NaN refused: the other side must be able to parse it)."""
    return (
        json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        + b"\n"
    )


def encode_job(job: Job) -> bytes:
    """The line the pool writes to a worker's stdin for ``job``."""
    return encode({"id": job.id, "path": job.path, "model_path": job.model_path, "language": job.language})


def decode_job(line: bytes) -> Job:
    """Parse a job line.

    Raises:
        ProtocolError: Not JSON, or a field is missing or of the wrong type.
    """
    message = _load_object(line)
    job_id = message.get("id")
    if not _is_int(job_id):
        raise ProtocolError(f"job has no integer id: {line[:200]!r}")
    try:
        return Job(
            id=job_id,
            path=_field(message, "path", str),
            model_path=_field(message, "model_path", str),
            language=_field(message, "language", str),
        )
    except ProtocolError as exc:
        raise ProtocolError(exc.reason, job_id) from None


def ready_message(pid: int, model_load_seconds: Mapping[str, float]) -> dict[str, Any]:
    """The worker's first line."""
    return {"type": "ready", "pid": pid, "model_load_seconds": dict(model_load_seconds)}


def fatal_message(reason: str) -> dict[str, Any]:
    """The worker's only line when it cannot start."""
    return {"type": "fatal", "reason": reason}


def done_message(job_id: int, result: Mapping[str, Any], elapsed: float) -> dict[str, Any]:
    """The reply to a job that produced a transcript."""
    return {"type": "done", "id": job_id, "result": dict(result), "elapsed": elapsed}


def failed_message(job_id: int | None, reason: str, *, permanent: bool) -> dict[str, Any]:
    """The reply to a job that could not be transcribed."""
    return {"type": "failed", "id": job_id, "reason": reason, "permanent": permanent}


def decode_reply(line: bytes) -> Reply:
    """Parse a line a worker wrote.

    Raises:
        ProtocolError: Not one of the four message types, or malformed.
    """
    message = _load_object(line)
    kind = message.get("type")
    if kind == "ready":
        loads = message.get("model_load_seconds", {})
        if not isinstance(loads, dict):
            raise ProtocolError("ready.model_load_seconds is not an object")
        return Ready(pid=_field(message, "pid", int), model_load_seconds=loads)
    if kind == "done":
        result = message.get("result")
        if not isinstance(result, dict):
            raise ProtocolError("done.result is not an object")
        return Done(id=_field(message, "id", int), result=result, elapsed=_number(message, "elapsed"))
    if kind == "failed":
        job_id = message.get("id")
        return Failed(
            id=job_id if _is_int(job_id) else None,
            reason=_field(message, "reason", str),
            permanent=_field(message, "permanent", bool),
        )
    if kind == "fatal":
        return Fatal(reason=_field(message, "reason", str))
    raise ProtocolError(f"unknown message type {kind!r}")


def result_from_payload(
    payload: Mapping[str, Any], *, elapsed: float, worker_pid: int
) -> TranscriptionResult:
    """Build the public result from a ``done`` payload written by ``VoskEngine.transcribe``.

    Raises:
        ProtocolError: A field is missing or of the wrong type.
    """
    try:
        channels = tuple(
            ChannelTranscript(
                channel=int(item["channel"]),
                text=str(item["text"]),
                words=tuple(_word(w) for w in item["words"]),
            )
            for item in payload.get("channels", ())
        )
        return TranscriptionResult(
            text=str(payload["text"]),
            words=tuple(_word(w) for w in payload["words"]),
            duration_seconds=float(payload["duration_seconds"]),
            elapsed_seconds=elapsed,
            language=str(payload["language"]),
            sample_rate=int(payload["sample_rate"]),
            channel_count=int(payload["channel_count"]),
            channels=channels,
            worker_pid=worker_pid,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed result payload: {exc!r}") from None


def _word(item: Mapping[str, Any]) -> Word:
    channel = item.get("channel")
    return Word(
        word=str(item["word"]),
        start=float(item["start"]),
        end=float(item["end"]),
        conf=float(item["conf"]),
        channel=None if channel is None else int(channel),
    )


def _load_object(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not a JSON line ({exc}): {line[:200]!r}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"not a JSON object: {line[:200]!r}")
    return message


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass, and {"id": true} is not a job id.
    return isinstance(value, int) and not isinstance(value, bool)


def _field(message: Mapping[str, Any], name: str, kind: type[_T]) -> _T:
    value = message.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"field {name!r} is missing or not {kind.__name__}: {value!r}")
    return value


def _number(message: Mapping[str, Any], name: str) -> float:
    value = message.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ProtocolError(f"field {name!r} is missing or not a number: {value!r}")
    return float(value)
