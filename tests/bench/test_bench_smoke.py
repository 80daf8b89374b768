"""Smoke run of bench/ami_throughput.py at a small size: it runs end to end, not how fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_throughput_bench_runs_end_to_end() -> None:
    command = [
        sys.executable,
        str(ROOT / "bench" / "ami_throughput.py"),
        "--calls",
        "40",
        "--concurrency",
        "5",
    ]
    completed = subprocess.run(
        [*command, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout)
    assert result["calls"] == 40
    for path in ("bare_parse", "full_path"):
        assert result[path]["events"] == result["events"] > 0
        assert result[path]["events_per_second"] > 0
        assert result[path]["calls_per_second"] > 0
    assert result["full_path"]["tickets"] == 40
