"""The knowledge base on the real SQLite store: search, suggestions for a ticket, articles from tickets."""

import asyncio
import json

import pytest

from cti_bridge.cli import main
from cti_bridge.store import Store
from cti_bridge.store.knowledge import KnowledgeBaseError, salient_terms
from cti_bridge.tickets.model import TicketNumbering
from tests.support.helpers import inbound_call, new_ticket
from tests.unit.test_cli import write_config

T0 = 1_800_000_000.0
LOGIN = "技术故障/网络问题/登录异常"


@pytest.fixture
async def store(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path}/t.db", TicketNumbering())
    yield store
    await store.close()


async def articles(store):
    """One article per problem, in different categories, and a few others about something else:
    bm25 gives no weight to a term that half the articles contain."""
    added = {}
    for title, body, category in (
        ("打印机卡纸", "打开后盖取出卡住的纸张，检查进纸滚轮。", "售后服务/设备维修"),
        ("退款流程", "退款在审核通过后三个工作日内原路退回。", "账单问题/退款"),
        ("Change of delivery address", "Update the address before the parcel is shipped.", "售后服务/物流"),
        ("开具增值税发票", "在账单页面申请，填写税号与开票抬头。", "账单问题/发票"),
    ):
        await store.kb_add_article(title=title, body=body, category=category, actor="kb-admin", at=T0)
    for key, title, body, tags, category in (
        (
            "login",
            "登录异常处理",
            "客户无法登录 APP，提示密码错误：先确认账号，再通过短信验证码重置密码；"
            "连续输错五次账号会锁定 30 分钟。",
            ["登录", "密码", "password"],
            LOGIN,
        ),
        (
            "slow",
            "网速慢排查",
            "宽带网速慢：检查路由器指示灯，重启光猫，测速后仍低于签约带宽则派单上门。",
            ["宽带"],
            "技术故障/网络问题/网速慢",
        ),
        (
            "invoice",
            "Invoice reprint",
            "A customer who lost an invoice can download it again from the billing portal, "
            "or ask support to reprint it. Password resets are not handled here.",
            ["billing"],
            "账单问题/发票",
        ),
        (
            "vpn",
            "VPN client cannot connect",
            "Reinstall the VPN client and check that the password has not expired.",
            ["vpn"],
            None,
        ),
    ):
        article = await store.kb_add_article(
            title=title, body=body, tags=tags, category=category, actor="kb-admin", at=T0
        )
        added[key] = article.id
    return added


async def ticket(store, linkedid, **fields):
    created, _ = await store.create_ticket_for_call(
        new_ticket(**fields), inbound_call(linkedid, started_at=T0), None, T0
    )
    return created


async def transcript(store, linkedid, text):
    call = inbound_call(linkedid, started_at=T0)
    recording = await store.add_recording(call, f"/pbx/{linkedid}.wav", f"/l/{linkedid}.wav", T0)
    await store.link_recording(
        recording, status="linked", size_bytes=1, duration_seconds=1.0, error=None, language="zh", at=T0
    )
    job = await store.claim_job("w", T0, lease_seconds=60)
    result = {"text": text, "words": [], "duration_seconds": 1.0, "elapsed_seconds": 0.1}
    assert await store.complete_job(job, "w", result, T0 + 1)


async def test_chinese_search_finds_substrings_and_ranks_title_hits_first(store):
    ids = await articles(store)
    found = await store.kb_search("密码错误")
    assert [m.article.id for m in found] == [ids["login"]]
    assert "[密码错误]" in found[0].snippet and found[0].matched_terms == ("密码错误",)
    # Every term must match: 网速慢 alone finds one article, with 密码错误 none.
    assert [m.article.title for m in await store.kb_search("网速慢")] == ["网速慢排查"]
    assert await store.kb_search("网速慢 密码错误") == []


async def test_english_search_is_case_insensitive_and_weighs_titles(store):
    ids = await articles(store)
    found = await store.kb_search("PASSWORD")
    # The login article has it in its tags, the other two only in their bodies.
    assert {m.article.id for m in found} == {ids["login"], ids["invoice"], ids["vpn"]}
    assert found[0].article.id == ids["login"]
    assert [m.article.id for m in await store.kb_search("vpn client")] == [ids["vpn"]]
    assert await store.kb_search("   ") == []


