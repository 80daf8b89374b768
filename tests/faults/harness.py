"""Fault injection on the real parts: the sandbox Asterisk, mosquitto, Vosk and the real daemon.

Each scenario injects one kind of fault while real calls run, waits for everything to settle and
counts what the store and an MQTT subscriber hold. tests/faults/ runs them at CI sizes and asserts
nothing was lost or doubled; bench/faults.py runs them at full strength and prints the table of
docs/RELIABILITY.md. Random cut points come from a seeded `random.Random`, printed with the
figures, so a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from cti_bridge.app import Daemon
from cti_bridge.calls.model import Outcome
from cti_bridge.config import Config
from cti_bridge.store import Store
from cti_bridge.tickets.model import TicketNumbering
from tests.support.helpers import inbound_call, new_ticket, until
from tests.support.sandbox import AmiDriver, AsteriskSandbox, Mosquitto, wav_seconds
from tests.support.tcp_proxy import TcpProxy

SECRET_ENV = "FAULTS_AMI_SECRET"
MONITOR = "/var/spool/asterisk/monitor"

# DIDs of asterisk/sandbox/etc/extensions.conf used here.
SHORT_CALL = "4000"  # announcement, ~5 s, no agent
AGENT1_CALL = "4001"  # dials agent1, ~2 s
QUEUE_CALL = "4002"  # queue support: agent1 or agent2 answers, ~2 s
LONG_CALL = "4004"  # agent3 talks ~15 s

_blocks = itertools.count(700)


@dataclass
class Figures:
    """One row of the fault table: what was injected and what the store and broker hold after."""

    fault: str
    injected: int
    seed: int | None = None
    calls: int = 0
    tickets: int = 0
    doubled: int = 0  # extra tickets or call rows for one call
    lost: int = 0  # calls without a ticket
    unended: int = 0  # calls whose ticket never saw the end
    recordings: int = 0
    linked: int = 0
    transcribed: int = 0  # recordings with exactly one transcript and one `transcribed` entry
    transcribed_twice: int = 0
    untranscribed: int = 0
    notices_sent: int = 0
    notices_received: int = 0
    notices_missing: int = 0
    out_of_order: int = 0
    outbox_limit_logged: bool | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Nothing lost, nothing doubled, nothing out of order."""
        return not (
            self.lost
            or self.doubled
            or self.unended
            or self.transcribed_twice
            or self.untranscribed
            or self.notices_missing
            or self.out_of_order
            or self.linked < self.recordings
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Callers:
    """Fresh caller numbers (555-style, fictional), a block of 10,000 per scenario: calls are told
    apart by them."""

    def __init__(self) -> None:
        self._block = next(_blocks)
        self._n = itertools.count(1)
        self.numbers: list[str] = []

    def next(self) -> str:
        number = f"+1415{self._block:03d}{next(self._n):04d}"
        self.numbers.append(number)
        return number


# -- the daemon ---------------------------------------------------------------------------


def daemon_settings(
    asterisk: AsteriskSandbox,
    *,
    ami_port: int,
    mqtt_port: int,
    prefix: str,
    db: Path,
    model: Path | None = None,
    workers: int = 2,
    max_pending: int | None = None,
) -> dict[str, Any]:
    """The daemon's config for a scenario, as plain data (JSON is YAML, for `cti-bridge run`)."""
    mqtt: dict[str, Any] = {
        "port": mqtt_port,
        "topic_prefix": prefix,
        "reconnect": {"initial_delay": "0.5s", "max_delay": "1s"},
    }
    if max_pending is not None:
        mqtt["max_pending"] = max_pending
    transcription: dict[str, Any] = {"enabled": False}
    if model is not None:
        transcription = {
            "enabled": True,
            "workers": workers,
            "default_language": "ko",
            "models": {"ko": {"path": str(model)}},
            "recording_wait": "15s",
        }
    return {
        "pbxs": [
            {
                "name": "sandbox",
                "host": asterisk.ami_host,
                "port": ami_port,
                "username": asterisk.ami_username,
                "secret": {"env": SECRET_ENV},
                "ping_interval": "2s",
                "reconnect": {"initial_delay": "0.2s", "max_delay": "1s"},
                "inbound_contexts": ["from-pstn"],
                "recording_paths": [{"pbx": MONITOR, "local": str(asterisk.monitor_dir)}],
            }
        ],
        "agents": [
            {"id": f"agent{n}", "name": f"Agent {n}", "interfaces": [f"Local/agent{n}@agents"]}
            for n in (1, 2, 3)
        ],
        "phone": {"default_region": "US"},
        "mqtt": mqtt,
        "store": {"url": f"sqlite:///{db}"},
        "web": {"enabled": False},
        "logging": {"format": "json"},
        "transcription": transcription,
    }


@contextlib.asynccontextmanager
async def in_process(asterisk: AsteriskSandbox, settings: dict[str, Any]) -> AsyncIterator[Daemon]:
    """The real daemon wiring in this process, connected to the PBX."""
    os.environ[SECRET_ENV] = asterisk.ami_secret
    async with Daemon(Config.model_validate(settings)) as daemon:
        await asyncio.wait_for(daemon.ami[0].connected.wait(), 20)
        yield daemon


class DaemonProcess:
    """`cti-bridge run` as its own process, as an operator runs it; its output goes to a log file."""

    def __init__(self, asterisk: AsteriskSandbox, settings: dict[str, Any], folder: Path) -> None:
        self.config_path = folder / "cti-bridge.yaml"
        self.config_path.write_text(json.dumps(settings))
        self.log_path = folder / "daemon.log"
        # Any non-empty PYTHONASYNCIODEBUG turns debug mode on, "0" too: leave it out, so the
        # daemon runs as in production.
        self._env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}
        self._env[SECRET_ENV] = asterisk.ami_secret
        self.proc: asyncio.subprocess.Process | None = None
        self.exit_codes: list[int] = []

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cti_bridge",
                "run",
                "-c",
                str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self._env,
            )

    async def wait_online(self, starts: int, timeout: float = 60) -> None:
        """Wait until the log says the daemon's AMI session is up for the `starts`-th time."""
        await until(lambda: self.log_count("ami.connected") >= starts, timeout, "the daemon's AMI login")

    async def signal(self, signum: int, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signum)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        self.exit_codes.append(code)
        return code

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            await self.signal(signal.SIGTERM)

    def log_count(self, event: str) -> int:
        return len(self.log_events(event))

    def log_events(self, event: str) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                with contextlib.suppress(json.JSONDecodeError):
                    record = json.loads(line)
                    if record.get("event") == event:
                        found.append(record)
        return found

    def tracebacks(self) -> int:
        return self.log_path.read_text(errors="replace").count("Traceback") if self.log_path.exists() else 0


