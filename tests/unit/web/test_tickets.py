"""Working a ticket through the API: fields, transitions, comments, attachments, suggestions, search."""

import hashlib
import json
from urllib.parse import unquote

from tests.unit.web.conftest import LOGIN_CATEGORY, T0


async def _history(site, number):
    return (await site.as_user("admin").get(f"/api/tickets/{number}")).json()["history"]


async def test_a_ticket_in_full(site):
    number = site.ticket("a1")
    response = await site.as_user("a1").get(f"/api/tickets/{number}")

    assert response.status_code == 200
    ticket = response.json()
    assert (ticket["number"], ticket["status"], ticket["assignee"]) == (number, "assigned", "a1")
    assert ticket["customer"]["name"] == "王小明"
    assert [c["linkedid"] for c in ticket["calls"]] == ["L1"]
    [recording] = ticket["recordings"]
    assert recording["audio_url"] == f"/api/recordings/{site.seeded.recordings['a1']}/audio"
    assert "local_path" not in recording and recording["status"] == "linked"
    assert [t["text"] for t in ticket["transcripts"]] == ["hello from a1"]
    assert ticket["allowed"] == ["assign", "start", "change_priority", "comment"]
    [first_response] = ticket["sla"]
    assert (first_response["target"], first_response["state"]) == ("first_response", "met")
    missing = await site.as_user("admin").get("/api/tickets/T-999999")
    assert missing.status_code == 404


async def test_setting_fields_and_the_reason_a_value_is_refused(site):
    number, a1 = site.ticket("a1"), site.as_user("a1")

    response = await a1.patch(
        f"/api/tickets/{number}",
        json={"fields": {"affected_users": 12, "category": "Technical fault/Network/Login failure"}},
    )
    assert response.status_code == 200
    assert response.json() == {
        "number": number,
        "status": "assigned",
        "priority": "P3",
        "assignee": "a1",
        "events": ["fields_updated"],
    }
    ticket = (await a1.get(f"/api/tickets/{number}")).json()
    assert ticket["fields"]["affected_users"] == 12 and ticket["category"] == LOGIN_CATEGORY
    # MQTT subscribers and open pages are told.
    assert site.sent.events(number) == ["updated"]
    [message] = [m for m in site.sent.messages if m.topic == f"tickets/{number}"]
    assert json.loads(message.payload)["data"] == {"actor": "a1", "events": ["fields_updated"]}

    refused = await a1.patch(f"/api/tickets/{number}", json={"fields": {"affected_users": 0}})
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("invalid ticket field(s) affected_users: affected_users:")
    unknown = await a1.patch(f"/api/tickets/{number}", json={"fields": {"colour": "red"}})
    assert unknown.status_code == 422 and "colour" in unknown.json()["detail"]
    empty = await a1.patch(f"/api/tickets/{number}", json={"fields": {}})
    assert empty.status_code == 422 and empty.json()["problems"][0]["where"] == "body.fields"
    surrogate = await a1.patch(
        f"/api/tickets/{number}",
        content='{"fields": {"description": "\\ud800"}}',
        headers={"Content-Type": "application/json"},
    )
    assert surrogate.status_code == 422 and "surrogate" in surrogate.json()["problems"][0]["problem"]
    assert (await a1.get(f"/api/tickets/{number}")).json()["fields"]["affected_users"] == 12
    assert site.sent.events(number) == ["updated"]


