"""Recording linking over the real store; only the MQTT edge is a list."""

import asyncio
import json
import shutil
import struct
from pathlib import Path

import pytest

from cti_bridge.config.model import PbxConfig, TranscriptionConfig
from cti_bridge.recordings import RecordingRefused, RecordingService, language_for, local_path
from cti_bridge.screenpop.outputs import OutboundMessage
from cti_bridge.store import Store
from cti_bridge.tickets.model import TicketNumbering
from tests.support.helpers import inbound_call, new_ticket

FIXTURE_WAV = Path(__file__).parents[1] / "fixtures" / "recordings" / "dial_1795358828.3.wav"


def pbx(**extra):
    return PbxConfig.model_validate({"name": "main", "username": "u", "secret": {"env": "X"}, **extra})


def test_local_path_uses_the_longest_matching_mapping(tmp_path):
    config = pbx(
        recording_paths=[
            {"pbx": "/var/spool/asterisk", "local": "/mnt/a"},
            {"pbx": "/var/spool/asterisk/monitor", "local": "/mnt/b"},
        ]
    )
    assert local_path(config, "/var/spool/asterisk/monitor/x/1.wav") == Path("/mnt/b/x/1.wav")
    assert local_path(config, "/var/spool/asterisk/other.wav") == Path("/mnt/a/other.wav")
    # A sibling folder whose name merely starts like a root is outside it.
    with pytest.raises(RecordingRefused, match="outside the recordings roots"):
        local_path(config, "/var/spool/asterisk-monitor/1.wav")


@pytest.mark.parametrize(
    "hostile",
    [
        "/spool/../../etc/passwd",
        "/spool/x/../../etc/shadow",
        "/spool/..",
        "/spool",
        "/etc/passwd",
        "//etc/passwd",
        "../../etc/passwd",
        "1.wav",
        "",
        "/spool/1.wav\0.txt",
    ],
)
def test_a_path_from_the_pbx_outside_the_recordings_root_is_refused(hostile):
    config = pbx(recording_paths=[{"pbx": "/spool", "local": "/mnt/rec"}])
    with pytest.raises(RecordingRefused):
        local_path(config, hostile)


def test_dots_that_stay_inside_the_root_are_resolved_before_mapping():
    config = pbx(recording_paths=[{"pbx": "/spool/", "local": "/mnt/rec"}])
    assert local_path(config, "/spool/a/../b/./1.wav") == Path("/mnt/rec/b/1.wav")


def test_without_mappings_the_root_is_asterisks_monitor_folder():
    config = pbx()
    assert local_path(config, "/var/spool/asterisk/monitor/q/1.wav") == Path(
        "/var/spool/asterisk/monitor/q/1.wav"
    )
    with pytest.raises(RecordingRefused, match="/var/spool/asterisk/monitor"):
        local_path(config, "/var/spool/asterisk/monitor/../../../../etc/passwd")


def test_language_rules():
    config = TranscriptionConfig.model_validate(
        {
            "default_language": "zh",
            "models": {"zh": {"path": "/m/zh"}, "en": {"path": "/m/en"}},
            "language_rules": [{"when": {"did": ["4008002000"]}, "language": "en"}],
        }
    )
    assert language_for(config, pbx="main", queue=None, did="4008002000") == "en"
    assert language_for(config, pbx="main", queue="q", did="4001") == "zh"


class Collected:
    def __init__(self):
        self.messages: list[OutboundMessage] = []

    def publish(self, message):
        self.messages.append(message)

    def events(self):
        return [json.loads(m.payload)["event"] for m in self.messages]


@pytest.fixture
async def setup(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path}/r.db", TicketNumbering())
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    config = pbx(recording_paths=[{"pbx": "/spool", "local": str(monitor)}])
    transcription = TranscriptionConfig.model_validate(
        {
            "enabled": True,
            "default_language": "en",
            "models": {"en": {"path": "/m"}},
            "recording_wait": "0.6s",
        }
    )
    out = Collected()
    woken = []
    service = RecordingService(store, [config], transcription, out, lambda: woken.append(1))
    runner = asyncio.create_task(service.run(), name="recordings-under-test")
    await asyncio.sleep(0)
    yield store, service, monitor, out, woken
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await store.close()


