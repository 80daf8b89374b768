"""What a finished transcription returns: the text, timed words and per-channel transcripts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word; times in seconds from the start of the recording.

    ``channel`` is 0 or 1 for stereo recordings and None for mono ones.
    """

    word: str
    start: float
    end: float
    conf: float
    channel: int | None = None


@dataclass(frozen=True, slots=True)
class ChannelTranscript:
    """The transcript of one channel of a stereo recording (one call party)."""

    channel: int
    text: str
    words: tuple[Word, ...]


@dataclass(frozen=True, slots=True)
class TranscriptionResult:
    """A transcribed recording.

    For stereo recordings ``words`` holds both channels in time order and ``channels``
    one transcript per channel; for mono recordings ``channels`` is empty.
    """

    text: str
    words: tuple[Word, ...]
    duration_seconds: float
    elapsed_seconds: float
    language: str
    sample_rate: int
    channel_count: int
    channels: tuple[ChannelTranscript, ...]
    worker_pid: int

    @property
    def speed(self) -> float:
        """Audio seconds transcribed per wall-clock second spent in the worker."""
        return self.duration_seconds / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0
