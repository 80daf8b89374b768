"""The JSON-lines messages between the pool and its workers."""

from __future__ import annotations

import json

import pytest

from cti_bridge.transcribe import protocol
from cti_bridge.transcribe.result import ChannelTranscript, Word

PAYLOAD = {
    "text": "네 엄마",
    "words": [
        {"word": "네", "start": 0.0, "end": 0.3, "conf": 1.0, "channel": 0},
        {"word": "엄마", "start": 0.4, "end": 0.9, "conf": 0.5, "channel": 1},
    ],
    "duration_seconds": 1.5,
    "language": "ko",
    "sample_rate": 8000,
    "channel_count": 2,
    "channels": [
        {
            "channel": 0,
            "text": "네",
            "words": [{"word": "네", "start": 0.0, "end": 0.3, "conf": 1.0, "channel": 0}],
        },
        {
            "channel": 1,
            "text": "엄마",
            "words": [{"word": "엄마", "start": 0.4, "end": 0.9, "conf": 0.5, "channel": 1}],
        },
    ],
}


def test_job_round_trip() -> None:
    job = protocol.Job(id=7, path="/rec/통화.wav", model_path="/m", language="ko")
    line = protocol.encode_job(job)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert "통화".encode() in line  # UTF-8 on the wire, whatever the locale
    assert protocol.decode_job(line) == job


@pytest.mark.parametrize(
    ("line", "reason", "job_id"),
    [
        (b"not json\n", "not a JSON line", None),
        (b"[1, 2]\n", "not a JSON object", None),
        (b"\xff\xfe\n", "not a JSON line", None),
        (b'{"path": "/a.wav"}\n', "job has no integer id", None),
        (b'{"id": true, "path": "/a.wav"}\n', "job has no integer id", None),
        (b'{"id": 3, "model_path": "/m", "language": "ko"}\n', "field 'path' is missing", 3),
        (b'{"id": 3, "path": 5, "model_path": "/m", "language": "ko"}\n', "field 'path'", 3),
    ],
)
def test_bad_jobs(line: bytes, reason: str, job_id: int | None) -> None:
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.decode_job(line)
    assert reason in caught.value.reason
    assert caught.value.job_id == job_id


def test_replies_round_trip() -> None:
    ready = protocol.decode_reply(protocol.encode(protocol.ready_message(42, {"/m": 1.5})))
    assert ready == protocol.Ready(pid=42, model_load_seconds={"/m": 1.5})
    done = protocol.decode_reply(protocol.encode(protocol.done_message(7, PAYLOAD, 0.25)))
    assert done == protocol.Done(id=7, result=PAYLOAD, elapsed=0.25)
    failed = protocol.decode_reply(protocol.encode(protocol.failed_message(None, "bad job", permanent=True)))
    assert failed == protocol.Failed(id=None, reason="bad job", permanent=True)
    fatal = protocol.decode_reply(protocol.encode(protocol.fatal_message("no model")))
    assert fatal == protocol.Fatal(reason="no model")


@pytest.mark.parametrize(
    "message",
    [
        {"type": "hello"},
        {"type": "done", "id": 1, "result": [], "elapsed": 1.0},
        {"type": "done", "id": "1", "result": {}, "elapsed": 1.0},
        {"type": "done", "id": 1, "result": {}, "elapsed": "soon"},
        {"type": "failed", "id": 1, "reason": "x", "permanent": "yes"},
        {"type": "ready", "pid": True},
    ],
)
def test_malformed_replies(message: dict[str, object]) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_reply(json.dumps(message).encode())


def test_nan_is_refused_on_the_wire() -> None:
    with pytest.raises(ValueError):
        protocol.encode({"elapsed": float("nan")})


def test_result_from_payload() -> None:
    result = protocol.result_from_payload(PAYLOAD, elapsed=0.5, worker_pid=99)
    assert result.text == "네 엄마"
    assert result.words == (
        Word("네", 0.0, 0.3, 1.0, channel=0),
        Word("엄마", 0.4, 0.9, 0.5, channel=1),
    )
    assert result.channels == (
        ChannelTranscript(0, "네", (Word("네", 0.0, 0.3, 1.0, channel=0),)),
        ChannelTranscript(1, "엄마", (Word("엄마", 0.4, 0.9, 0.5, channel=1),)),
    )
    assert (result.duration_seconds, result.elapsed_seconds, result.worker_pid) == (1.5, 0.5, 99)
    assert result.speed == pytest.approx(3.0)


def test_malformed_payload() -> None:
    with pytest.raises(protocol.ProtocolError, match="malformed result payload"):
        protocol.result_from_payload({"text": "x"}, elapsed=1.0, worker_pid=1)
