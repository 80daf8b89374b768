"""`cti-bridge report` on a real store file: tickets written through the Store, KPIs as JSON and tables."""

import asyncio
import json
from datetime import UTC, datetime

from cti_bridge.cli import main
from cti_bridge.config.model import TicketConfig
from cti_bridge.store import Store
from cti_bridge.tickets import workflow as w
from cti_bridge.tickets.fields import FieldSchema
from cti_bridge.tickets.model import TicketNumbering
from tests.support.helpers import inbound_call, new_ticket

CONFIG = """\
pbxs:
  - name: main
    username: cti
    secret: {{env: UNSET_IN_TESTS}}
phone: {{default_region: CN}}
store: {{url: "sqlite:///{db}"}}
sla:
  calendar:
    timezone: UTC
    hours: {{mon-sun: ["00:00-24:00"]}}
  targets:
    P3: {{first_response: 1h, resolution: 8h}}
"""
T0 = datetime(2026, 10, 19, 9, tzinfo=UTC).timestamp()


def test_report_json_and_tables(tmp_path, capsys):
    config = tmp_path / "cti.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "cti.db"), encoding="utf-8")
    workflow = w.Workflow(FieldSchema.from_config(TicketConfig(), phone_region="CN"))

    async def month():
        store = await Store.open(f"sqlite:///{tmp_path}/cti.db", TicketNumbering())
        try:
            # Answered after 60 s, resolved 30 min after creation, scored 5.
            call = inbound_call("1.1", queue="support", started_at=T0)
            new = new_ticket(category="技术故障", queue="support")
            first, _ = await store.create_ticket_for_call(new, call, None, T0)
            await store.record_answer(call, "alice", T0 + 60)
            for command, at in (
                (w.Start(), T0 + 90),
                (w.Resolve(fields={"resolution": "重置密码"}), T0 + 1800),
            ):
                await store.apply_command(first.number, command, workflow=workflow, actor="alice", at=at)
            await store.record_csat("main", "1.1", 5, T0 + 2000)
            # Missed: nobody has responded yet (its first-response target is breached).
            missed = inbound_call("1.2", queue="billing", started_at=T0 + 3600)
            await store.create_ticket_for_call(
                new_ticket(category="账务问题", queue="billing"), missed, None, T0 + 3600
            )
            # Created the day after the period.
            late = inbound_call("1.3", started_at=T0 + 86_400)
            await store.create_ticket_for_call(new_ticket(), late, None, T0 + 86_400)
        finally:
            await store.close()

    asyncio.run(month())
    period = ["--from", "2026-10-19", "--to", "2026-10-19", "-c", str(config)]
    assert main(["report", "--json", *period]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["period"]["from"] == "2026-10-19T00:00:00+00:00"
    assert (data["tickets"], data["open"], data["resolved"]) == (2, 1, 1)
    assert data["volumes"]["by_queue"] == {"billing": 1, "support": 1}
    assert data["first_response_seconds"] == {"count": 1, "mean": 60.0, "p50": 60.0, "p90": 60.0}
    assert data["resolution_seconds"]["p50"] == 1800.0
    assert data["first_contact_resolution"] == {"hits": 1, "total": 1, "rate": 1.0}
    assert data["csat"]["distribution"]["5"] == 1 and data["csat"]["mean"] == 5.0
    assert data["sla"]["first_response"] == {"met": 1, "breached": 1, "pending": 0, "rate": 0.5}
    assert data["sla"]["resolution"]["met"] == 1
    assert data["agents"]["alice"]["tickets"] == 1

    assert main(["report", *period]) == 0
    text = capsys.readouterr().out
    assert "KPIs of the tickets created 2026-10-19 .. 2026-10-19 (UTC)" in text
    assert "tickets 2   open 1   resolved 1" in text
    assert "first-contact resolution  100.0%" in text and "SLA first response met    50.0%" in text
    assert "技术故障" in text and "2026-10-19  2" in text

    assert main(["report", "--from", "2026-10-20", "--to", "2026-10-19", "-c", str(config)]) == 2
