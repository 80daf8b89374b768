"""The `cti-bridge` command on a real store file: customers import, tickets list/show."""

import asyncio
import io
import json

import structlog

from cti_bridge.calls.model import Call, CallKey, Direction
from cti_bridge.cli import main
from cti_bridge.config.model import LoggingConfig, TicketConfig
from cti_bridge.logs import configure_logging
from cti_bridge.store import Store
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.service import TicketService
from tests.support.helpers import inbound_call, new_ticket

CONFIG = """\
pbxs:
  - name: main
    username: cti
    secret: {{env: UNSET_IN_TESTS}}
phone: {{default_region: CN}}
store: {{url: "sqlite:///{db}"}}
"""


def write_config(tmp_path):
    path = tmp_path / "cti.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "cti.db"), encoding="utf-8")
    return path


def test_customers_import_reports_bad_rows_and_keeps_the_good(tmp_path, capsys):
    config = write_config(tmp_path)
    csv = tmp_path / "customers.csv"
    csv.write_text(
        "name,phone,company,vip,tier\n"
        "王芳,13800138000;+86 139 0013 9000,华东物流,yes,gold\n"
        ",13700137000,,,\n"
        "Bad Number,12,,,\n"
        "Li Lei,021-6123 4567,,no,\n",
        encoding="utf-8",
    )
    assert main(["customers", "import", str(csv), "-c", str(config)]) == 1
    out, err = capsys.readouterr()
    assert "imported 2 customer(s): 2 new, 0 updated; 2 row(s) refused" in out
    assert f"{csv}:3: empty name" in err and f"{csv}:4: not a phone number: '12'" in err
    # Importing again updates instead of duplicating.
    assert main(["customers", "import", str(csv), "-c", str(config)]) == 1
    assert "0 new, 2 updated" in capsys.readouterr().out

    async def lookup():
        store = await Store.open(f"sqlite:///{tmp_path}/cti.db", TicketNumbering())
        try:
            return await store.customer_by_phone("+8613900139000"), await store.customer_by_phone(
                "+862161234567"
            )
        finally:
            await store.close()

    wang, li = asyncio.run(lookup())
    assert wang.name == "王芳" and wang.vip and wang.phones == ("+8613800138000", "+8613900139000")
    assert li.name == "Li Lei" and not li.vip


