"""The worker process's protocol handling, on jobs that fail before any model is needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

RECORDING = Path(__file__).parents[2] / "fixtures" / "recordings" / "call1_1795358892.211.wav"


def run_worker(stdin: bytes, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    process = subprocess.run(
        [sys.executable, "-m", "cti_bridge.transcribe.worker", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    replies = [json.loads(line) for line in process.stdout.splitlines()]
    return process.returncode, replies, process.stderr.decode(errors="replace")


def job(job_id: int, path: str | Path, model_path: str = "/no/such/model") -> bytes:
    line = {"id": job_id, "path": str(path), "model_path": model_path, "language": "ko"}
    return json.dumps(line).encode() + b"\n"


def test_every_job_gets_exactly_one_reply_and_the_worker_survives(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()
    stdin = b"".join(
        [
            b"this is not json\n",
            b"\n",  # blank lines are ignored
            b'{"id": 2}\n',
            job(3, tmp_path / "missing.wav"),
            job(4, empty),
            job(5, RECORDING),  # good audio, missing model
        ]
    )
    code, replies, stderr = run_worker(stdin)
    assert code == 0, stderr
    assert replies[0]["type"] == "ready" and replies[0]["model_load_seconds"] == {}
    assert [(r["type"], r["id"], r["permanent"]) for r in replies[1:]] == [
        ("failed", None, True),
        ("failed", 2, True),
        ("failed", 3, True),
        ("failed", 4, True),
        ("failed", 5, True),
    ]
    reasons = [r["reason"] for r in replies[1:]]
    assert reasons[0].startswith("bad job: not a JSON line")
    assert reasons[1].startswith("bad job: field 'path' is missing")
    assert reasons[2] == f"file not found: {tmp_path / 'missing.wav'}"
    assert reasons[3] == "empty file (0 bytes)"
    assert reasons[4] == "Vosk model not found: /no/such/model"


def test_unfinished_recording_is_a_transient_failure(tmp_path: Path) -> None:
    live = tmp_path / "live.wav"
    header = bytearray(RECORDING.read_bytes())
    header[4:8] = header[40:44] = bytes(4)  # as format_wav leaves it until wav_close()
    live.write_bytes(bytes(header))
    _, replies, _ = run_worker(job(1, live))
    assert replies[1]["type"] == "failed" and replies[1]["permanent"] is False
    assert replies[1]["reason"].startswith("header sizes not written yet")


def test_preload_failure_is_fatal(tmp_path: Path) -> None:
    code, replies, _ = run_worker(b"", "--preload", str(tmp_path / "nope"))
    assert code == 2
    assert replies == [{"type": "fatal", "reason": f"Vosk model not found: {tmp_path / 'nope'}"}]


def test_exits_cleanly_on_eof() -> None:
    code, replies, stderr = run_worker(b"")
    assert code == 0 and stderr == ""
    assert [r["type"] for r in replies] == ["ready"]
