"""bench/transcription.py runs end to end on a few short prompts and reports every figure (never speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "transcription.py"


def test_transcription_bench_reports_every_figure() -> None:
    finished = subprocess.run(
        [sys.executable, str(SCRIPT), *("--files", "3", "--seconds", "8", "--workers", "1,2", "--json")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    report = json.loads(finished.stdout)
    assert 0 < report["files"] <= 3
    assert report["audio_seconds"] > 0
    runs = [*report["bare"].values(), *report["pool"].values(), report["reused_recognizer"]]
    assert set(report["bare"]) == set(report["pool"]) == {"1", "2"}
    for run in runs:
        assert run["audio_seconds"] == report["audio_seconds"]
        assert run["seconds"] > 0
        assert run["audio_seconds_per_second"] > 0
        assert run["cpu_seconds_per_audio_second"] > 0
        assert all(seconds > 0 for seconds in run["model_load_seconds"])
        assert len(run["idle_rss_mb"]) == len(run["peak_rss_mb"]) == run["processes"]
        assert all(mb > 0 for mb in run["idle_rss_mb"] + run["peak_rss_mb"])
        assert run["niceness"] == [10], "bare Vosk must run at the niceness of the pool's workers"
    for comparison in report["comparisons"]:
        for figure in (
            "pool_per_worker_over_bare_per_process",
            "pool_over_bare_same_processes",
            "pool_scaling_efficiency",
            "bare_scaling_efficiency",
        ):
            assert comparison[figure] > 0, figure
    assert report["reused_recognizer"]["fresh_over_reused_seconds"] > 0
    assert set(report["targets_met"]) == {
        "pool_per_worker_at_least_95_percent_of_bare",
        "pool_scaling_near_linear",
    }
