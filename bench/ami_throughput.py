"""AMI throughput: a busy PBX's event stream through the daemon's full path vs bare panoramisk.

The stream is the recorded queue and dial captures, copied into N calls with fresh
Uniqueids, Linkedids, channel names, bridge ids and caller numbers, K of them in
flight at once with their events interleaved round-robin. The same bytes are served
twice over loopback TCP by the replay server: once to a bare panoramisk Manager that
only counts events, once to the real `Daemon` (parse -> call tracking -> SQLite
tickets -> MQTT). Each rate runs from the first streamed byte to the last event handled.

    .venv/bin/python bench/ami_throughput.py [--calls 2000] [--concurrency 50] [--json]
    .venv/bin/python bench/ami_throughput.py --profile full.prof   # cProfile the full path
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import re
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: tests.support is not installed

import panoramisk  # noqa: E402

from cti_bridge.app import Daemon  # noqa: E402
from cti_bridge.config import Config  # noqa: E402
from cti_bridge.config.model import LoggingConfig  # noqa: E402
from cti_bridge.logs import configure_logging  # noqa: E402
from tests.support.ami_replay import AmiReplayServer, events_of_capture  # noqa: E402
from tests.support.sandbox import Mosquitto  # noqa: E402

CAPTURES = (
    ROOT / "tests/fixtures/ami/queue_raw_passive_rx.ami",
    ROOT / "tests/fixtures/ami/dial_raw_passive_rx.ami",
)
# Session-level events, not part of a call. OriginateResponse answers the capture rig's
# Originate: the daemon sends none, and panoramisk never hands it to '*' callbacks anyway.
_NOT_PER_CALL = frozenset({b"FullyBooted", b"SuccessfulAuth", b"OriginateResponse"})
# What the daemon reads besides the stream: FullyBooted after login.
_SESSION_EVENTS = 1
ASTERISK_EVENTS_PER_SECOND = 4_500  # what the real Asterisk sandbox produced at full tilt
_SECRET = "replay-secret"

_EVENT_NAME = re.compile(rb"Event: (\w+)")
_UNIQUEID = re.compile(rb"\b\d{10}\.\d+\b")  # Uniqueid, Linkedid, Dest*, recording file names
_CHANNEL_COUNTER = re.compile(rb"-([0-9a-f]{8});")  # Local/300@test-context-00000003;1
_BRIDGE_ID = re.compile(rb"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_TEST_NUMBER = re.compile(rb"\+1555123000(\d)")  # the captures' callers: +15551230001..3


# -- the stream ------------------------------------------------------------------


class _Renumbering:
    """Hands out ids that never repeat across the calls of one stream."""

    def __init__(self) -> None:
        self._uniqueids = iter(range(10, 10**9))
        self._channels = iter(range(0x10, 0xFFFFFFFF))

    def call(self, template: list[bytes], index: int) -> list[bytes]:
        """One copy of a capture's events as a new call: its own ids, channels and caller."""
        uniqueids: dict[bytes, bytes] = {}
        channels: dict[bytes, bytes] = {}

        def uniqueid(match: re.Match[bytes]) -> bytes:
            if match[0] not in uniqueids:
                uniqueids[match[0]] = b"1800000000.%d" % next(self._uniqueids)
            return uniqueids[match[0]]

        def channel(match: re.Match[bytes]) -> bytes:
            if match[1] not in channels:
                channels[match[1]] = b"%08x" % next(self._channels)
            return b"-" + channels[match[1]] + b";"

        bridge = str(uuid.UUID(int=index + 1)).encode()
        rewritten = []
        for event in template:
            event = _UNIQUEID.sub(uniqueid, event)
            event = _CHANNEL_COUNTER.sub(channel, event)
            event = _BRIDGE_ID.sub(bridge, event)
            # +1 555 NNNNNN d: the call's own caller, so no call reuses another's ticket.
            event = _TEST_NUMBER.sub(lambda m: b"+1555%06d%s" % (index, m[1]), event)
            rewritten.append(event)
        return rewritten


def _per_call_events(path: Path) -> list[bytes]:
    return [e for e in events_of_capture(path) if _event_name(e) not in _NOT_PER_CALL]


def _event_name(event: bytes) -> bytes:
    match = _EVENT_NAME.search(event)
    return match[1] if match else b""


def build_stream(calls: int, concurrency: int) -> list[bytes]:
    """N unique calls, alternating the captures, K in flight, their events round-robin.

    Returns:
        The raw AMI messages in the order the server sends them.
    """
    templates = [_per_call_events(path) for path in CAPTURES]
    renumbering = _Renumbering()
    waiting = deque(renumbering.call(templates[i % len(templates)], i) for i in range(calls))
    in_flight: deque[Iterator[bytes]] = deque()
    stream: list[bytes] = []
    while waiting or in_flight:
        while waiting and len(in_flight) < concurrency:  # a call that ended makes room
            in_flight.append(iter(waiting.popleft()))
        for _ in range(len(in_flight)):
            call = in_flight.popleft()
            event = next(call, None)
            if event is not None:
                stream.append(event)
                in_flight.append(call)
    return stream


