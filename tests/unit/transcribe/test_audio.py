"""inspect_wav's reasons and is_wav_complete's verdicts on real and hand-made WAV files."""

from __future__ import annotations

import shutil
import struct
import wave
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cti_bridge.transcribe.audio import AudioError, inspect_wav, is_wav_complete

RECORDINGS = Path(__file__).parents[2] / "fixtures" / "recordings"


def write_wav(path: Path, frames: int, *, rate: int = 8000, channels: int = 1) -> Path:
    """A 16-bit PCM WAV written by the stdlib, sizes filled in as any finished writer does."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(i % 251 for i in range(frames * channels * 2)))
    return path


def wav_header(
    *,
    riff_size: int,
    data_size: int,
    format_tag: int = 1,
    channels: int = 1,
    rate: int = 8000,
    bits: int = 16,
) -> bytes:
    """A canonical 44-byte header, sizes as given (Asterisk's format_wav layout)."""
    block_align = channels * bits // 8
    return (
        struct.pack("<4sI4s", b"RIFF", riff_size, b"WAVE")
        + struct.pack(
            "<4sIHHIIHH",
            b"fmt ",
            16,
            format_tag,
            channels,
            rate,
            rate * block_align,
            block_align,
            bits,
        )
        + struct.pack("<4sI", b"data", data_size)
    )


def asterisk_recording(path: Path, audio: bytes, *, closed: bool) -> Path:
    """What MixMonitor leaves on disk: zero sizes while recording, real ones after wav_close."""
    if closed:
        header = wav_header(riff_size=36 + len(audio), data_size=len(audio))
    else:
        header = wav_header(riff_size=0, data_size=0)
    path.write_bytes(header + audio)
    return path


def reason(path: Path) -> AudioError:
    with pytest.raises(AudioError) as caught:
        inspect_wav(path)
    return caught.value


@pytest.mark.parametrize("name", sorted(p.name for p in RECORDINGS.glob("*.wav")))
def test_real_mixmonitor_recordings_are_complete_8khz_mono(name: str) -> None:
    path = RECORDINGS / name
    info = inspect_wav(path)
    assert (info.sample_rate, info.channels, info.sample_width) == (8000, 1, 2)
    assert info.data_offset == 44
    assert info.frames == (path.stat().st_size - 44) // 2
    assert info.duration_seconds == pytest.approx(info.frames / 8000)
    assert is_wav_complete(path)


def test_stereo_wav(tmp_path: Path) -> None:
    info = inspect_wav(write_wav(tmp_path / "s.wav", 16000, rate=16000, channels=2))
    assert (info.sample_rate, info.channels, info.frames, info.block_align) == (16000, 2, 16000, 4)
    assert info.duration_seconds == pytest.approx(1.0)


def test_missing_file(tmp_path: Path) -> None:
    error = reason(tmp_path / "nope.wav")
    assert error.reason.startswith("file not found:") and error.permanent


def test_directory(tmp_path: Path) -> None:
    assert "directory" in reason(tmp_path).reason


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    assert reason(path).reason == "empty file (0 bytes)"


def test_header_only_mixmonitor_file_has_no_audio_frames(tmp_path: Path) -> None:
    # A call hung up before any audio: Asterisk closes a 44-byte file.
    path = asterisk_recording(tmp_path / "h.wav", b"", closed=True)
    assert path.stat().st_size == 44
    error = reason(path)
    assert error.reason == "no audio frames: header only (44 bytes)" and error.permanent
    assert is_wav_complete(path)  # finished, just empty


def test_not_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"ID3\x04\x00 this is an mp3, honest" * 10)
    assert reason(path).reason.startswith("not a RIFF/WAVE file (starts with b'ID3")


def test_riff_but_not_wave(tmp_path: Path) -> None:
    path = tmp_path / "x.avi"
    path.write_bytes(struct.pack("<4sI4s", b"RIFF", 100, b"AVI ") + bytes(100))
    assert "not a RIFF/WAVE file" in reason(path).reason


@pytest.mark.parametrize(
    ("format_tag", "bits", "expected"),
    [
        (1, 8, "unsupported encoding: 8-bit PCM; need 16-bit PCM"),
        (1, 24, "unsupported encoding: 24-bit PCM; need 16-bit PCM"),
        (3, 32, "unsupported encoding: 32-bit IEEE float; need 16-bit PCM"),
        (7, 8, "unsupported encoding: 8-bit µ-law; need 16-bit PCM"),
        (6, 8, "unsupported encoding: 8-bit A-law; need 16-bit PCM"),
        (0x31, 0, "unsupported encoding: 0-bit GSM 6.10; need 16-bit PCM"),
        (0x1234, 16, "unsupported encoding: 16-bit format tag 0x1234; need 16-bit PCM"),
    ],
)
def test_unsupported_encoding(tmp_path: Path, format_tag: int, bits: int, expected: str) -> None:
    path = tmp_path / "enc.wav"
    path.write_bytes(
        wav_header(riff_size=36 + 160, data_size=160, format_tag=format_tag, bits=bits) + bytes(160)
    )
    assert reason(path).reason == expected


