"""bench/screenpop_latency.py runs end to end at a small size: every figure present (no speed asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "screenpop_latency.py"


def test_screenpop_latency_reports_every_figure(tmp_path: Path) -> None:
    finished = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--tickets", "1000", "--rates", "2,5", "--seconds", "2", "--ring", "0.5", "--talk", "0.5"),
            *("--floor-messages", "10", "--backlog", "3", "--workers", "1", "--json"),
        ],
        env={**os.environ, "CTI_BENCH_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    report = json.loads(finished.stdout)
    assert report["tickets"] == 1000 and report["customers"] == 200
    assert report["memory_idle_mib"]["daemon"] > 0
    assert len(report["memory_idle_mib"]["workers"]) == 1
    assert set(report["rates"]) == {"2", "5"} == set(report["broker_floor"])
    for rate, figures in report["rates"].items():
        pop = figures["answered_pop"]
        assert figures["pops_missing"] == 0, rate
        assert pop["n"] == figures["calls"] == int(rate) * 2, rate
        assert 0 < pop["p50_ms"] <= pop["p99_ms"] <= pop["max_ms"], rate
        assert report["broker_floor"][rate]["n"] > 0, rate
        assert figures["memory_peak_mib"]["daemon"] > 0, rate
    transcribed = sum(f["recordings_transcribed"] for f in report["rates"].values())
    assert report["backlog_first_job_seconds"] > 0 or transcribed > 0