class _TimedReplayServer(AmiReplayServer):
    """The test replay server, noting when it began to stream (the resync answer comes first)."""

    def __init__(self, events: list[bytes]) -> None:
        super().__init__(events, secret=_SECRET)
        self.first_byte_at: float | None = None
        self.cpu_at_first_byte = _Cpu(0.0, 0.0)

    async def _answer(self, action: dict[str, str], writer: asyncio.StreamWriter) -> None:
        if action.get("Action", "").lower() == "coreshowchannels":
            self.first_byte_at = time.perf_counter()
            self.cpu_at_first_byte = _Cpu.now()
        await super()._answer(action, writer)


# -- the two measurements --------------------------------------------------------


@dataclass(frozen=True)
class _Cpu:
    """CPU seconds of the whole process and of the event loop's thread alone: the loop's
    share of the wall time says whether it was busy or waiting (e.g. on the database thread)."""

    process: float
    loop_thread: float

    @classmethod
    def now(cls) -> _Cpu:
        return cls(time.process_time(), time.thread_time())

    def since(self, start: _Cpu) -> _Cpu:
        return _Cpu(self.process - start.process, self.loop_thread - start.loop_thread)


@dataclass(frozen=True)
class Run:
    events: int
    calls: int
    seconds: float
    cpu: _Cpu
    tickets: int | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.seconds


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


async def bare_parse(stream: list[bytes], calls: int, timeout: float) -> Run:
    """panoramisk alone: parse the stream and count the events its '*' callbacks get."""
    counted = 0

    def count(_manager: object, message: Any) -> None:
        nonlocal counted
        if "ActionID" not in message and message.get("Event") != "FullyBooted":
            counted += 1

    async with _TimedReplayServer(stream) as server:
        manager = panoramisk.Manager(
            loop=asyncio.get_running_loop(),
            host="127.0.0.1",
            port=server.port,
            username="bench",
            secret=_SECRET,
            ping_delay=10**6,
            reconnect_timeout=10**6,
        )
        manager.register_event("*", count)
        await manager.connect()
        await manager.authenticated_future
        await manager.send_action({"Action": "CoreShowChannels"})  # the server streams after it
        await _until(lambda: counted >= len(stream), timeout, f"{len(stream)} events (got {counted})")
        finished_at, cpu = time.perf_counter(), _Cpu.now()
        manager.close()
    assert server.first_byte_at is not None
    return Run(counted, calls, finished_at - server.first_byte_at, cpu.since(server.cpu_at_first_byte))


def _daemon_config(ami_port: int, mqtt_port: int, db_path: Path) -> Config:
    return Config.model_validate(
        {
            "pbxs": [
                {
                    "name": "pbx1",
                    "port": ami_port,
                    "username": "cti",
                    "secret": {"env": "BENCH_AMI_SECRET"},
                    "inbound_contexts": ["test-context"],
                }
            ],
            "agents": [{"id": "agent1", "name": "Agent One", "interfaces": ["Local/agent1@agents"]}],
            "phone": {"default_region": "US"},
            "mqtt": {"port": mqtt_port, "topic_prefix": f"bench-{uuid.uuid4().hex[:8]}"},
            "store": {"url": f"sqlite:///{db_path}"},
            "web": {"enabled": False},
            "transcription": {"enabled": False},
        }
    )


async def full_path(stream: list[bytes], calls: int, timeout: float, mqtt_port: int) -> Run:
    """The real daemon: until the pipeline has handled every event and MQTT has taken every message."""
    os.environ["BENCH_AMI_SECRET"] = _SECRET
    with tempfile.TemporaryDirectory(prefix="cti-bench-") as tmp:
        async with _TimedReplayServer(stream) as server:
            config = _daemon_config(server.port, mqtt_port, Path(tmp) / "bench.db")
            async with Daemon(config) as daemon:
                pipeline, publisher, store = daemon.pipeline, daemon.publisher, daemon.store
                assert pipeline is not None and publisher is not None and store is not None
                expected = len(stream) + _SESSION_EVENTS

                def received() -> int:
                    return sum(client.events_received for client in daemon.ami)

                await _until(
                    lambda: received() >= expected, timeout, f"{expected} events read (got {received()})"
                )
                await pipeline.drain()
                await _until(lambda: publisher.pending == 0, timeout, "MQTT to take every message")
                finished_at, cpu = time.perf_counter(), _Cpu.now()
                tickets = len(await store.list_tickets(limit=calls + 1))
                if pipeline.failed or pipeline.malformed:
                    raise RuntimeError(f"pipeline: {pipeline.failed} failed, {pipeline.malformed} malformed")
    assert server.first_byte_at is not None
    return Run(
        received() - _SESSION_EVENTS,
        calls,
        finished_at - server.first_byte_at,
        cpu.since(server.cpu_at_first_byte),
        tickets,
    )