def test_extensible_pcm_is_accepted(tmp_path: Path) -> None:
    # sox writes WAVE_FORMAT_EXTENSIBLE for more than two channels or more than 16 bits.
    guid = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 8000, 16000, 2, 16, 22, 16, 4) + guid
    body = b"WAVE" + struct.pack("<4sI", b"fmt ", len(fmt)) + fmt
    body += struct.pack("<4sI", b"data", 800) + bytes(800)
    path = tmp_path / "ext.wav"
    path.write_bytes(struct.pack("<4sI", b"RIFF", len(body)) + body)
    assert inspect_wav(path).frames == 400
    assert is_wav_complete(path)


def test_three_channels_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "3ch.wav"
    path.write_bytes(wav_header(riff_size=36 + 60, data_size=60, channels=3) + bytes(60))
    assert reason(path).reason == "unsupported channel count 3; need mono or stereo"


def test_truncated_audio(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "t.wav", 8000)
    data = path.read_bytes()
    path.write_bytes(data[:1044])
    error = reason(path)
    assert error.reason == "truncated WAV: header declares 16000 bytes of audio, the file holds 1000"
    assert error.permanent
    assert not is_wav_complete(path)


def test_truncated_header(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "t.wav", 100)
    path.write_bytes(path.read_bytes()[:30])
    assert reason(path).reason.startswith("truncated WAV")
    path.write_bytes(b"RIF")
    assert reason(path).reason == "truncated WAV: only 3 bytes, less than a RIFF header"


def test_corrupt_block_align(tmp_path: Path) -> None:
    header = bytearray(wav_header(riff_size=36 + 100, data_size=100))
    header[32:34] = struct.pack("<H", 3)
    path = tmp_path / "c.wav"
    path.write_bytes(bytes(header) + bytes(100))
    assert reason(path).reason.startswith("corrupt WAV: fmt chunk says 8000 Hz, block align 3")


def test_recording_still_being_written(tmp_path: Path) -> None:
    path = asterisk_recording(tmp_path / "live.wav", bytes(3200), closed=False)
    error = reason(path)
    assert error.reason.startswith("header sizes not written yet (3200 bytes of audio")
    assert not error.permanent
    assert not is_wav_complete(path)


def test_recording_completes_when_asterisk_closes_it(tmp_path: Path) -> None:
    audio = bytes(range(256)) * 50
    live = asterisk_recording(tmp_path / "live.wav", audio, closed=False)
    assert not is_wav_complete(live)
    closed = asterisk_recording(tmp_path / "live.wav", audio, closed=True)
    assert is_wav_complete(closed)
    assert inspect_wav(closed).frames == len(audio) // 2


def test_header_only_file_while_recording_is_incomplete(tmp_path: Path) -> None:
    # MixMonitor has just opened the file: a 44-byte header with zero sizes.
    path = asterisk_recording(tmp_path / "new.wav", b"", closed=False)
    assert not is_wav_complete(path)
    assert reason(path).reason.startswith("no audio frames")


@pytest.mark.parametrize("content", [None, b"", b"RIFF", b"hello world, not audio at all"])
def test_completeness_of_missing_or_unreadable_files(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "f.wav"
    if content is not None:
        path.write_bytes(content)
    assert not is_wav_complete(path)


def test_chunk_after_data_is_allowed(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "l.wav", 800)
    data = bytearray(path.read_bytes())
    trailer = struct.pack("<4sI", b"LIST", 4) + b"INFO"
    data[4:8] = struct.pack("<I", len(data) + len(trailer) - 8)
    path.write_bytes(bytes(data) + trailer)
    assert is_wav_complete(path)
    assert inspect_wav(path).frames == 800


def test_growing_file_is_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "grow.wav"
    shutil.copy(RECORDINGS / "call1_1795358892.211.wav", path)
    with path.open("ab") as f:
        f.write(bytes(320))
    assert not is_wav_complete(path)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=36203))
def test_every_strict_prefix_of_a_recording_is_incomplete(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "prefix.wav"
    path.write_bytes((RECORDINGS / "call1_1795358892.211.wav").read_bytes()[:cut])
    assert not is_wav_complete(path)
    # Never anything but an AudioError, and always with a reason.
    with pytest.raises(AudioError) as caught:
        inspect_wav(path)
    assert caught.value.reason