async def test_transitions_say_what_is_missing_or_not_allowed(site):
    number, a1 = site.ticket("a1"), site.as_user("a1")

    async def act(**body):
        return await a1.post(f"/api/tickets/{number}/transitions", json=body)

    no_category = await act(action="start")
    assert no_category.status_code == 422
    assert (
        no_category.json()["detail"] == "a ticket that is in_progress needs these fields filled in: category"
    )
    not_now = await act(action="resume")
    assert not_now.status_code == 409
    assert not_now.json()["detail"] == (
        "cannot resume a ticket that is assigned;"
        " allowed now: assign, start, update_fields, change_priority, comment"
    )
    assert (await act(action="wait")).status_code == 422
    assert (await act(action="fly")).status_code == 422

    steps = [
        ({"action": "start", "fields": {"category": LOGIN_CATEGORY}}, "in_progress"),
        ({"action": "wait", "on": "customer", "reason": "等客户提供订单号"}, "waiting"),
        ({"action": "resume"}, "in_progress"),
        ({"action": "priority", "priority": "紧急"}, "in_progress"),
        ({"action": "assign", "assignee": "a3", "reason": "换班"}, "in_progress"),
        ({"action": "resolve", "resolution": "重置密码后恢复"}, "resolved"),
        ({"action": "close", "confirmed": True}, "closed"),
    ]
    for body, status in steps:
        response = await act(**body)
        assert response.status_code == 200, (body, response.text)
        assert response.json()["status"] == status
    final = response.json()
    assert (final["priority"], final["assignee"]) == ("P2", "a3")

    assert (await act(action="reopen")).json()["detail"] == "reopen needs a reason"
    assert (await act(action="close", resolution="again")).json()["detail"] == (
        "cannot close a ticket that is closed; allowed now: reopen, comment"
    )
    reopened = await act(action="reopen", reason="又登录不了")
    assert reopened.status_code == 200 and reopened.json()["status"] == "in_progress"


async def test_closing_with_a_resolution_walks_start_resolve_and_close_at_once(site):
    number = site.ticket("a3")
    response = await site.as_user("a1").post(
        f"/api/tickets/{number}/transitions",
        json={"action": "close", "resolution": "远程协助后恢复", "fields": {"category": LOGIN_CATEGORY}},
    )

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["assignee"]) == ("closed", "a3")
    history = await _history(site, number)
    assert [(e["kind"], e["from_status"], e["to_status"], e["actor"]) for e in history[3:]] == [
        ("fields_updated", "assigned", "assigned", "a1"),  # the category
        ("started", "assigned", "in_progress", "a1"),
        ("fields_updated", "in_progress", "in_progress", "a1"),  # the resolution
        ("resolved", "in_progress", "resolved", "a1"),
        ("closed", "resolved", "closed", "a1"),
    ]
    assert history[5]["data"] == {"changes": {"resolution": "远程协助后恢复"}}
    # Without the category nothing at all happens: all the steps or none.
    other = site.ticket("a1")
    refused = await site.as_user("a1").post(
        f"/api/tickets/{other}/transitions", json={"action": "close", "resolution": "done"}
    )
    assert refused.status_code == 422 and "category" in refused.json()["detail"]
    assert (await site.as_user("a1").get(f"/api/tickets/{other}")).json()["status"] == "assigned"


async def test_comments_are_internal_unless_meant_for_the_customer(site):
    number, a1 = site.ticket("a1"), site.as_user("a1")
    internal = await a1.post(f"/api/tickets/{number}/comments", json={"text": "怀疑是缓存问题"})
    public = await a1.post(
        f"/api/tickets/{number}/comments", json={"text": "已为您重置密码", "customer_visible": True}
    )

    assert internal.status_code == public.status_code == 200
    assert internal.json()["events"] == ["commented"]
    comments = [e for e in await _history(site, number) if e["kind"] == "commented"]
    assert [(c["actor"], c["data"]["text"], c["data"]["visibility"]) for c in comments] == [
        ("a1", "怀疑是缓存问题", "internal"),
        ("a1", "已为您重置密码", "customer"),
    ]
    assert (await a1.post(f"/api/tickets/{number}/comments", json={"text": ""})).status_code == 422


