"""Ticket search on the real SQLite store: trigram full text (Chinese included), numbers, phones."""

import json
import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from cti_bridge.config import load_config
from cti_bridge.store import CustomerRow, Database, Store
from cti_bridge.store.database import _migrations, _statements
from cti_bridge.store.search import search_tickets
from cti_bridge.tickets.categories import CategoryTree
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.workflow import UpdateFields, Workflow
from tests.support.helpers import inbound_call, new_ticket

T0 = 1_800_000_000.0
EXAMPLE = Path(__file__).parents[3] / "config" / "cti-bridge.yaml"


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(f"sqlite:///{tmp_path}/t.db")
    yield database
    await database.close()


@pytest.fixture
def store(db):
    return Store(db, TicketNumbering())


async def ticket(store, linkedid, *, caller=None, at=T0, **fields):
    call = inbound_call(linkedid, caller_number=caller, started_at=at)
    created, _ = await store.create_ticket_for_call(
        new_ticket(caller_number=caller, **fields), call, caller, at
    )
    return created


async def comment(db, ticket_id, text, at=T0 + 10):
    await db.execute(
        "INSERT INTO ticket_events (ticket_id, at, kind, actor, data) VALUES (?, ?, 'commented', 'alice', ?)",
        (ticket_id, at, json.dumps({"text": text, "visibility": "internal"}, ensure_ascii=False)),
    )


async def transcribe(store, linkedid, text, at=T0 + 60):
    call = inbound_call(linkedid, started_at=T0)
    recording = await store.add_recording(call, f"/pbx/{linkedid}.wav", f"/local/{linkedid}.wav", at)
    await store.link_recording(
        recording, status="linked", size_bytes=1, duration_seconds=1.0, error=None, language="zh", at=at
    )
    job = await store.claim_job("w", at, lease_seconds=60)
    result = {"text": text, "words": [], "duration_seconds": 1.0, "elapsed_seconds": 0.1}
    assert await store.complete_job(job, "w", result, at)


def numbers(hits):
    return [hit.number for hit in hits]


async def test_chinese_substrings_of_three_or_more_characters_and_of_two(store):
    await ticket(store, "1.1", subject="客户来电", description="用户反馈：登录异常无法访问后台")
    await ticket(store, "1.2", subject="打印机卡纸", description="办公室打印机又卡纸了")

    [hit] = await store.search("登录异常")
    assert hit.number == "T-000001" and hit.matched == ("description",)
    assert "[登录异常]" in hit.snippet and hit.rank is not None
    # Two characters are below trigram's token size: found through LIKE on the same text.
    [short] = await store.search("登录")
    assert short.number == "T-000001" and "[登录]" in short.snippet and short.matched == ("description",)
    assert numbers(await store.search("卡纸")) == ["T-000002"]
    assert numbers(await store.search("异")) == ["T-000001"]
    # Several terms must all be found, long and short mixed.
    assert numbers(await store.search("打印机 卡纸")) == ["T-000002"]
    assert numbers(await store.search("登录异常 卡纸")) == []


async def test_english_words_case_insensitive_and_like_wildcards_are_literal(store):
    await ticket(store, "1.1", subject="VPN down", description="The customer cannot reach the VPN gateway")
    await ticket(store, "1.2", subject="Invoice", description="Wants a copy of invoice 2024_07")

    [hit] = await store.search("gateway")
    assert hit.number == "T-000001" and hit.snippet.count("[gateway]") == 1
    assert numbers(await store.search("vpn")) == ["T-000001"]
    assert numbers(await store.search("INVOICE")) == ["T-000002"]
    assert numbers(await store.search("_")) == ["T-000002"]  # not LIKE's any-character
    assert await store.search("%") == []
    assert await store.search("   ") == []


async def test_comments_and_transcripts_are_searched(store, db):
    first = await ticket(store, "1.1", subject="来电")
    second = await ticket(store, "1.2", subject="来电")
    await comment(db, first.id, "已远程协助客户重置路由器")
    await transcribe(store, "1.2", "您好 我的宽带从昨天晚上开始一直断线")

    [hit] = await store.search("重置路由器")
    assert hit.number == first.number and hit.matched == ("comments",) and "[重置路由器]" in hit.snippet
    [hit] = await store.search("宽带")
    assert hit.number == second.number and hit.matched == ("transcripts",)
    [hit] = await store.search("一直断线")
    assert hit.number == second.number and "[一直断线]" in hit.snippet
    # Other event kinds are not comments.
    await db.execute(
        "INSERT INTO ticket_events (ticket_id, at, kind, actor, data) VALUES (?, ?, 'assigned', 'x', ?)",
        (first.id, T0, json.dumps({"text": "机密备注"})),
    )
    assert await store.search("机密备注") == []


