"""WAV checks for recordings: what a file holds, why it can't be transcribed, is it finished."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

# Synchronous on purpose: these run inside worker processes or through asyncio.to_thread,
# never directly on the event loop.

_RIFF_HEADER = struct.Struct("<4sI4s")
_CHUNK_HEADER = struct.Struct("<4sI")
_FMT_BODY = struct.Struct("<HHIIHH")

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# The tail every KSDATAFORMAT_SUBTYPE_* GUID shares; the first two bytes carry the format tag.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

_FORMAT_NAMES = {
    0x0001: "PCM",
    0x0002: "MS ADPCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "µ-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",  # what Asterisk's wav49 format (".WAV") writes
    0x0055: "MP3",
    0xFFFE: "extensible",
}

# The longest fmt chunk we understand (WAVE_FORMAT_EXTENSIBLE) is 40 bytes.
_FMT_READ_LIMIT = 64
# A chunk walk never needs more than this to reach the data chunk; a larger gap means garbage.
_MAX_CHUNKS = 64


class AudioError(Exception):
    """A recording that cannot be transcribed, with a reason a person can act on.

    Attributes:
        reason: What is wrong with the file, e.g. "empty file (0 bytes)".
        permanent: False only when waiting may fix it (the file is still being written).
    """

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class WavInfo:
    """The shape of a 16-bit PCM WAV and where its samples start."""

    sample_rate: int
    channels: int
    sample_width: int
    frames: int
    duration_seconds: float
    data_offset: int

    @property
    def block_align(self) -> int:
        """Bytes per frame (all channels of one sample instant)."""
        return self.channels * self.sample_width


@dataclass(frozen=True, slots=True)
class _Layout:
    """What the chunk walk found; fields are None when the file ended before them."""

    file_size: int
    riff_size: int
    fmt: tuple[int, int, int, int, int, int] | None
    fmt_subformat: int | None
    data_offset: int | None
    data_size: int | None


def inspect_wav(path: str | os.PathLike[str]) -> WavInfo:
    """Describe a WAV recording, or say why it cannot be transcribed.

    Args:
        path: The WAV file.

    Returns:
        Sample rate, channels, sample width, frame count, duration and data offset.

    Raises:
        AudioError: The file is missing, empty, not RIFF/WAVE, not 16-bit PCM mono or stereo,
            has no audio frames, is truncated or corrupt, or is still being written
            (``permanent=False`` only for the last).
    """
    try:
        with open(path, "rb") as f:
            layout = _walk(f, os.fstat(f.fileno()).st_size)
    except FileNotFoundError:
        raise AudioError(f"file not found: {os.fspath(path)}") from None
    except IsADirectoryError:
        raise AudioError(f"not a file but a directory: {os.fspath(path)}") from None
    except PermissionError:
        raise AudioError(f"permission denied: {os.fspath(path)}") from None

    if layout.fmt is None:
        if layout.data_offset is not None:
            raise AudioError("corrupt WAV: data chunk comes before the fmt chunk")
        raise AudioError("truncated WAV: the file ends before the fmt chunk")
    format_tag, channels, sample_rate, _byte_rate, block_align, bits = layout.fmt
    encoding = format_tag
    if format_tag == _WAVE_FORMAT_EXTENSIBLE and layout.fmt_subformat is not None:
        encoding = layout.fmt_subformat
    if encoding != _WAVE_FORMAT_PCM or bits != 16:
        name = _FORMAT_NAMES.get(encoding, f"format tag 0x{encoding:04x}")
        raise AudioError(f"unsupported encoding: {bits}-bit {name}; need 16-bit PCM")
    if channels not in (1, 2):
        raise AudioError(f"unsupported channel count {channels}; need mono or stereo")
    if sample_rate <= 0 or block_align != channels * 2:
        raise AudioError(
            f"corrupt WAV: fmt chunk says {sample_rate} Hz, block align {block_align} "
            f"for {channels} channel(s) of 16-bit PCM"
        )

    if layout.data_offset is None or layout.data_size is None:
        raise AudioError("truncated WAV: no data chunk")
    available = layout.file_size - layout.data_offset
    if layout.data_size == 0 and available == 0:
        raise AudioError(f"no audio frames: header only ({layout.file_size} bytes)")
    if layout.data_size == 0:
        # Asterisk's format_wav fills in the sizes only when it closes the file.
        raise AudioError(
            f"header sizes not written yet ({available} bytes of audio follow a zero-length "
            "data chunk): the recording is still being written, or its writer died before "
            "closing it",
            permanent=False,
        )
    if layout.data_size > available:
        raise AudioError(
            f"truncated WAV: header declares {layout.data_size} bytes of audio, the file holds {available}"
        )
    frames = layout.data_size // block_align
    if frames == 0:
        raise AudioError("no audio frames: the data chunk is shorter than one frame")
    return WavInfo(
        sample_rate=sample_rate,
        channels=channels,
        sample_width=2,
        frames=frames,
        duration_seconds=frames / sample_rate,
        data_offset=layout.data_offset,
    )


def is_wav_complete(path: str | os.PathLike[str]) -> bool:
    """Tell a closed recording from one still being written.

    Asterisk's format_wav writes a header with zero sizes when it opens a file and fills in
    the RIFF and data sizes only in wav_close() (update_header()); wav_write() never touches
    them. So a MixMonitor file is finished exactly when its RIFF size equals the file size
    minus 8 and its data chunk fits the file.

    Args:
        path: The WAV file.

    Returns:
        True when the header sizes agree with the file size; False when the file is
        missing, shorter than its header, not RIFF/WAVE, or its sizes disagree (still
        being written, or cut short). A finished but empty 44-byte recording is complete.
    """
    try:
        with open(path, "rb") as f:
            layout = _walk(f, os.fstat(f.fileno()).st_size)
    except (OSError, AudioError):
        return False
    if layout.data_offset is None or layout.data_size is None:
        return False
    # wav_close() pads an odd data length with one byte after update_header() has run.
    riff_matches = layout.file_size - 8 in (layout.riff_size, layout.riff_size + 1)
    return riff_matches and layout.data_offset + layout.data_size <= layout.file_size


def _walk(f: BinaryIO, file_size: int) -> _Layout:
    """Read the RIFF header and chunk headers up to the data chunk.

    Raises:
        AudioError: Empty file, not RIFF/WAVE, or a chunk header that cannot be read.
    """
    if file_size == 0:
        raise AudioError("empty file (0 bytes)")
    head = f.read(_RIFF_HEADER.size)
    if len(head) < _RIFF_HEADER.size:
        if b"RIFF".startswith(head[:4]):
            raise AudioError(f"truncated WAV: only {file_size} bytes, less than a RIFF header")
        raise AudioError(f"not a RIFF/WAVE file (starts with {head[:4]!r})")
    magic, riff_size, form = _RIFF_HEADER.unpack(head)
    if magic != b"RIFF" or form != b"WAVE":
        raise AudioError(f"not a RIFF/WAVE file (starts with {head[:4]!r}, form {form!r})")

    fmt: tuple[int, int, int, int, int, int] | None = None
    subformat: int | None = None
    offset = _RIFF_HEADER.size
    for _ in range(_MAX_CHUNKS):
        header = f.read(_CHUNK_HEADER.size)
        if len(header) < _CHUNK_HEADER.size:
            break
        chunk_id, size = _CHUNK_HEADER.unpack(header)
        body_offset = offset + _CHUNK_HEADER.size
        if chunk_id == b"data":
            return _Layout(file_size, riff_size, fmt, subformat, body_offset, size)
        if chunk_id == b"fmt ":
            body = f.read(min(size, _FMT_READ_LIMIT))
            if size < _FMT_BODY.size or len(body) < _FMT_BODY.size:
                raise AudioError(f"truncated WAV: fmt chunk of {len(body)} bytes")
            fmt = _FMT_BODY.unpack_from(body)
            if fmt[0] == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 40 and body[26:40] == _GUID_TAIL:
                subformat = struct.unpack_from("<H", body, 24)[0]
        # RIFF chunks are word-aligned: an odd-sized chunk is followed by one pad byte.
        offset = body_offset + size + (size & 1)
        if offset > file_size:
            break
        f.seek(offset)
    return _Layout(file_size, riff_size, fmt, subformat, None, None)