async def test_short_terms_fall_back_to_like(store):
    ids = await articles(store)
    # Two characters are below the trigram index: matched by LIKE, title hits first.
    found = await store.kb_search("登录")
    assert [m.article.id for m in found] == [ids["login"]]
    assert found[0].rank == 0.0 and "[登录]" in found[0].snippet
    assert [m.article.id for m in await store.kb_search("宽带")] == [ids["slow"]]
    # A short term narrows a long one.
    assert [m.article.id for m in await store.kb_search("password 短信")] == [ids["login"]]
    # LIKE wildcards in the query are literal.
    assert await store.kb_search("%") == []


async def test_search_and_listing_by_category(store):
    ids = await articles(store)
    found = await store.kb_search("password", category="技术故障")
    assert [m.article.id for m in found] == [ids["login"]]
    listed = await store.kb_articles(category="技术故障/网络问题")
    assert {a.id for a in listed} == {ids["login"], ids["slow"]}
    assert len(await store.kb_articles()) == 8


async def test_update_reindexes_the_article(store):
    ids = await articles(store)
    updated = await store.kb_update_article(ids["vpn"], at=T0 + 5, title="VPN 连接失败", tags=["vpn", "远程"])
    assert updated.title == "VPN 连接失败" and updated.tags == ("vpn", "远程") and updated.category is None
    assert updated.updated_at == T0 + 5 and updated.body.startswith("Reinstall")
    assert [m.article.id for m in await store.kb_search("连接失败")] == [ids["vpn"]]
    assert await store.kb_search("cannot connect") == []
    with pytest.raises(KnowledgeBaseError, match="title cannot be blank"):
        await store.kb_update_article(ids["vpn"], at=T0, title=" ")
    with pytest.raises(KnowledgeBaseError, match="no article #99"):
        await store.kb_update_article(99, at=T0, title="x")


def test_salient_terms_put_category_labels_first_then_frequent_words():
    terms = salient_terms(["无法登录 APP 提示密码错误", "the app says the password is wrong"], LOGIN)
    assert terms[:3] == ["技术故障", "网络问题", "登录异常"]
    assert terms[3] == "app"  # twice, once per text
    assert {"无法登", "法登录", "密码错", "码错误", "password"} <= set(terms)
    assert "the" not in terms and "登录" not in terms  # stop word; too short for the index


async def test_suggestions_rank_the_article_about_the_problem_first(store):
    ids = await articles(store)
    created = await ticket(store, "1.1", subject="无法登录 APP 提示密码错误")
    await transcript(store, "1.1", "客户说 app 一直提示密码错误 无法登录")
    found = await store.kb_suggest(created.id)
    assert [m.article.id for m in found] == [ids["login"]]  # nothing else shares its words
    assert {"无法登", "法登录", "密码错", "app"} <= set(found[0].matched_terms)
    assert found[0].why == "matched body: 无法登录, APP, 提示密码错误"
    assert found[0].snippet.startswith("客户[无法登录] [APP]，[提示密码错误]：")
    # The transcript alone is enough.
    other = await ticket(store, "2.1", subject="Phone call from Wang")
    await transcript(store, "2.1", "我的宽带网速慢")
    assert [m.article.id for m in await store.kb_suggest(other.id)] == [ids["slow"]]


async def test_suggestions_keep_to_the_tickets_top_category(store):
    ids = await articles(store)
    created = await ticket(
        store, "1.1", subject="password reset", description="forgot password", category=LOGIN
    )
    found = await store.kb_suggest(created.id)
    # The invoice article mentions passwords but is about billing (账单问题): left out.
    assert [m.article.id for m in found] == [ids["login"], ids["vpn"]]
    assert found[0].why == (
        "matched title: 登录异常; tags: password; category 技术故障/网络问题/登录异常 covers the ticket's"
    )
    assert found[1].why == "matched body: password; uncategorised article"
    uncategorised = await ticket(store, "3.1", subject="password reset")
    assert ids["invoice"] in [m.article.id for m in await store.kb_suggest(uncategorised.id)]
    with pytest.raises(KnowledgeBaseError, match="no ticket #99"):
        await store.kb_suggest(99)


