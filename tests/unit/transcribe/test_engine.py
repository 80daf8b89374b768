"""VoskEngine's bookkeeping around Vosk, with Vosk replaced by a scripted fake."""

from __future__ import annotations

import json
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cti_bridge.transcribe import engine
from cti_bridge.transcribe.audio import AudioError, WavInfo
from cti_bridge.transcribe.engine import ModelError, VoskEngine, word_separator


class FakeModel:
    loads = 0

    def __init__(self, path: str) -> None:
        FakeModel.loads += 1
        self.path = path


class FakeRecognizer:
    """Like Vosk: one word per chunk fed, timed from the recognizer's creation."""

    instances: ClassVar[list[FakeRecognizer]] = []
    vocabulary = ("알", "파")

    def __init__(self, model: FakeModel, sample_rate: int) -> None:
        FakeRecognizer.instances.append(self)
        self.sample_rate = sample_rate
        self.samples = 0
        self.pending: list[dict[str, Any]] = []
        self.chunks: list[bytes] = []

    def SetWords(self, on: bool) -> None:
        assert on

    def AcceptWaveform(self, pcm: bytes) -> bool:
        self.chunks.append(pcm)
        start = self.samples / self.sample_rate
        self.samples += len(pcm) // 2
        word = self.vocabulary[len(self.chunks) % 2]
        self.pending.append(
            {"word": word, "start": start, "end": self.samples / self.sample_rate, "conf": 0.9}
        )
        return len(self.pending) == 2  # an "endpoint" every two chunks

    def Result(self) -> str:
        result, self.pending = self.pending, []
        return json.dumps({"result": result, "text": " ".join(w["word"] for w in result)})

    def FinalResult(self) -> str:
        return self.Result() if self.pending else json.dumps({"text": ""})


@pytest.fixture
def fake_vosk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setattr(engine.vosk, "Model", FakeModel)
    monkeypatch.setattr(engine.vosk, "KaldiRecognizer", FakeRecognizer)
    FakeModel.loads = 0
    FakeRecognizer.instances = []
    model = tmp_path / "model"
    model.mkdir()
    return str(model)


def write_wav(path: Path, seconds: float, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(8000)
        frames = int(seconds * 8000)
        # Left samples are 1, right samples are 2, so a channel mix-up shows.
        sample = b"".join((c + 1).to_bytes(2, "little") for c in range(channels))
        out.writeframes(sample * frames)
    return path


def test_each_recording_gets_its_own_recognizer_and_times(fake_vosk: str, tmp_path: Path) -> None:
    vosk_engine = VoskEngine(chunk_frames=4000)
    first = vosk_engine.transcribe(str(write_wav(tmp_path / "a.wav", 2.0)), fake_vosk, "ko")
    second = vosk_engine.transcribe(str(write_wav(tmp_path / "b.wav", 1.5)), fake_vosk, "ko")
    # The model is loaded once; each recording gets a fresh recognizer, so nothing adapted to
    # one caller carries into the next recording.
    assert FakeModel.loads == 1 and len(FakeRecognizer.instances) == 2
    assert [(w["start"], w["end"]) for w in first["words"]] == [
        (0.0, 0.5),
        (0.5, 1.0),
        (1.0, 1.5),
        (1.5, 2.0),
    ]
    assert [(w["start"], w["end"]) for w in second["words"]] == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5)]
    assert second["duration_seconds"] == 1.5 and second["channels"] == []
    assert second["text"] == "파 알 파"


def test_stereo_channels_are_transcribed_separately(fake_vosk: str, tmp_path: Path) -> None:
    vosk_engine = VoskEngine(chunk_frames=4000)
    result = vosk_engine.transcribe(str(write_wav(tmp_path / "s.wav", 1.0, 2)), fake_vosk, "ko")
    assert len(FakeRecognizer.instances) == 2
    assert result["channel_count"] == 2
    assert [c["channel"] for c in result["channels"]] == [0, 1]
    for channel in result["channels"]:
        assert {w["channel"] for w in channel["words"]} == {channel["channel"]}
        assert channel["text"] == "파 알"
    assert [(w["start"], w["channel"]) for w in result["words"]] == [
        (0.0, 0),
        (0.0, 1),
        (0.5, 0),
        (0.5, 1),
    ]


def test_stereo_samples_reach_the_right_recognizer(fake_vosk: str, tmp_path: Path) -> None:
    VoskEngine().transcribe(str(write_wav(tmp_path / "s.wav", 0.25, 2)), fake_vosk, "ko")
    left, right = (b"".join(r.chunks) for r in FakeRecognizer.instances)
    assert left == (1).to_bytes(2, "little") * 2000
    assert right == (2).to_bytes(2, "little") * 2000


def test_chinese_words_are_joined_without_spaces(fake_vosk: str, tmp_path: Path) -> None:
    FakeRecognizer.vocabulary = ("你好", "世界")
    try:
        result = VoskEngine().transcribe(str(write_wav(tmp_path / "z.wav", 1.0)), fake_vosk, "zh-cn")
    finally:
        FakeRecognizer.vocabulary = ("알", "파")
    assert result["text"] == "世界你好"


@pytest.mark.parametrize(
    ("language", "separator"), [("zh", ""), ("zh-CN", ""), ("ZH", ""), ("ko", " "), ("en-us", " ")]
)
def test_word_separator(language: str, separator: str) -> None:
    assert word_separator(language) == separator


def test_a_failed_job_does_not_return_its_recognizer(
    fake_vosk: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read_chunks = engine._read_chunks
    reads = 0

    def read_chunks(path: str, info: WavInfo, chunk_frames: int) -> Iterator[bytes]:
        nonlocal reads
        reads += 1
        if reads == 1:  # the file is cut under the first job
            yield b"\x00\x00" * chunk_frames
            raise AudioError("the file shrank while it was being transcribed", permanent=False)
        yield from real_read_chunks(path, info, chunk_frames)

    monkeypatch.setattr(engine, "_read_chunks", read_chunks)
    vosk_engine = VoskEngine()
    path = str(write_wav(tmp_path / "a.wav", 1.0))
    with pytest.raises(AudioError):
        vosk_engine.transcribe(path, fake_vosk, "ko")
    result = vosk_engine.transcribe(path, fake_vosk, "ko")
    assert len(FakeRecognizer.instances) == 2  # the half-fed one was dropped
    assert result["words"][0]["start"] == 0.0


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="Vosk model not found"):
        VoskEngine().load_model(str(tmp_path / "nope"))


def test_bad_audio_is_reported_before_the_model_is_loaded(fake_vosk: str, tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="file not found"):
        VoskEngine().transcribe(str(tmp_path / "nope.wav"), fake_vosk, "ko")
    assert FakeModel.loads == 0
