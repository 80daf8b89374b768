"""Offline transcription of call recordings with Vosk, in a pool of worker processes."""

from cti_bridge.transcribe.audio import AudioError, WavInfo, inspect_wav, is_wav_complete
from cti_bridge.transcribe.cli import transcribe_files
from cti_bridge.transcribe.errors import (
    TranscriptionError,
    TranscriptionFailed,
    WorkerCrashed,
    WorkerStartFailed,
)
from cti_bridge.transcribe.pool import WorkerPool
from cti_bridge.transcribe.result import ChannelTranscript, TranscriptionResult, Word

__all__ = [
    "AudioError",
    "ChannelTranscript",
    "TranscriptionError",
    "TranscriptionFailed",
    "TranscriptionResult",
    "WavInfo",
    "Word",
    "WorkerCrashed",
    "WorkerPool",
    "WorkerStartFailed",
    "inspect_wav",
    "is_wav_complete",
    "transcribe_files",
]