# -- report ------------------------------------------------------------------------


async def measure(calls: int, concurrency: int, timeout: float, profile: Path | None) -> dict[str, Any]:
    stream = build_stream(calls, concurrency)
    mosquitto = Mosquitto()
    await mosquitto.start()
    try:
        bare = await bare_parse(stream, calls, timeout)
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        full = await full_path(stream, calls, timeout, mosquitto.port)
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
    finally:
        await mosquitto.stop()
    ratio = full.events_per_second / bare.events_per_second
    return {
        "calls": calls,
        "concurrency": concurrency,
        "events": len(stream),
        "stream_bytes": sum(map(len, stream)),
        "nproc": os.cpu_count(),
        "profiled": bool(profile),
        "bare_parse": _run_json(bare),
        "full_path": _run_json(full),
        "full_over_bare": round(ratio, 3),
        "full_over_asterisk": round(full.events_per_second / ASTERISK_EVENTS_PER_SECOND, 2),
        "targets_met": {
            "full_at_least_half_of_bare": ratio >= 0.5,
            "full_at_least_10x_asterisk": full.events_per_second >= 10 * ASTERISK_EVENTS_PER_SECOND,
        },
    }


def _run_json(run: Run) -> dict[str, Any]:
    return {
        **{k: v for k, v in asdict(run).items() if v is not None and k != "cpu"},
        "seconds": round(run.seconds, 4),
        "process_cpu_seconds": round(run.cpu.process, 3),
        "loop_thread_cpu_seconds": round(run.cpu.loop_thread, 3),
        "loop_busy_fraction": round(run.cpu.loop_thread / run.seconds, 3),
        "events_per_second": round(run.events_per_second),
        "calls_per_second": round(run.calls_per_second, 1),
    }


def table(result: dict[str, Any]) -> str:
    bare, full = result["bare_parse"], result["full_path"]
    lines = [
        f"{result['calls']} calls, {result['concurrency']} in flight, {result['events']} events "
        f"({result['stream_bytes'] / 1e6:.1f} MB), nproc {result['nproc']}"
        + (" [full path under cProfile]" if result["profiled"] else ""),
        "",
        f"{'path':<12}{'seconds':>10}{'events/s':>12}{'calls/s':>10}{'tickets':>9}{'loop busy':>11}"
        f"{'cpu s':>8}",
    ]
    for name, run in (("bare parse", bare), ("full path", full)):
        tickets = run.get("tickets", "-")
        lines.append(
            f"{name:<12}{run['seconds']:>10.3f}{run['events_per_second']:>12,}"
            f"{run['calls_per_second']:>10,.1f}{tickets:>9}{run['loop_busy_fraction']:>11.0%}"
            f"{run['process_cpu_seconds']:>8.2f}"
        )
    targets = result["targets_met"]
    lines += [
        "",
        f"full / bare     {result['full_over_bare']:.2f}  (target >= 0.5: "
        f"{'met' if targets['full_at_least_half_of_bare'] else 'NOT met'})",
        f"full / Asterisk {result['full_over_asterisk']:.1f}x "
        f"(target >= 10x {ASTERISK_EVENTS_PER_SECOND:,}/s: "
        f"{'met' if targets['full_at_least_10x_asterisk'] else 'NOT met'})",
    ]
    return "\n".join(lines)


def hot_spots(profile: Path, limit: int = 10) -> str:
    """Our own functions (cti_bridge/...) by cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(str(profile), stream=out)
    stats.sort_stats("cumulative").print_stats(r"cti_bridge/", limit)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls in the stream (default 2000)")
    parser.add_argument("--concurrency", type=int, default=50, help="calls in flight at once (default 50)")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a run after this many s")
    parser.add_argument("--profile", type=Path, help="cProfile the full path into this file")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.concurrency < 1:
        parser.error("--calls and --concurrency must be at least 1")
    # Production logging (JSON lines, masked numbers), written where no one reads it.
    with open(os.devnull, "w") as devnull:
        configure_logging(LoggingConfig(format="json"), devnull)
        result = asyncio.run(measure(args.calls, args.concurrency, args.timeout, args.profile))
    if not args.json:
        print(table(result), end="\n\n")
        if args.profile:
            print(hot_spots(args.profile))
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
