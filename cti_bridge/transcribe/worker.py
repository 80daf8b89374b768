"""Transcription worker process: JSON-line jobs on stdin, JSON-line replies on stdout.

Run by ``WorkerPool`` as ``python -m cti_bridge.transcribe.worker [--preload MODEL_PATH ...]``;
the protocol is described in ``cti_bridge.transcribe.protocol``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence

import structlog

from cti_bridge.transcribe import protocol
from cti_bridge.transcribe.audio import AudioError
from cti_bridge.transcribe.engine import ModelError, VoskEngine

_log = structlog.get_logger(__name__)


_NICENESS = 10


def main(argv: Sequence[str] | None = None) -> int:
    """Serve jobs until stdin closes.

    Returns:
        0 after stdin EOF; 2 when a preloaded model cannot be loaded.
    """
    parser = argparse.ArgumentParser(prog="python -m cti_bridge.transcribe.worker")
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="MODEL_PATH",
        help="load this Vosk model before reporting ready (repeatable)",
    )
    args = parser.parse_args(argv)

    replies = _claim_stdout()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    # The pool owns our lifetime through stdin; a Ctrl-C in the daemon's terminal reaches the
    # whole process group and must not kill a worker mid-job before the pool shuts it down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Transcription is batch work: on a busy host the daemon's event path (screen-pops)
    # must win the CPU, so workers run at a lower priority.
    os.nice(_NICENESS)

    engine = VoskEngine()
    load_seconds: dict[str, float] = {}
    for model_path in args.preload:
        try:
            load_seconds[model_path] = engine.load_model(model_path)
        except ModelError as exc:
            _write(replies, protocol.encode(protocol.fatal_message(exc.reason)))
            return 2
    _write(replies, protocol.encode(protocol.ready_message(os.getpid(), load_seconds)))

    try:
        for line in sys.stdin.buffer:
            if line.strip():
                _write(replies, _handle(engine, line))
    except BrokenPipeError:
        # The pool is gone; nobody is left to report to.
        return 1
    return 0


def _handle(engine: VoskEngine, line: bytes) -> bytes:
    """Run one job line; every outcome, including a bug, becomes exactly one reply line."""
    try:
        job = protocol.decode_job(line)
    except protocol.ProtocolError as exc:
        return protocol.encode(protocol.failed_message(exc.job_id, f"bad job: {exc.reason}", permanent=True))
    log = _log.bind(job_id=job.id, path=job.path)
    started = time.perf_counter()
    try:
        result = engine.transcribe(job.path, job.model_path, job.language)
        return protocol.encode(protocol.done_message(job.id, result, time.perf_counter() - started))
    except AudioError as exc:
        failure = protocol.failed_message(job.id, exc.reason, permanent=exc.permanent)
    except ModelError as exc:
        failure = protocol.failed_message(job.id, exc.reason, permanent=True)
    except Exception as exc:
        log.exception("transcription failed unexpectedly")
        failure = protocol.failed_message(job.id, f"{type(exc).__name__}: {exc}", permanent=False)
    return protocol.encode(failure)


def _claim_stdout() -> int:
    """Keep the protocol's pipe for replies only, and return its file descriptor.

    Anything else that writes to stdout (a library's print, Kaldi's C++ logging) would
    corrupt the protocol, so fd 1 is duplicated for our replies and then pointed at stderr.
    """
    replies = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return replies


def _write(replies: int, line: bytes) -> None:
    # Unbuffered: a reply must reach the pool now, and a dead pipe must not leave bytes
    # in a buffer for interpreter shutdown to trip over.
    view = memoryview(line)
    while view:
        view = view[os.write(replies, view) :]


if __name__ == "__main__":
    sys.exit(main())
