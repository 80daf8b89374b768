"""Which earlier daemon runs the transcription service may take jobs back from at start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from cti_bridge.transcribe.service import lease_owner, run_is_gone


def test_a_run_whose_process_is_gone_is_gone():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(dead.stdout)
    assert run_is_gone(f"{socket.gethostname()}/{pid}/0a1b2c3d")


def test_a_live_process_another_host_or_a_foreign_owner_is_left_to_its_lease():
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as alive:
        try:
            assert not run_is_gone(f"{socket.gethostname()}/{alive.pid}/0a1b2c3d")
        finally:
            alive.kill()
    assert not run_is_gone(f"not-{socket.gethostname()}/1/0a1b2c3d")
    assert not run_is_gone("daemon-1")


def test_an_earlier_run_of_this_very_process_is_over():
    assert run_is_gone(f"{socket.gethostname()}/{os.getpid()}/earlier0")
    assert lease_owner().startswith(f"{socket.gethostname()}/{os.getpid()}/")
