"""The WAV reader on hostile files: truncated, garbage headers, huge declared sizes, zero
channels or rates, odd chunk layouts, non-PCM formats.

Whatever the bytes, inspect_wav returns a WavInfo whose numbers fit the file or raises
AudioError; is_wav_complete answers True or False; reading the samples of an accepted file
yields exactly what the header declares. Never another exception, a hang or a huge allocation.
A corrupt recording that looks finished is linked with its reason and its ticket kept.
"""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cti_bridge.config.model import PbxConfig, TranscriptionConfig
from cti_bridge.recordings import RecordingService
from cti_bridge.store import Store
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.transcribe.audio import AudioError, WavInfo, inspect_wav, is_wav_complete
from cti_bridge.transcribe.engine import _read_chunks, _split_channels
from tests.support.helpers import inbound_call, new_ticket

RECORDING = Path(__file__).parents[1] / "fixtures" / "recordings" / "dial_1795358828.3.wav"
_FUZZ = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

sizes = st.one_of(
    st.integers(0, 64),
    st.sampled_from([0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF, 0x80000000, 1 << 24]),
    st.integers(0, 0xFFFFFFFF),
)
u16 = st.one_of(st.sampled_from([0, 1, 2, 3, 0xFFFF, 0xFFFE, 6, 7, 0x31]), st.integers(0, 0xFFFF))
u32 = st.one_of(st.sampled_from([0, 1, 8000, 0xFFFFFFFF]), st.integers(0, 0xFFFFFFFF))


@st.composite
def fmt_body(draw: st.DrawFn) -> bytes:
    """A fmt chunk body: often 16-bit PCM mono or stereo with one field or none made odd."""
    channels = draw(st.sampled_from([1, 2]))
    rate = draw(st.sampled_from([8000, 16000, 44100]))
    fields = [1, channels, rate, rate * channels * 2, channels * 2, 16]
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, 5))
        fields[at] = draw(u32 if at in (2, 3) else u16)
    body = struct.pack("<HHIIHH", *fields)
    extension = draw(st.binary(max_size=40))
    if draw(st.booleans()):  # WAVE_FORMAT_EXTENSIBLE's extension with a real subformat GUID tail
        extension = struct.pack("<HHIH", 22, 16, 0, draw(u16)) + (
            b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        )
    return body + extension


@st.composite
def chunk(draw: st.DrawFn) -> bytes:
    chunk_id = draw(
        st.sampled_from([b"fmt ", b"data", b"LIST", b"fact", b"JUNK"]) | st.binary(min_size=4, max_size=4)
    )
    body = draw(fmt_body()) if chunk_id == b"fmt " and draw(st.booleans()) else draw(st.binary(max_size=96))
    declared = len(body) if draw(st.integers(0, 3)) else draw(sizes)
    pad = b"\0" if declared % 2 and draw(st.booleans()) else b""
    return struct.pack("<4sI", chunk_id, declared) + body + pad


@st.composite
def wav_file(draw: st.DrawFn) -> bytes:
    """Mostly RIFF/WAVE with a fmt and a data chunk among odd ones, sizes right or wrong."""
    middle = draw(st.lists(chunk(), max_size=4))
    if draw(st.integers(0, 3)):  # usually a fmt chunk of some kind first...
        body = draw(fmt_body())
        declared = len(body) if draw(st.integers(0, 3)) else draw(sizes)
        middle.insert(0, struct.pack("<4sI", b"fmt ", declared) + body)
    if draw(st.integers(0, 3)):  # ... and audio last
        audio = draw(st.binary(max_size=512))
        declared = len(audio) if draw(st.integers(0, 3)) else draw(sizes)
        middle.append(struct.pack("<4sI", b"data", declared) + audio)
    chunks = b"".join(middle)
    magic, form = b"RIFF", b"WAVE"
    if not draw(st.integers(0, 7)):  # now and then not a WAV at all
        magic = draw(st.sampled_from([b"RIFX", b"RF64"]) | st.binary(min_size=4, max_size=4))
        form = draw(st.sampled_from([b"WAVE", b"AVI "]) | st.binary(min_size=4, max_size=4))
    riff_size = draw(st.one_of(st.just(4 + len(chunks)), sizes))
    content = struct.pack("<4sI4s", magic, riff_size, form) + chunks
    if not draw(st.integers(0, 2)):
        content = content[: draw(st.integers(0, len(content)))]
    return content


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wav-fuzz")


