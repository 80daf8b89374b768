"""Vosk speech recognition of a WAV file; runs in a worker process, never on the event loop."""

from __future__ import annotations

import json
import os
import time
from array import array
from collections.abc import Iterator
from typing import Any

import vosk

from cti_bridge.transcribe.audio import AudioError, WavInfo, inspect_wav

# 4000 frames is 0.5 s at 8 kHz: small enough that Vosk finds endpoints between chunks,
# large enough that the per-call overhead of AcceptWaveform stays negligible.
DEFAULT_CHUNK_FRAMES = 4000

# Vosk's Mandarin models emit one token per word with spaces between them; written Chinese
# has no spaces, so these languages are joined without a separator.
_UNSPACED_LANGUAGE_PREFIXES = ("zh",)


class ModelError(Exception):
    """A Vosk model that is missing or cannot be loaded; retrying will not help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VoskEngine:
    """Transcribes WAV files with Vosk, loading each model once per process."""

    def __init__(self, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> None:
        # Kaldi's log lines would drown the worker's stderr; errors still surface as exceptions.
        vosk.SetLogLevel(-1)
        self._chunk_frames = chunk_frames
        self._models: dict[str, vosk.Model] = {}
        # Each recording gets a new recognizer. With vosk 0.3.45 a reused one changed 13 of
        # 14 transcripts in bench/transcription.py (words, confidences, and start times that
        # count on from the previous recording), so one caller's audio would shape another's
        # transcript. The price, measured there: 1.6-2.0x the time on 2-10 s prompts. py-spy
        # puts about 75 % of a fresh recognizer's time in composing the lookahead graph
        # (HCLr.fst with Gr.fst) into its own cache, 5 % in the acoustic model; a model that
        # ships a precompiled graph/HCLG.fst, which Vosk shares between recognizers, would not
        # pay it. Even fresh recognizers are not fully isolated: the same file decoded after
        # different files in the same process gives slightly different words and confidences
        # (the same history gives the same output); only a process per recording isolates fully.

    def load_model(self, model_path: str) -> float:
        """Load a model unless it is already loaded.

        Args:
            model_path: A Vosk model directory (the one holding am/, conf/, graph/).

        Returns:
            Seconds spent loading; 0.0 when it was already loaded.

        Raises:
            ModelError: The directory is missing or Vosk cannot load it.
        """
        key = os.path.realpath(model_path)
        if key in self._models:
            return 0.0
        if not os.path.isdir(key):
            raise ModelError(f"Vosk model not found: {model_path}")
        started = time.perf_counter()
        try:
            model = vosk.Model(key)
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise ModelError(f"cannot load Vosk model {model_path}: {exc}") from exc
        self._models[key] = model
        return time.perf_counter() - started

    def transcribe(self, path: str, model_path: str, language: str) -> dict[str, Any]:
        """Transcribe a 16-bit PCM WAV, each channel of a stereo file separately.

        Args:
            path: The WAV file.
            model_path: The Vosk model directory; loaded on first use.
            language: The model's language tag; "zh*" joins words without spaces.

        Returns:
            The ``done`` payload of the worker protocol: text, words (word, start, end,
            conf, and channel for stereo), duration_seconds, language, sample_rate,
            channel_count, and channels (one {channel, text, words} per channel of a
            stereo file, empty for mono).

        Raises:
            AudioError: The file cannot be transcribed (see ``inspect_wav``).
            ModelError: The model is missing or broken.
        """
        info = inspect_wav(path)
        self.load_model(model_path)
        model = self._models[os.path.realpath(model_path)]
        recognizers = [_Recognizer(model, info.sample_rate) for _ in range(info.channels)]
        for chunk in _read_chunks(path, info, self._chunk_frames):
            for recognizer, samples in zip(recognizers, _split_channels(chunk, info.channels), strict=True):
                recognizer.accept(samples)
        stereo = info.channels == 2
        per_channel = [
            recognizer.finish(channel if stereo else None) for channel, recognizer in enumerate(recognizers)
        ]

        separator = word_separator(language)
        # Time order interleaves the two parties of a stereo call the way they spoke.
        words = sorted(
            (word for channel_words in per_channel for word in channel_words),
            key=lambda word: (word["start"], word.get("channel", 0)),
        )
        return {
            "text": separator.join(word["word"] for word in words),
            "words": words,
            "duration_seconds": info.duration_seconds,
            "language": language,
            "sample_rate": info.sample_rate,
            "channel_count": info.channels,
            "channels": [
                {
                    "channel": channel,
                    "text": separator.join(word["word"] for word in channel_words),
                    "words": channel_words,
                }
                for channel, channel_words in enumerate(per_channel)
            ]
            if stereo
            else [],
        }


def word_separator(language: str) -> str:
    """How words are joined into text: nothing for Chinese, a space for everything else."""
    return "" if language.lower().startswith(_UNSPACED_LANGUAGE_PREFIXES) else " "


def _read_chunks(path: str, info: WavInfo, chunk_frames: int) -> Iterator[bytes]:
    """Yield the data chunk in whole frames, never past its declared end."""
    remaining = info.frames * info.block_align
    chunk_bytes = chunk_frames * info.block_align
    with open(path, "rb") as f:
        f.seek(info.data_offset)
        while remaining > 0:
            chunk = f.read(min(chunk_bytes, remaining))
            if not chunk:
                # inspect_wav checked the size, so something cut the file while we read it.
                raise AudioError("the file shrank while it was being transcribed", permanent=False)
            remaining -= len(chunk)
            yield chunk


def _split_channels(chunk: bytes, channels: int) -> list[bytes]:
    """Deinterleave 16-bit little-endian PCM into one byte string per channel."""
    if channels == 1:
        return [chunk]
    samples = array("h")
    samples.frombytes(chunk[: len(chunk) - len(chunk) % (2 * channels)])
    # Slicing moves whole 2-byte samples without interpreting them, so the bytes stay
    # little-endian whatever the host's byte order.
    return [samples[channel::channels].tobytes() for channel in range(channels)]


class _Recognizer:
    """One Vosk recognizer for one channel of one recording, collecting its words."""

    def __init__(self, model: vosk.Model, sample_rate: int) -> None:
        self._vosk = vosk.KaldiRecognizer(model, sample_rate)
        self._vosk.SetWords(True)
        self._segments: list[dict[str, Any]] = []

    def accept(self, pcm: bytes) -> None:
        """Feed 16-bit little-endian mono samples."""
        if self._vosk.AcceptWaveform(pcm):
            self._segments.append(json.loads(self._vosk.Result()))

    def finish(self, channel: int | None) -> list[dict[str, Any]]:
        """End the recording; its words, tagged with ``channel`` for a stereo file."""
        self._segments.append(json.loads(self._vosk.FinalResult()))
        words: list[dict[str, Any]] = []
        for segment in self._segments:
            for item in segment.get("result", ()):
                word: dict[str, Any] = {
                    "word": item["word"],
                    "start": round(float(item["start"]), 6),
                    "end": round(float(item["end"]), 6),
                    "conf": float(item["conf"]),
                }
                if channel is not None:
                    word["channel"] = channel
                words.append(word)
        return words