async def test_ticket_number_is_matched_exactly_and_first(store, db):
    await ticket(store, "1.1", subject="first")
    second = await ticket(store, "1.2", subject="second")
    await comment(db, second.id, "duplicate of T-000001")

    hits = await store.search("T-000001")
    assert numbers(hits) == ["T-000001", "T-000002"]
    assert hits[0].matched == ("number",) and hits[0].rank is None and hits[0].snippet == "[T-000001] first"
    assert hits[1].matched == ("comments",) and hits[1].rank is not None
    assert numbers(await store.search("t-000002")) == ["T-000002"]


async def test_phone_in_another_format_and_the_customers_other_numbers(store):
    await store.import_customers([CustomerRow(name="王芳", phones=("+8613800138000", "+8613900139000"))], T0)
    customer = await store.customer_by_phone("+8613800138000")
    await ticket(store, "1.1", caller="+8613800138000", customer_id=customer.id, subject="来电")
    await ticket(store, "1.2", caller="+8613700137000", subject="other caller")

    for typed in ("13800138000", "138 0013 8000", "+86 138-0013-8000", "008613800138000"):
        hits = await store.search(typed, region="CN")
        assert numbers(hits) == ["T-000001"] and hits[0].matched == ("phone",), typed
    # A number of the same customer the ticket's call did not come from.
    assert numbers(await store.search("13900139000", region="CN")) == ["T-000001"]
    # Without a region, a national number is not a phone; trigram still finds the digits.
    [hit] = await store.search("13800138000")
    assert hit.number == "T-000001" and hit.matched == ("caller",)


async def test_customer_name_and_its_rename(store):
    await store.import_customers([CustomerRow(name="王芳", phones=("+8613800138000",))], T0)
    customer = await store.customer_by_phone("+8613800138000")
    await ticket(store, "1.1", caller="+8613800138000", customer_id=customer.id, subject="来电")

    [hit] = await store.search("王芳")
    assert hit.matched == ("customer",)
    renamed = CustomerRow(name="王芳芳", phones=("+8613800138000",), company="华东物流")
    await store.import_customers([renamed], T0)
    assert numbers(await store.search("华东物流")) == ["T-000001"]
    assert numbers(await store.search("王芳芳")) == ["T-000001"]


async def test_ranking_puts_the_subject_before_a_passing_mention(store, db):
    mention = await ticket(store, "1.1", subject="Callback", description="misc")
    await comment(db, mention.id, "customer also mentioned the router once, unrelated")
    await ticket(store, "1.2", subject="Router keeps rebooting", description="router reboots every hour")

    hits = await store.search("router")
    assert numbers(hits) == ["T-000002", "T-000001"]
    assert hits[0].rank < hits[1].rank
    assert set(hits[0].matched) == {"subject", "description"}
    assert len(await store.search("router", limit=1)) == 1


async def test_a_ticket_changed_after_creation_is_found_by_its_new_text(store, db):
    created = await ticket(store, "1.1", subject="来电", description="待补充")
    await db.execute(
        "UPDATE tickets SET subject = ?, description = ? WHERE id = ?",
        ("无法开机", "显示器黑屏，主机指示灯不亮", created.id),
    )
    assert numbers(await store.search("主机指示灯")) == ["T-000001"]
    assert numbers(await store.search("黑屏")) == ["T-000001"]
    assert await store.search("待补充") == []
    # Bumping updated_at (the call path) leaves the index as it is.
    await db.execute("UPDATE tickets SET updated_at = ? WHERE id = ?", (T0 + 99, created.id))
    assert numbers(await store.search("无法开机")) == ["T-000001"]


async def test_the_migration_backfills_tickets_written_before_it(store, db):
    await ticket(store, "1.1", description="历史工单的描述")
    await db.execute("DELETE FROM ticket_search")
    assert await search_tickets(db, "历史工单") == []
    # 012 made the index again (with the category): its backfill is the one in use.
    migration = (resources.files("cti_bridge.store") / "migrations" / "012_category_search.sql").read_text(
        "utf-8"
    )
    backfill = _statements(migration)[-1]
    assert backfill.startswith("INSERT INTO ticket_search")
    await db.execute(backfill)
    assert numbers(await search_tickets(db, "历史工单")) == ["T-000001"]