@contextlib.asynccontextmanager
async def opened_store(db: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite:///{db}", TicketNumbering("T-", 6))
    try:
        yield store
    finally:
        await store.close()


# -- counting -----------------------------------------------------------------------------


async def _details(store: Store, numbers: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    wanted = set(numbers)
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in await store.list_tickets(limit=1_000_000):
        if row["caller_number"] in wanted:
            detail = await store.ticket_detail(row["number"])
            assert detail is not None
            found[row["caller_number"]].append(detail)
    return found


def _settled(details: list[dict[str, Any]], transcription: bool) -> bool:
    if not details:
        return False
    for detail in details:
        if any(c["ended_at"] is None for c in detail["calls"]):
            return False
        if not detail["recordings"] or any(r["status"] == "recording" for r in detail["recordings"]):
            return False
        if transcription and any(
            r["status"] == "linked" and r["transcription"] not in ("done", "failed")
            for r in detail["recordings"]
        ):
            return False
    return True


async def settle(
    store: Store, numbers: list[str], *, transcription: bool, timeout: float, patience: float = 60
) -> None:
    """Wait until every call has ended in the store and its recording was handled; after
    `timeout`, or `patience` seconds without progress, return anyway: the census then says what
    is missing."""
    deadline = time.monotonic() + timeout
    progress, progress_at = -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - progress_at < patience:
        details = await _details(store, numbers)
        settled = sum(1 for n in numbers if _settled(details.get(n, []), transcription))
        if settled == len(numbers):
            return
        if settled != progress:
            progress, progress_at = settled, time.monotonic()
        await asyncio.sleep(0.5)


async def census(store: Store, numbers: list[str], figures: Figures, *, transcription: bool) -> Figures:
    """Count tickets, calls, recordings and transcripts of `numbers` (one call each) into `figures`."""
    details = await _details(store, numbers)
    figures.calls = len(numbers)
    for number in numbers:
        tickets = details.get(number, [])
        if not tickets:
            figures.lost += 1
            figures.notes.append(f"no ticket for {number[:-4]}****")
            continue
        figures.tickets += len(tickets)
        calls = [c for t in tickets for c in t["calls"]]
        figures.doubled += len(tickets) - 1 + max(0, len(calls) - 1)
        figures.unended += sum(1 for c in calls if c["ended_at"] is None)
        for ticket in tickets:
            _count_recordings(ticket, figures, transcription)
    return figures


def _count_recordings(ticket: dict[str, Any], figures: Figures, transcription: bool) -> None:
    transcripts = Counter(t["recording_id"] for t in ticket["transcripts"])
    entries = Counter(h["data"].get("recording_id") for h in ticket["history"] if h["kind"] == "transcribed")
    for recording in ticket["recordings"]:
        figures.recordings += 1
        if recording["status"] == "linked":
            figures.linked += 1
        else:
            status = f"{recording['status']} ({recording['error']})"
            figures.notes.append(f"{ticket['number']}: recording {status}")
        if not transcription or recording["status"] != "linked":
            continue
        done = transcripts[recording["id"]], entries[recording["id"]]
        if done == (1, 1):
            figures.transcribed += 1
        elif max(done) > 1:
            figures.transcribed_twice += 1
        else:
            figures.untranscribed += 1
            figures.notes.append(f"{ticket['number']}: recording {recording['id']} not transcribed")


# -- 1. AMI connection cuts ---------------------------------------------------------------


async def ami_cuts(
    asterisk: AsteriskSandbox, driver: AmiDriver, broker: Mosquitto, folder: Path, *, cuts: int, seed: int
) -> Figures:
    """Cut the daemon's AMI connection `cuts` times at random moments while calls come in.

    A loopback proxy sits between the daemon and Asterisk; each cut aborts the connection
    (both ways, as a dropped link would) and refuses new ones for a random 0–0.6 s.
    """
    figures = Figures("AMI connection cut (TCP proxy)", cuts, seed)
    rng = random.Random(seed)
    callers = Callers()
    started = time.monotonic()
    async with TcpProxy(asterisk.ami_host, asterisk.ami_port) as proxy:
        settings = daemon_settings(
            asterisk, ami_port=proxy.port, mqtt_port=broker.port, prefix=_prefix(), db=folder / "cuts.db"
        )
        async with in_process(asterisk, settings) as daemon:
            stop = asyncio.Event()

            async def place_calls() -> None:
                call_rng = random.Random(seed + 1)
                while not stop.is_set():
                    await driver.originate(call_rng.choice([SHORT_CALL, AGENT1_CALL]), callers.next())
                    await asyncio.sleep(call_rng.uniform(0.2, 0.8))

            calling = asyncio.create_task(place_calls(), name="faults-calls")
            try:
                cut_at = 0  # sessions the proxy had opened at the last cut
                for _ in range(cuts):
                    # Each cut hits a session the daemon opened since the last one (logging in,
                    # resyncing or streaming), never only the refused reconnects.
                    await until(lambda c=cut_at: proxy.connections > c, 30, "the daemon to reconnect")
                    await asyncio.sleep(rng.uniform(0.0, 1.5))
                    cut_at = proxy.connections
                    proxy.cut()
                    await asyncio.sleep(rng.uniform(0.0, 0.6))
                    proxy.restore()
            finally:
                stop.set()
                await calling
            await asterisk.wait_idle(60)
            assert daemon.store is not None
            await settle(daemon.store, callers.numbers, transcription=False, timeout=60)
            await census(daemon.store, callers.numbers, figures, transcription=False)
    figures.notes.append(f"proxy connections: {proxy.connections}")
    figures.seconds = round(time.monotonic() - started, 1)
    return figures


def _prefix() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"


# -- 2. Asterisk killed or terminated mid-call, then restarted -------------------------------


async def terminate_asterisk(asterisk: AsteriskSandbox, timeout: float = 30) -> None:
    """SIGTERM the PBX (not `core stop now`): what an init system's stop or an OOM-less kill does."""
    pid_file = Path(f"{asterisk.root}.pid")
    pid = int((await asyncio.to_thread(pid_file.read_text)).strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(Path(f"/proc/{pid}").exists):
        if time.monotonic() > deadline:
            raise TimeoutError(f"asterisk {pid} still running {timeout} s after SIGTERM")
        await asyncio.sleep(0.1)


async def asterisk_crash(
    asterisk: AsteriskSandbox,
    driver: AmiDriver,
    broker: Mosquitto,
    folder: Path,
    *,
    signum: int,
    rounds: int,
    calls: int,
) -> Figures:
    """`rounds` times: `calls` answered long calls, then the PBX gets `signum` and is started again;
    a few calls after each restart check the daemon is back."""
    name = "SIGKILL" if signum == signal.SIGKILL else "SIGTERM"
    figures = Figures(f"Asterisk {name} mid-call, restart", rounds)
    callers = Callers()
    started = time.monotonic()
    settings = daemon_settings(
        asterisk, ami_port=asterisk.ami_port, mqtt_port=broker.port, prefix=_prefix(), db=folder / "pbx.db"
    )
    async with in_process(asterisk, settings) as daemon:
        store = daemon.store
        assert store is not None
        for _ in range(rounds):
            live = [callers.next() for _ in range(calls)]
            for number in live:
                await driver.originate(LONG_CALL, number)
            await until(lambda live=live: _all_answered(store, live), 30, "the long calls answered")
            sessions = daemon.ami[0].sessions
            if signum == signal.SIGKILL:
                await asterisk.kill()
            else:
                await terminate_asterisk(asterisk)
            await asterisk.start()
            await driver.wait_logged_in(30)
            await until(
                lambda s=sessions: daemon.ami[0].sessions > s and daemon.ami[0].connected.is_set(),
                30,
                "the daemon's new AMI session",
            )
            for _ in range(calls):
                await driver.originate(AGENT1_CALL, callers.next())
            await asterisk.wait_idle(60)
        await settle(store, callers.numbers, transcription=False, timeout=60)
        await census(store, callers.numbers, figures, transcription=False)
    figures.seconds = round(time.monotonic() - started, 1)
    return figures


async def _all_answered(store: Store, numbers: list[str]) -> bool:
    details = await _details(store, numbers)
    return all(
        len(details.get(n, [])) == 1 and any(c["answered_at"] for c in details[n][0]["calls"])
        for n in numbers
    )


# -- 3. the daemon killed or terminated during a call burst ---------------------------------


async def daemon_kill_burst(
    asterisk: AsteriskSandbox,
    driver: AmiDriver,
    broker: Mosquitto,
    model: Path,
    folder: Path,
    *,
    signum: int,
    calls: int,
    seed: int,
    dids: tuple[str, ...] = (SHORT_CALL, AGENT1_CALL, QUEUE_CALL),
) -> Figures:
    """`cti-bridge run` gets `signum` at a random point of a `calls`-call burst to `dids` and is
    started again at once; the burst goes on once it is back. Recordings are transcribed.

    With SIGKILL, a call still in the IVR (SHORT_CALL: not yet routed, so not yet ticketed) at
    the kill that ends before the restart is lost: the killed run knew it only in memory. See
    docs/RELIABILITY.md ("Known gap")."""
    name = "SIGKILL" if signum == signal.SIGKILL else "SIGTERM"
    mix = "" if SHORT_CALL in dids else " (routed calls only)"
    figures = Figures(f"daemon {name} during a {calls}-call burst{mix}", 1, seed)
    rng = random.Random(seed)
    kill_after = rng.randrange(calls // 4, 3 * calls // 4)
    callers = Callers()
    started = time.monotonic()
    db = folder / "burst.db"
    settings = daemon_settings(
        asterisk, ami_port=asterisk.ami_port, mqtt_port=broker.port, prefix=_prefix(), db=db, model=model
    )
    daemon = DaemonProcess(asterisk, settings, folder)
    await daemon.start()
    try:
        await daemon.wait_online(1)
        for n in range(calls):
            await driver.originate(rng.choice(dids), callers.next())
            if n == kill_after:
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                await daemon.signal(signum)
                await daemon.start()
                await daemon.wait_online(2)
            await asyncio.sleep(rng.uniform(0.02, 0.2))
        await asterisk.wait_idle(90)
        async with opened_store(db) as store:
            await settle(store, callers.numbers, transcription=True, timeout=600)
            await census(store, callers.numbers, figures, transcription=True)
    finally:
        await daemon.close()
    figures.notes.append(f"kill after call {kill_after + 1}; exit codes {daemon.exit_codes}")
    figures.notes.append(f"tracebacks in the log: {daemon.tracebacks()}")
    figures.seconds = round(time.monotonic() - started, 1)
    return figures


# -- 4. the daemon killed or terminated during a transcription backlog ----------------------


def backlog_prompts(asterisk: AsteriskSandbox) -> list[Path]:
    """Short real English prompts (1–2 s) from the sandbox's sounds."""
    found = sorted(p for p in asterisk.sounds_dir.glob("*.wav") if 16_000 <= p.stat().st_size <= 32_000)
    if not found:
        raise AssertionError(f"no 1–2 s prompts under {asterisk.sounds_dir}")
    return found


async def seed_backlog(db: Path, prompts: list[Path], count: int, callers: Callers) -> None:
    """`count` ended calls, each with a linked recording whose transcription job is queued,
    written through the store's own API (as the pipeline and the recording service would)."""
    now = time.time()
    async with opened_store(db) as store:
        for n in range(count):
            number = callers.next()
            call = inbound_call(f"{int(now)}.{n}", pbx="sandbox", caller_number=number, started_at=now)
            await store.create_ticket_for_call(new_ticket(caller_number=number), call, number, now)
            ended = dataclasses.replace(call, ended_at=now + 1, outcome=Outcome.IVR)
            await store.record_call_end(ended, now + 1)
            prompt = prompts[n % len(prompts)]
            recording = await store.add_recording(call, f"{MONITOR}/backlog-{n}.wav", str(prompt), now)
            assert recording is not None
            await store.link_recording(
                recording,
                status="linked",
                size_bytes=prompt.stat().st_size,
                duration_seconds=wav_seconds(prompt),
                error=None,
                language="ko",
                at=now,
            )


async def daemon_kill_backlog(
    asterisk: AsteriskSandbox,
    broker: Mosquitto,
    model: Path,
    folder: Path,
    *,
    signum: int,
    recordings: int,
    seed: int,
) -> Figures:
    """`recordings` wait for transcription when `cti-bridge run` starts; it gets `signum` once a
    random share of them is done, and is started again."""
    name = "SIGKILL" if signum == signal.SIGKILL else "SIGTERM"
    figures = Figures(f"daemon {name} during a {recordings}-recording backlog", 1, seed)
    rng = random.Random(seed)
    kill_at = rng.randrange(max(1, recordings // 5), max(2, recordings // 2))
    callers = Callers()
    started = time.monotonic()
    db = folder / "backlog.db"
    await seed_backlog(db, backlog_prompts(asterisk), recordings, callers)
    settings = daemon_settings(
        asterisk, ami_port=asterisk.ami_port, mqtt_port=broker.port, prefix=_prefix(), db=db, model=model
    )
    daemon = DaemonProcess(asterisk, settings, folder)
    await daemon.start()
    try:
        async with opened_store(db) as store:
            await _wait_jobs(store, kill_at, f"{kill_at} transcripts before the kill")
            await daemon.signal(signum)
            await daemon.start()
            await _wait_jobs(store, recordings, "the whole backlog")
            await census(store, callers.numbers, figures, transcription=True)
            figures.notes.append(f"jobs {await store.job_states()}")
    finally:
        await daemon.close()
    figures.notes.append(f"kill after {kill_at} transcripts; exit codes {daemon.exit_codes}")
    figures.notes.append(f"tracebacks in the log: {daemon.tracebacks()}")
    figures.seconds = round(time.monotonic() - started, 1)
    return figures


async def _wait_jobs(store: Store, count: int, what: str, patience: float = 120) -> None:
    """Wait until `count` jobs are finished, as long as they keep finishing: on a loaded
    machine a 1 s prompt can take 20 s to transcribe, so a fixed timeout would measure the
    machine. Raises AssertionError after `patience` seconds without one more job finished."""
    finished, progress_at = -1, time.monotonic()
    while True:
        states = await store.job_states()
        done = states.get("done", 0) + states.get("failed", 0)
        if done >= count:
            return
        if done != finished:
            finished, progress_at = done, time.monotonic()
        elif time.monotonic() - progress_at > patience:
            raise AssertionError(f"{what}: stuck at {done} finished jobs for {patience:.0f} s ({states})")
        await asyncio.sleep(0.5)


# -- 5. the broker stopped during calls ----------------------------------------------------


class PersistentInbox:
    """A real MQTT subscriber with a persistent session (clean_session off, QoS 1) that reconnects
    by itself: what an agent's desktop client does. Keeps every message in arrival order."""

    def __init__(self, port: int, prefix: str) -> None:
        self.port = port
        self.prefix = prefix
        self.messages: list[tuple[str, bytes]] = []  # (topic below the prefix, payload)
        self.sessions = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PersistentInbox:
        self._task = asyncio.create_task(self._collect(), name=f"faults-inbox-{self.prefix}")
        await until(lambda: self.sessions > 0, 10, "the subscription")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _collect(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=f"inbox-{self.prefix}", clean_session=False
                ) as client:
                    await client.subscribe(f"{self.prefix}/#", qos=1)
                    self.sessions += 1
                    async for message in client.messages:
                        topic = str(message.topic).removeprefix(f"{self.prefix}/")
                        self.messages.append((topic, bytes(message.payload)))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    def distinct(self) -> list[tuple[str, dict[str, Any]]]:
        """Each message once (QoS 1 may repeat one, and a re-subscription repeats retained ones), in
        the order of its first arrival; the status topic left out."""
        seen: set[tuple[str, bytes]] = set()
        found = []
        for topic, payload in self.messages:
            if topic == "status" or (topic, payload) in seen:
                continue
            seen.add((topic, payload))
            found.append((topic, json.loads(payload)))
        return found


# The field that orders each per-agent and per-ticket stream, as the daemon wrote it.
_ORDER_KEYS = {"screenpop": "sent_at", "notifications": "id", "callbacks": "sent_at"}


def out_of_order(messages: list[tuple[str, dict[str, Any]]]) -> int:
    """Messages that arrived after a later one of the same agent's (or ticket's) stream."""
    last: dict[str, Any] = {}
    late = 0
    for topic, body in messages:
        parts = topic.split("/")
        if parts[0] == "agents" and len(parts) == 3 and parts[2] in _ORDER_KEYS:
            key = body[_ORDER_KEYS[parts[2]]]
        elif parts[0] == "tickets" and len(parts) == 2:
            key = body["at"]
        else:
            continue  # retained agent states: only the latest matters
        if topic in last and key < last[topic]:
            late += 1
        last[topic] = max(key, last.get(topic, key))
    return late


def missing_notices(
    messages: list[tuple[str, dict[str, Any]]], details: dict[str, list[dict[str, Any]]]
) -> int:
    """Per call: its answering agent's `answered` pop, and `created`, `call_answered`, `call_ended`
    on its ticket's topic, in that order. Counts what is absent or in the wrong order."""
    missing = 0
    for tickets in details.values():
        for ticket in tickets:
            number = ticket["caller_number"]
            notices = [b["event"] for t, b in messages if t == f"tickets/{ticket['number']}"]
            wanted = ["created", "call_answered", "call_ended"]
            got = [e for e in notices if e in wanted]
            missing += sum(1 for e in wanted if e not in got) + (got[:3] != wanted and len(got) >= 3)
            for call in ticket["calls"]:
                pops = [
                    b["event"]
                    for t, b in messages
                    if t == f"agents/{call['agent_id']}/screenpop" and b["call"]["caller_number"] == number
                ]
                missing += "answered" not in pops
    return missing


async def broker_outage(
    asterisk: AsteriskSandbox,
    driver: AmiDriver,
    folder: Path,
    *,
    seconds: float,
    calls: int,
    max_pending: int | None = None,
) -> Figures:
    """Stop mosquitto (SIGTERM) for `seconds` while `calls` answered calls come in, spread over
    the outage, then start it again; a real subscriber counts what arrives, and in what order."""
    figures = Figures(f"mosquitto stopped for {seconds:g} s", 1)
    callers = Callers()
    started = time.monotonic()
    prefix = _prefix()
    broker = Mosquitto(persistent=True)
    await broker.start()
    try:
        settings = daemon_settings(
            asterisk,
            ami_port=asterisk.ami_port,
            mqtt_port=broker.port,
            prefix=prefix,
            db=folder / "broker.db",
            max_pending=max_pending,
        )
        async with PersistentInbox(broker.port, prefix) as inbox, in_process(asterisk, settings) as daemon:
            publisher, store = daemon.publisher, daemon.store
            assert publisher is not None and store is not None
            await driver.originate(AGENT1_CALL, callers.next())  # one call before: all is well
            await until(lambda: len(inbox.distinct()) >= 5, 20, "the first call's pops")
            await broker.stop()
            outage_started = time.monotonic()
            for n in range(calls):
                await driver.originate(AGENT1_CALL if n % 2 else QUEUE_CALL, callers.next())
                await asyncio.sleep(seconds / (calls + 1))
            await asterisk.wait_idle(60)
            await asyncio.sleep(max(0.0, seconds - (time.monotonic() - outage_started)))
            figures.notes.append(f"pending after {seconds:g} s: {publisher.pending}")
            await broker.start()
            await driver.originate(AGENT1_CALL, callers.next())  # and one after
            await asterisk.wait_idle(60)
            await settle(store, callers.numbers, transcription=False, timeout=60)
            await until(lambda: publisher.pending == 0, 60, "the outbox to drain")
            await asyncio.sleep(1.0)  # the last PUBACKed messages on their way to the subscriber
            await census(store, callers.numbers, figures, transcription=False)
            messages = inbox.distinct()
            agent_states = sum(1 for t, _ in messages if t.endswith("/state"))
            figures.notices_sent = publisher.published - agent_states
            figures.notices_received = len(messages) - agent_states
            figures.notices_missing = missing_notices(messages, await _details(store, callers.numbers))
            figures.notices_missing += max(0, figures.notices_sent - figures.notices_received)
            figures.out_of_order = out_of_order(messages)
            figures.notes.append(f"dropped by the outbox: {publisher.dropped}")
            figures.notes.append(f"subscriber sessions: {inbox.sessions}")
    finally:
        await broker.stop()
        broker.remove_files()
    figures.seconds = round(time.monotonic() - started, 1)
    return figures


# -- a clean stop while a call is still in the IVR --------------------------------------------


async def stop_during_ivr(
    asterisk: AsteriskSandbox, driver: AmiDriver, broker: Mosquitto, folder: Path
) -> Figures:
    """The daemon stops cleanly (what SIGTERM does) while a call is still in the IVR (not yet
    routed, so not yet ticketed); the call ends before the daemon is started again."""
    figures = Figures("clean stop with a call in the IVR", 1)
    callers = Callers()
    started = time.monotonic()
    settings = daemon_settings(
        asterisk, ami_port=asterisk.ami_port, mqtt_port=broker.port, prefix=_prefix(), db=folder / "ivr.db"
    )
    number = callers.next()
    async with in_process(asterisk, settings) as daemon:
        assert daemon.pipeline is not None
        pipeline = daemon.pipeline
        await driver.originate(SHORT_CALL, number)  # ~5 s of announcements, no agent, no queue
        await until(
            lambda: any(c.caller_number == number for c in pipeline.live_calls), 10, "the call tracked"
        )
    await asterisk.wait_idle(30)  # the call ends while no daemon runs
    async with in_process(asterisk, settings) as daemon:
        assert daemon.store is not None
        await settle(daemon.store, callers.numbers, transcription=False, timeout=20)
        await census(daemon.store, callers.numbers, figures, transcription=False)
    figures.seconds = round(time.monotonic() - started, 1)
    return figures