async def test_only_a_resolved_ticket_becomes_an_article(store):
    created = await ticket(store, "1.1", subject="无法登录 APP", description="提示密码错误", category=LOGIN)
    with pytest.raises(KnowledgeBaseError, match="T-000001 is new: only a resolved or closed ticket"):
        await store.kb_article_from_ticket(created.id, "alice", T0 + 10)
    await store._db.execute("UPDATE tickets SET status = 'resolved' WHERE id = ?", (created.id,))
    await store._db.execute(
        "INSERT INTO ticket_events (ticket_id, at, kind, actor, data) VALUES (?, ?, 'resolved', 'alice', ?)",
        (created.id, T0 + 5, json.dumps({"fields": {"resolution": "重置密码后恢复"}}, ensure_ascii=False)),
    )
    article = await store.kb_article_from_ticket(created.id, "alice", T0 + 10)
    assert article.title == "无法登录 APP" and article.category == LOGIN
    assert article.body == "提示密码错误\n\n解决方案 / Resolution:\n重置密码后恢复"
    assert article.source_ticket_id == created.id and article.created_by == "alice"
    assert [m.article.id for m in await store.kb_search("重置密码")] == [article.id]
    history = (await store.ticket_detail("T-000001"))["history"]
    assert history[-1]["kind"] == "kb_article_created" and history[-1]["data"]["article_id"] == article.id
    with pytest.raises(KnowledgeBaseError, match="already has article"):
        await store.kb_article_from_ticket(created.id, "alice", T0 + 11)


async def test_a_closed_ticket_without_resolution_gives_its_description(store):
    created = await ticket(store, "1.1", subject="Printer offline", description="Power-cycled the printer.")
    await store._db.execute("UPDATE tickets SET status = 'closed' WHERE id = ?", (created.id,))
    article = await store.kb_article_from_ticket(created.id, "bob", T0)
    assert article.body == "Power-cycled the printer." and article.category is None


def test_kb_cli(tmp_path, capsys):
    config = str(write_config(tmp_path))
    args = ["-c", config]
    add = ["kb", "add", "--title", "登录异常处理", "--body", "提示密码错误时重置密码", "--tags", "登录,密码"]
    assert main([*add, "--category", LOGIN, *args]) == 0
    assert "article #1" in capsys.readouterr().out
    assert main(["kb", "search", "密码错误", "--json", *args]) == 0
    [hit] = json.loads(capsys.readouterr().out)
    assert hit["id"] == 1 and hit["tags"] == ["登录", "密码"] and "[密码错误]" in hit["snippet"]
    assert main(["kb", "search", "密码", *args]) == 0
    assert "#1  登录异常处理" in capsys.readouterr().out
    assert main(["kb", "search", "nothing-like-this", *args]) == 0
    assert "no article" in capsys.readouterr().out

    async def make_ticket():
        store = await Store.open(f"sqlite:///{tmp_path}/cti.db", TicketNumbering())
        try:
            created = await ticket(store, "1.1", subject="无法登录 APP 提示密码错误")
            return created.number
        finally:
            await store.close()

    number = asyncio.run(make_ticket())
    assert main(["kb", "suggest", number, "--json", *args]) == 0
    [suggested] = json.loads(capsys.readouterr().out)
    assert suggested["id"] == 1 and suggested["why"].startswith("matched ")
    assert main(["kb", "suggest", number, *args]) == 0
    assert "#1  登录异常处理" in capsys.readouterr().out
    assert main(["kb", "from-ticket", number, *args]) == 1
    assert "only a resolved or closed ticket" in capsys.readouterr().err
    assert main(["kb", "suggest", "T-999999", *args]) == 1
    assert "no ticket T-999999" in capsys.readouterr().err