def _check(folder: Path, content: bytes) -> None:
    """inspect_wav's contract on `content`, and reading what it accepted."""
    path = folder / "fuzzed.wav"
    path.write_bytes(content)
    try:
        started = time.monotonic()
        assert is_wav_complete(path) in (True, False)
        try:
            info = inspect_wav(path)
        except AudioError as error:
            assert error.reason and isinstance(error.permanent, bool)
            event(f"refused: {error.reason.split(':')[0].split('(')[0][:30]}")
        else:
            event("accepted")
            _accepted(path, info, len(content))
        assert time.monotonic() - started < 1.0, "a hostile file took the reader a second"
    finally:
        path.unlink()


def _accepted(path: Path, info: WavInfo, file_size: int) -> None:
    assert info.channels in (1, 2) and info.sample_width == 2 and info.sample_rate > 0
    assert info.frames > 0 and info.duration_seconds == info.frames / info.sample_rate
    assert info.data_offset + info.frames * info.block_align <= file_size
    read = 0
    for piece in _read_chunks(str(path), info, 1000):
        assert len(piece) % info.block_align == 0
        assert sum(len(c) for c in _split_channels(piece, info.channels)) == len(piece)
        read += len(piece)
    assert read == info.frames * info.block_align


@_FUZZ
@given(wav_file())
def test_a_made_up_wav_is_described_or_refused_with_a_reason(folder, content):
    _check(folder, content)


@_FUZZ
@given(st.binary(max_size=256))
def test_garbage_bytes_are_refused_with_a_reason(folder, content):
    _check(folder, content)


@_FUZZ
@given(st.data())
def test_a_real_recording_with_bytes_changed_or_cut_is_described_or_refused(folder, data):
    content = bytearray(RECORDING.read_bytes())
    # The header and the first chunks are where a reader can go wrong; audio bytes are just audio.
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, 80))
        content[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        content = content[: data.draw(st.integers(0, len(content)))]
    _check(folder, bytes(content))


def header(*, format_tag=1, channels=1, rate=8000, block_align=2, bits=16, audio=b"\x01\x00" * 400):
    """A finished 44-byte-header WAV (sizes agree with the file), its fmt fields as given."""
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block_align, block_align, bits)
    body = b"WAVE" + struct.pack("<4sI", b"fmt ", 16) + fmt + struct.pack("<4sI", b"data", len(audio)) + audio
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (header(format_tag=6), "unsupported encoding: 16-bit A-law"),
        (header(channels=0, block_align=0), "unsupported channel count 0"),
        (header(rate=0), "corrupt WAV: fmt chunk says 0 Hz"),
        (header(bits=8, block_align=1), "unsupported encoding: 8-bit PCM"),
        (header(block_align=7), "corrupt WAV"),
        (header(audio=b"\x01"), "no audio frames"),
    ],
)
async def test_a_finished_but_corrupt_recording_is_linked_with_its_reason_and_the_ticket_kept(
    tmp_path, content, expected
):
    store = await Store.open(f"sqlite:///{tmp_path}/r.db", TicketNumbering())
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    (monitor / "1.wav").write_bytes(content)
    assert is_wav_complete(monitor / "1.wav")  # it looks finished: linking reads it
    pbx = PbxConfig.model_validate(
        {
            "name": "main",
            "username": "u",
            "secret": {"env": "X"},
            "recording_paths": [{"pbx": "/spool", "local": str(monitor)}],
        }
    )
    transcription = TranscriptionConfig.model_validate(
        {
            "enabled": True,
            "default_language": "en",
            "models": {"en": {"path": "/m"}},
            "recording_wait": "0.2s",
        }
    )
    published = []
    service = RecordingService(
        store, [pbx], transcription, type("P", (), {"publish": published.append})(), lambda: None
    )
    runner = asyncio.create_task(service.run(), name="recordings-under-test")
    try:
        call = inbound_call("1.1", started_at=1.0, ended_at=5.0, recordings=("/spool/1.wav",))
        await store.create_ticket_for_call(new_ticket(), call, None, 1.0)
        await store.record_call_end(call, 5.0)
        service.call_ended(call)
        for _ in range(100):
            detail = await store.ticket_detail("T-000001")
            if detail["recordings"][0]["status"] != "recording":
                break
            await asyncio.sleep(0.02)
        [recording] = detail["recordings"]
        assert recording["status"] == "linked" and recording["error"].startswith(expected)
        assert recording["duration_seconds"] is None and recording["size_bytes"] == len(content)
        assert [e["kind"] for e in detail["history"]].count("recording_linked") == 1
        assert detail["number"] == "T-000001" and not runner.done()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await store.close()
