"""The daemon's AMI connection cut at random moments during real calls on the sandbox Asterisk
(issue #12): every call one ticket, none doubled, every recording linked.

CI runs 15 cuts; bench/faults.py runs 100 (docs/RELIABILITY.md has the figures).
"""

from __future__ import annotations

import pytest

from tests.faults.harness import ami_cuts

pytestmark = pytest.mark.integration

CUTS = 15
SEED = 1201


async def test_cut_ami_connections_lose_and_double_no_call(asterisk, ami_driver, mosquitto, tmp_path):
    figures = await ami_cuts(asterisk, ami_driver, mosquitto, tmp_path, cuts=CUTS, seed=SEED)
    print(f"seed {SEED}: {figures.as_dict()}")
    assert figures.calls >= CUTS, figures
    assert (figures.lost, figures.doubled, figures.unended) == (0, 0, 0), figures
    assert figures.tickets == figures.calls and figures.recordings == figures.calls, figures
    assert figures.linked == figures.recordings, figures
