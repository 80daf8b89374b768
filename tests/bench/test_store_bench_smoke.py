"""bench/store_scale.py runs end to end at a small size and reports every figure (no speed asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "store_scale.py"


def test_store_scale_reports_positive_rates(tmp_path: Path) -> None:
    finished = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--sizes", "1000", "--ops", "200", "--rounds", "1"),
            *("--dir", str(tmp_path), "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr

    report = json.loads(finished.stdout)
    [size] = report["sizes"]
    assert size["size"] == 1000
    assert set(size["measurements"]) == {
        "lookup_known_customer",
        "lookup_repeat_caller",
        "lookup_unknown_number",
        "create_new_number",
        "create_known_customer",
    }
    for name, figures in size["measurements"].items():
        assert figures["ops"] > 0, name
        assert figures["ops_per_second"] > 0, name
        assert 0 < figures["p50_ms"] <= figures["p99_ms"], name
        assert figures["ratio_to_smallest"]["ops_per_second"] == 1.0, name
    assert report["query_plans_at_largest_size"], "no query plans"