async def test_an_attachment_goes_up_and_comes_back_with_its_sha256(site):
    number, a1 = site.ticket("a1"), site.as_user("a1")
    content = bytes(range(256)) * 400
    response = await a1.post(
        f"/api/tickets/{number}/attachments", files={"file": ("故障截图.png", content, "image/png")}
    )

    assert response.status_code == 201
    added = response.json()
    assert added["sha256"] == hashlib.sha256(content).hexdigest()
    assert (added["name"], added["size_bytes"], added["content_type"]) == (
        "故障截图.png",
        len(content),
        "image/png",
    )
    assert (added["added_by"], added["added_at"]) == ("a1", T0)
    assert [a["id"] for a in (await a1.get(f"/api/tickets/{number}/attachments")).json()] == [added["id"]]
    download = await a1.get(added["url"])
    assert download.status_code == 200 and download.content == content
    assert download.headers["content-type"] == "image/png"
    assert "故障截图.png" in unquote(download.headers["content-disposition"])
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "attachment_added" in site.sent.events(number)

    # The same file again is refused, and the first one stays whole.
    again = await a1.post(f"/api/tickets/{number}/attachments", files={"file": ("copy.png", content)})
    assert again.status_code == 409 and f"#{added['id']}" in again.json()["detail"]
    assert (await a1.get(added["url"])).content == content

    # A name longer than a file system allows is kept whole; only the file on disk is cut short.
    long_name = "客户提供的" * 30 + ".pdf"
    long = await a1.post(f"/api/tickets/{number}/attachments", files={"file": (long_name, b"%PDF-1.4")})
    assert long.status_code == 201
    assert long.json()["name"] == long_name
    download = await a1.get(long.json()["url"])
    assert download.content == b"%PDF-1.4" and download.headers["content-type"] == "application/pdf"

    assert (
        await a1.post("/api/tickets/T-999999/attachments", files={"file": ("x", b"x")})
    ).status_code == 404
    assert (await a1.get("/api/attachments/999/content")).status_code == 404


async def test_articles_about_the_ticket_are_suggested(site):
    sup = site.as_user("sup")
    login = await sup.post(
        "/api/kb/articles",
        json={
            "title": "无法登录处理",
            "body": "客户无法登录，提示密码错误时，先确认账号，再发短信验证码重置密码。",
            "tags": ["登录", "密码"],
        },
    )
    await sup.post("/api/kb/articles", json={"title": "发票申请", "body": "在账单页面申请开具发票。"})
    assert login.status_code == 201

    response = await site.as_user("a1").get(f"/api/tickets/{site.ticket('a1')}/suggestions")
    assert response.status_code == 200
    suggestions = response.json()
    assert [s["id"] for s in suggestions] == [login.json()["id"]]
    assert suggestions[0]["title"] == "无法登录处理" and suggestions[0]["why"]
    assert (
        await site.as_user("a1").get(f"/api/tickets/{site.ticket('a1')}/suggestions?limit=0")
    ).status_code == 422


async def test_finding_tickets_by_words_phone_and_filters(site):
    admin = site.as_user("admin")

    async def found(**params):
        page = (await admin.get("/api/tickets", params=params)).json()
        return [item["number"] for item in page["items"]], page["total"]

    t = site.ticket
    assert await found(q="无法登录") == ([t("a1")], 1)
    assert await found(q="13800000001") == ([t("a1")], 1)
    assert await found(q=t("a2")) == ([t("a2")], 1)
    assert await found(status="new") == ([t("nobody"), t("rang_a1")], 2)
    assert await found(status=["new", "assigned"], limit=2) == ([t("admin"), t("sup")], 7)
    assert await found(limit=2, offset=6) == ([t("a1")], 7)
    assert await found(assignee="a2") == ([t("a2")], 1)
    assert await found(customer_id=site.seeded.customers["li"]) == ([t("a2")], 1)
    assert await found(created_from=T0) == ([], 0)
    assert await found(created_until=T0, priority="P3") == (
        [t(w) for w in ("admin", "sup", "nobody", "rang_a1", "a3", "a2", "a1")],
        7,
    )
    await admin.patch(f"/api/tickets/{t('a2')}", json={"fields": {"category": LOGIN_CATEGORY}})
    assert await found(category="技术故障/网络问题") == ([t("a2")], 1)
    assert await found(category="技术故障/网") == ([], 0)  # a prefix of whole levels only
    assert (await admin.get("/api/tickets", params={"status": "lost"})).status_code == 422
    assert (await admin.get("/api/tickets", params={"limit": 501})).status_code == 422


async def test_a_ticket_is_found_by_its_category_in_either_language(site):
    a1 = site.as_user("a1")
    number = site.ticket("a1")
    assert (await a1.get("/api/tickets", params={"q": "Login failure"})).json()["total"] == 0
    changed = await a1.patch(
        f"/api/tickets/{number}", json={"fields": {"category": "technical/network/login"}}
    )
    assert changed.status_code == 200
    for q in ("登录异常", "Login failure", "network"):
        page = (await a1.get("/api/tickets", params={"q": q})).json()
        assert [item["number"] for item in page["items"]] == [number], q
