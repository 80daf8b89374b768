"""mosquitto stopped during real calls on the sandbox Asterisk (issue #12): every notice delivered
once the broker is back, in order per agent and per ticket; the daemon's outbox bounded, with a
warning naming what it dropped, when the outage outlasts it.

CI stops the broker for 20 s; bench/faults.py for 60 s (docs/RELIABILITY.md).
"""

from __future__ import annotations

import re

import pytest
from structlog.testing import capture_logs

from tests.faults.harness import broker_outage

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 20
CALLS = 6


async def test_every_notice_arrives_in_order_after_the_outage(asterisk, ami_driver, tmp_path):
    figures = await broker_outage(asterisk, ami_driver, tmp_path, seconds=OUTAGE_SECONDS, calls=CALLS)
    print(figures.as_dict())
    assert (figures.lost, figures.doubled, figures.unended) == (0, 0, 0), figures
    assert figures.calls == CALLS + 2 and figures.tickets == figures.calls, figures
    assert figures.notices_sent >= 5 * figures.calls, figures  # pops and ticket notices
    assert figures.notices_received == figures.notices_sent, figures
    assert (figures.notices_missing, figures.out_of_order) == (0, 0), figures
    assert "dropped by the outbox: 0" in figures.notes, figures


async def test_a_full_outbox_drops_the_oldest_and_says_so(asterisk, ami_driver, tmp_path):
    limit = 10  # the smallest the config allows
    with capture_logs() as logs:
        figures = await broker_outage(asterisk, ami_driver, tmp_path, seconds=5, calls=4, max_pending=limit)
    print(figures.as_dict())
    [pending] = [int(m[1]) for n in figures.notes if (m := re.match(r"pending after .*: (\d+)", n))]
    [dropped] = [int(m[1]) for n in figures.notes if (m := re.match(r"dropped by the outbox: (\d+)", n))]
    assert pending == limit and dropped > 0, figures
    full = [entry for entry in logs if entry["event"] == "mqtt.dropped_oldest"]
    assert len(full) == dropped and full[-1]["dropped"] == dropped, full[-3:]
    # What was kept still arrives, in order; the calls themselves lose nothing.
    assert figures.notices_received == figures.notices_sent and figures.out_of_order == 0, figures
    assert (figures.lost, figures.doubled, figures.unended) == (0, 0, 0), figures