def test_tickets_list_and_show(tmp_path, capsys):
    config = write_config(tmp_path)

    async def make_ticket():
        store = await Store.open(f"sqlite:///{tmp_path}/cti.db", TicketNumbering())
        try:
            call = Call(
                key=CallKey("main", "1.1"),
                direction=Direction.INBOUND,
                caller_number="13800138000",
                caller_name="Wang",
                did="4001",
                queue="support",
                started_at=1_800_000_000.0,
            )
            return (await TicketService(store, TicketConfig(), "CN").open_for_call(call)).ticket.number
        finally:
            await store.close()

    number = asyncio.run(make_ticket())
    assert main(["tickets", "list", "--json", "-c", str(config)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["number"] == number == "T-000001" and row["caller_number"] == "+8613800138000"
    assert main(["tickets", "list", "-c", str(config)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["NUMBER", "STATUS", "PRIORITY"] and "T-000001" in table[1]
    assert main(["tickets", "show", number, "-c", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "T-000001  Phone call from Wang" in shown and "main/1.1 in progress" in shown
    assert main(["tickets", "show", number, "--json", "-c", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["calls"][0]["linkedid"] == "1.1"
    assert main(["tickets", "show", "T-999999", "-c", str(config)]) == 1


def test_tickets_search(tmp_path, capsys):
    config = write_config(tmp_path)

    async def make_tickets():
        store = await Store.open(f"sqlite:///{tmp_path}/cti.db", TicketNumbering())
        try:
            for linkedid, caller, description in (
                ("1.1", "+8613800138000", "客户反馈登录异常无法访问"),
                ("1.2", None, "打印机卡纸"),
            ):
                new = new_ticket(subject="来电", description=description, caller_number=caller)
                await store.create_ticket_for_call(new, inbound_call(linkedid), caller, 1_800_000_000.0)
        finally:
            await store.close()

    asyncio.run(make_tickets())
    assert main(["tickets", "search", "登录", "-c", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("T-000001  new") and lines[0].endswith("(description)")
    assert lines[1].strip() == "客户反馈[登录]异常无法访问" and len(lines) == 2
    # The config's phone region reads a national number.
    assert main(["tickets", "search", "13800138000", "--json", "-c", str(config)]) == 0
    [hit] = json.loads(capsys.readouterr().out)
    assert hit["number"] == "T-000001" and hit["matched"] == ["phone"] and hit["rank"] is None
    assert main(["tickets", "search", "打印机卡纸", "--limit", "1", "--json", "-c", str(config)]) == 0
    assert [h["number"] for h in json.loads(capsys.readouterr().out)] == ["T-000002"]
    assert main(["tickets", "search", "没有", "-c", str(config)]) == 0
    assert "no ticket matches" in capsys.readouterr().out


def test_tickets_search_finds_the_readmes_example_by_category_in_both_languages(tmp_path, capsys):
    config = tmp_path / "cti.yaml"
    config.write_text(
        CONFIG.format(db=tmp_path / "cti.db")
        + """\
tickets:
  categories:
    tree:
      - key: technical
        zh: 技术故障
        en: Technical fault
        children:
          - key: network
            zh: 网络问题
            en: Network
            children: [{key: login, zh: 登录异常, en: Login failure}]
""",
        encoding="utf-8",
    )

    async def make_ticket():
        store = await Store.open(f"sqlite:///{tmp_path}/cti.db", TicketNumbering())
        try:
            new = new_ticket(subject="Phone call from Li Lei", category="技术故障/网络问题/登录异常")
            await store.create_ticket_for_call(new, inbound_call("1.1"), None, 1_800_000_000.0)
        finally:
            await store.close()

    asyncio.run(make_ticket())
    for query in ("登录异常", "login failure"):
        assert main(["tickets", "search", query, "-c", str(config)]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first == "T-000001  new         Phone call from Li Lei  (category)", query


def test_json_logs_carry_bound_ids_and_mask_numbers():
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream=stream)
    try:
        with structlog.contextvars.bound_contextvars(call="main/1.1", ticket="T-000001"):
            structlog.get_logger("t").info("ticket.created", caller="+8613800138000")
        line = json.loads(stream.getvalue())
        assert line["event"] == "ticket.created" and line["level"] == "info"
        assert (line["call"], line["ticket"]) == ("main/1.1", "T-000001")
        assert line["caller"] == "+861*******000"
        stream.truncate(0)
        stream.seek(0)
        configure_logging(LoggingConfig(format="json", mask_numbers=False), stream=stream)
        structlog.get_logger("t").info("x", caller="+8613800138000")
        assert json.loads(stream.getvalue())["caller"] == "+8613800138000"
    finally:
        structlog.reset_defaults()


def test_a_ticket_is_worked_from_the_command_line(tmp_path, capsys):
    config = write_config(tmp_path)

    async def make_ticket():
        store = await Store.open(f"sqlite:///{tmp_path}/cti.db", TicketNumbering())
        try:
            await store.create_ticket_for_call(new_ticket(), inbound_call("9.1"), None, 1_800_000_000.0)
        finally:
            await store.close()

    asyncio.run(make_ticket())
    steps = [
        (["assign", "T-000001", "agent1", "--reason", "callback"], "assigned (assigned)"),
        (["start", "T-000001", "--set", "category=技术故障"], "in_progress (fields_updated, started)"),
        (["wait", "T-000001", "customer"], "waiting (waiting)"),
        (["resume", "T-000001"], "in_progress (resumed)"),
        (["comment", "T-000001", "已远程协助"], "in_progress (commented)"),
        (["resolve", "T-000001", "--resolution", "重置密码"], "resolved (fields_updated, resolved)"),
        (["close", "T-000001", "--confirmed"], "closed (closed)"),
    ]
    for argv, said in steps:
        assert main(["tickets", *argv, "-c", str(config), "--as", "agent1"]) == 0, argv
        assert capsys.readouterr().out.strip() == f"T-000001: {said}"
    # Refused: a closed ticket cannot be resolved; the error names what is allowed.
    assert main(["tickets", "resolve", "T-000001", "--resolution", "x", "-c", str(config)]) == 1
    assert "allowed now" in capsys.readouterr().err
    assert main(["tickets", "show", "T-000001", "--json", "-c", str(config)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "closed" and shown["assignee"] == "agent1"
    # The plain view tells each move and its reason.
    assert main(["tickets", "show", "T-000001", "-c", str(config)]) == 0
    history = capsys.readouterr().out.split("history:")[1]
    assert "assigned               agent1  new -> assigned\n      why: callback" in history
    assert "closed                 agent1  resolved -> closed" in history


def test_a_file_is_attached_from_the_command_line(tmp_path, capsys):
    config = write_config(tmp_path)

    async def make_ticket():
        store = await Store.open(f"sqlite:///{tmp_path}/cti.db", TicketNumbering())
        try:
            await store.create_ticket_for_call(new_ticket(), inbound_call("8.1"), None, 1_800_000_000.0)
        finally:
            await store.close()

    asyncio.run(make_ticket())
    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(b"%PDF-1.4 fake")
    assert main(["tickets", "attach", "T-000001", str(invoice), "--as", "agent1", "-c", str(config)]) == 0
    assert capsys.readouterr().out.startswith("T-000001: attached invoice.pdf (13 bytes, sha256 ")
    # Kept beside the database by default, under the ticket's number.
    assert [p.read_bytes() for p in (tmp_path / "attachments" / "T-000001").iterdir()] == [b"%PDF-1.4 fake"]
    assert main(["tickets", "show", "T-000001", "-c", str(config)]) == 0
    assert "invoice.pdf  13 bytes" in capsys.readouterr().out
    assert main(["tickets", "attach", "T-000001", str(tmp_path / "nope.pdf"), "-c", str(config)]) == 1
    assert "no such file" in capsys.readouterr().err


def test_a_description_an_agent_writes_is_read_by_the_rules(tmp_path, capsys):
    config = write_config(tmp_path)
    with config.open("a", encoding="utf-8") as rules:
        rules.write(
            "tickets:\n"
            "  rules:\n"
            "    - name: complaint\n"
            "      when: {keywords: [投诉]}\n"
            "      priority: P2\n"
            "    - name: orders\n"
            "      when: {}\n"
            "      extract: {order_number: '订单号?[:：\\s]*(\\d{8,})'}\n"
        )

    async def make_ticket():
        store = await Store.open(f"sqlite:///{tmp_path}/cti.db", TicketNumbering())
        try:
            await store.create_ticket_for_call(new_ticket(), inbound_call("9.2"), None, 1_800_000_000.0)
        finally:
            await store.close()

    asyncio.run(make_ticket())
    argv = ["tickets", "set", "T-000001", "description=客户投诉 订单号 20261122001 未发货"]
    assert main([*argv, "-c", str(config), "--as", "agent1"]) == 0
    said = capsys.readouterr().out
    assert 'rules applied: rule "complaint": description contains "投诉"' in said
    assert main(["tickets", "show", "T-000001", "--json", "-c", str(config)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["priority"] == "P2" and shown["fields"]["order_number"] == "20261122001"


def test_tickets_show_prints_what_the_crm_said(tmp_path, capsys):
    from cti_bridge.store import crm as crm_answers
    from cti_bridge.tickets.crm import CrmLookup, CrmOrder, CrmProfile

    config = write_config(tmp_path)

    async def make_tickets():
        store = await Store.open(f"sqlite:///{tmp_path}/cti.db", TicketNumbering())
        try:
            known, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("1.1"), None, 1.8e9)
            unknown, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("1.2"), None, 1.8e9)
            profile = CrmProfile(
                name="王芳",
                company="华东物流",
                tier="gold",
                vip=True,
                external_id="C-7",
                notes="two\nlines",
                orders=(CrmOrder(id="SO-1", total="199.50", summary="路由器"),),
            )
            for ticket, found in ((known, profile), (unknown, None)):
                lookup = CrmLookup(phone="+8613800138000", profile=found, fetched_at=1.8e9)
                await crm_answers.record_lookup(store.database, ticket.id, lookup, naming=None, at=1.8e9)
        finally:
            await store.close()

    asyncio.run(make_tickets())
    assert main(["tickets", "show", "T-000001", "-c", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "  crm: 王芳 (华东物流, gold, VIP)  id C-7  as of " in shown
    assert "    notes: two\n    lines" in shown and "    order SO-1  -  199.50  -  路由器" in shown
    assert "caller_enriched" in shown and " crm" in shown  # in the history, by the CRM
    assert main(["tickets", "show", "T-000002", "-c", str(config)]) == 0
    assert "  crm: the CRM does not know this number (asked " in capsys.readouterr().out
    assert main(["tickets", "show", "T-000001", "--json", "-c", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["crm"]["profile"]["orders"][0]["id"] == "SO-1"