# -- categories (issue #11, item 8.3) ------------------------------------------------------------


@pytest.fixture(scope="module")
def tree():
    """The shipped example's tree: Chinese labels, English labels and keys."""
    config = load_config(EXAMPLE, check_secrets=False)
    return CategoryTree.from_config(config.tickets.categories)


async def test_the_readmes_example_finds_a_ticket_by_its_category(store):
    await ticket(store, "1.1", subject="Phone call from Li Lei", category="技术故障/网络问题/登录异常")
    await ticket(store, "1.2", subject="Phone call from Wang Fang", category="账务问题/退款/申请退款")
    [hit] = await store.search("登录异常")
    assert (hit.number, hit.matched) == ("T-000001", ("category",))
    assert "[登录异常]" in hit.snippet
    assert numbers(await store.search("退款")) == ["T-000002"]  # two characters: the LIKE path
    assert numbers(await store.search("网络问题 Li")) == ["T-000001"]  # with a word of the subject


async def test_english_labels_and_keys_of_the_tree_find_the_stored_chinese_path(store, tree):
    await ticket(store, "1.1", subject="Phone call", category="技术故障/网络问题/登录异常")
    await ticket(store, "1.2", subject="Phone call", category="账户问题/登录与密码/忘记密码")
    await ticket(store, "1.3", subject="Phone call", category="账务问题/退款/申请退款")
    assert await store.search("Login failure") == []  # without the tree, English is not in the index
    [hit] = await store.search("Login failure", categories=tree)
    assert (hit.number, hit.matched) == ("T-000001", ("category",))
    # "login" is in two English labels (Login failure, Login and password) and in a key.
    assert sorted(numbers(await store.search("LOGIN", categories=tree))) == ["T-000001", "T-000002"]
    assert numbers(await store.search("refund", categories=tree)) == ["T-000003"]
    assert numbers(await store.search("password_reset", categories=tree)) == ["T-000002"]
    # A term of the tree and a term of the text: both must hold, as for any two terms.
    assert numbers(await store.search("refund call", categories=tree)) == ["T-000003"]
    assert await store.search("refund 无关", categories=tree) == []


async def test_a_recategorised_ticket_is_found_under_its_new_path_only(store, tree):
    created = await ticket(store, "1.1", subject="Phone call", category="技术故障/网络问题/登录异常")
    config = load_config(EXAMPLE, check_secrets=False)
    await store.apply_commands(
        created.number,
        [UpdateFields(values={"category": "billing/refund/status"})],
        workflow=Workflow.from_config(config),
        actor="alice",
        at=T0 + 60,
    )
    assert numbers(await store.search("退款进度")) == ["T-000001"]
    assert await store.search("登录异常") == []
    assert numbers(await store.search("Refund status", categories=tree)) == ["T-000001"]
    assert await store.search("Login failure", categories=tree) == []


async def test_migration_012_indexes_the_categories_of_tickets_written_before_it(tmp_path):
    # A store as it was before 012, with a categorised ticket in it.
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT)")
    for version, name, sql in _migrations():
        if version >= 12:
            break
        for statement in _statements(sql):
            connection.execute(statement)
        connection.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, name))
    connection.execute(
        "INSERT INTO tickets (number, status, priority, category, subject, description, channel,"
        " fields, created_at, updated_at)"
        " VALUES ('T-000001', 'new', 'P3', ?, 'Phone call', '', 'phone', '{}', ?, ?)",
        ("技术故障/网络问题/登录异常", T0, T0),
    )
    connection.commit()
    connection.close()

    db = await Database.open(f"sqlite:///{path}")  # migrates to the end
    try:
        assert numbers(await search_tickets(db, "登录异常")) == ["T-000001"]
    finally:
        await db.close()


async def test_field_values_are_searched_and_follow_their_edits(store, db):
    created = await ticket(
        store, "9.1", fields={"order_number": "SO-2026-0042", "ivr_path": "main: 2 > 退款: 1"}
    )
    assert numbers(await store.search("SO-2026-0042")) == [created.number]
    assert numbers(await store.search("退款: 1")) == [created.number]
    await db.execute(
        "UPDATE tickets SET fields = ? WHERE id = ?",
        (json.dumps({"order_number": "SO-2026-0099"}), created.id),
    )
    assert numbers(await store.search("SO-2026-0099")) == [created.number]
    assert await store.search("SO-2026-0042") == []