async def ended_call(store, linkedid, *paths):
    call = inbound_call(linkedid, started_at=1.0, ended_at=5.0, recordings=tuple(paths))
    await store.create_ticket_for_call(new_ticket(), call, None, 1.0)
    await store.record_call_end(call, 5.0)
    return call


async def settle(store, number, count=1):
    for _ in range(100):
        detail = await store.ticket_detail(number)
        if sum(r["status"] != "recording" for r in detail["recordings"]) >= count:
            return detail
        await asyncio.sleep(0.05)
    raise AssertionError("recordings never settled")


async def test_complete_recording_is_linked_and_queued(setup):
    store, service, monitor, out, woken = setup
    shutil.copy(FIXTURE_WAV, monitor / "1.wav")
    call = await ended_call(store, "1.1", "/spool/1.wav")
    service.call_ended(call)
    detail = await settle(store, "T-000001")
    [recording] = detail["recordings"]
    assert recording["status"] == "linked" and recording["duration_seconds"] == pytest.approx(1.4)
    assert recording["size_bytes"] == FIXTURE_WAV.stat().st_size
    assert recording["transcription"] == "queued" and woken == [1]
    assert out.events() == ["recording_linked"]


async def test_missing_and_unfinished_recordings_are_marked_and_still_queued(setup):
    store, service, monitor, out, _ = setup
    unfinished = FIXTURE_WAV.read_bytes()
    # As MixMonitor leaves it until it closes the file: sizes in the header still zero.
    unfinished = (
        unfinished[:4] + struct.pack("<I", 0) + unfinished[8:40] + struct.pack("<I", 0) + unfinished[44:]
    )
    (monitor / "2.wav").write_bytes(unfinished)
    call = await ended_call(store, "2.1", "/spool/2.wav", "/spool/gone.wav")
    service.call_ended(call)
    detail = await settle(store, "T-000001", count=2)
    statuses = {Path(r["local_path"]).name: (r["status"], r["error"]) for r in detail["recordings"]}
    assert statuses == {
        "2.wav": ("incomplete", "the PBX never finished writing the file"),
        "gone.wav": ("missing", "no such file"),
    }
    assert all(r["transcription"] == "queued" for r in detail["recordings"])
    assert sorted(out.events()) == ["recording_incomplete", "recording_missing"]


async def test_a_recording_path_climbing_out_of_the_root_is_refused_and_never_read(setup, tmp_path):
    store, service, _, out, woken = setup
    secret = tmp_path / "secret.wav"  # a real WAV outside the root: it must not be linked
    shutil.copy(FIXTURE_WAV, secret)
    call = await ended_call(store, "3.1", "/spool/../secret.wav")
    assert await service.announced(call, "/spool/../secret.wav") is not None
    assert await service.announced(call, "/spool/../secret.wav") is not None  # again: noted once
    service.call_ended(call)
    detail = await settle(store, "T-000001")
    [recording] = detail["recordings"]
    assert recording["status"] == "refused" and recording["local_path"] == ""
    assert "outside the recordings roots" in recording["error"]
    assert recording["size_bytes"] is None and recording["duration_seconds"] is None
    assert recording["transcription"] is None and woken == []
    assert [e["kind"] for e in detail["history"]].count("recording_refused") == 1
    assert out.events() == ["recording_refused"] and service.refused == 1


async def test_a_symlink_in_the_root_leading_outside_is_refused(setup, tmp_path):
    store, service, monitor, _, woken = setup
    secret = tmp_path / "secret.wav"
    shutil.copy(FIXTURE_WAV, secret)
    (monitor / "1.wav").symlink_to(secret)
    inside = monitor / "sub"
    inside.mkdir()
    (inside / "2.wav").symlink_to(monitor / "real.wav")  # a link that stays inside is fine
    shutil.copy(FIXTURE_WAV, monitor / "real.wav")
    call = await ended_call(store, "4.1", "/spool/1.wav", "/spool/sub/2.wav")
    service.call_ended(call)
    detail = await settle(store, "T-000001", count=2)
    statuses = {r["pbx_path"]: (r["status"], r["error"]) for r in detail["recordings"]}
    assert statuses["/spool/1.wav"] == (
        "refused",
        "the file is a link that leads outside the recordings roots",
    )
    assert statuses["/spool/sub/2.wav"] == ("linked", None)
    assert woken == [1] and service.refused == 1
