"""Customers, calls, recordings and transcripts, the knowledge base, reports, SLA watch, meta, health."""

from cti_bridge.tickets.workflow import Assign
from cti_bridge.web.context import Health
from tests.support.helpers import inbound_call, new_ticket
from tests.unit.web.conftest import CUSTOMER_PHONE, T0


async def test_a_customer_by_id_and_by_phone(site):
    a1 = site.as_user("a1")
    wang = site.seeded.customers["wang"]
    response = await a1.get(f"/api/customers/{wang}")

    assert response.status_code == 200
    customer = response.json()
    assert (customer["id"], customer["name"], customer["vip"]) == (wang, "王小明", True)
    assert customer["phones"] == [CUSTOMER_PHONE]
    assert [t["number"] for t in customer["tickets"]] == [site.ticket("a1")]
    # A number as people write it finds the same customer.
    for phone in (CUSTOMER_PHONE, "138 0000 0001", "0086-138-0000-0001"):
        by_phone = (await a1.get("/api/customers", params={"phone": phone})).json()
        assert [c["id"] for c in by_phone] == [wang], phone
    assert (await a1.get("/api/customers", params={"phone": "+8613700000000"})).json() == []
    assert (await a1.get("/api/customers", params={"phone": "12"})).status_code == 422
    assert (await a1.get("/api/customers/999")).status_code == 404
    assert (await a1.get("/api/customers/99999999999999999999")).status_code == 422


async def test_recent_calls_newest_first_with_their_tickets(site):
    admin = site.as_user("admin")
    calls = (await admin.get("/api/calls")).json()
    assert [c["linkedid"] for c in calls] == [f"L{n}" for n in range(7, 0, -1)]
    first = calls[-1]
    assert (first["ticket"], first["agent_id"], first["caller_number"]) == (
        site.ticket("a1"),
        "a1",
        CUSTOMER_PHONE,
    )
    assert first["answered_at"] == T0 - 3590
    assert [
        c["linkedid"] for c in (await admin.get("/api/calls", params={"limit": 2, "offset": 1})).json()
    ] == [
        "L6",
        "L5",
    ]
    late = inbound_call("L8", started_at=T0)
    await site.store.create_ticket_for_call(new_ticket(), late, None, T0)
    assert [c["linkedid"] for c in (await admin.get("/api/calls", params={"since": T0})).json()] == ["L8"]


async def test_live_calls_and_queue_counts_for_what_the_user_may_see(site):
    talking = inbound_call("L10", queue="support", agent_id="a1", answered_at=T0 - 30, started_at=T0 - 60)
    waiting = inbound_call("L11", queue="support", started_at=T0 - 20, rang_agents=("a3",))
    elsewhere = inbound_call("L12", queue="billing", agent_id="a2", answered_at=T0 - 5, started_at=T0 - 10)
    site.ctx.health = Health(live_calls=lambda: (elsewhere, waiting, talking))

    mine = (await site.as_user("a1").get("/api/calls/live")).json()
    assert [c["linkedid"] for c in mine["calls"]] == ["L10", "L11"]
    assert mine["queues"] == {"support": {"waiting": 1, "talking": 1}}
    assert mine["agents_on_call"] == ["a1"]
    everything = (await site.as_user("sup").get("/api/calls/live")).json()
    assert [c["linkedid"] for c in everything["calls"]] == ["L10", "L11", "L12"]
    assert everything["queues"]["billing"] == {"waiting": 0, "talking": 1}
    assert everything["agents_on_call"] == ["a1", "a2"]


async def test_a_recording_its_audio_with_byte_ranges_and_its_transcript(site):
    a1 = site.as_user("a1")
    recording_id = site.seeded.recordings["a1"]
    recording = (await a1.get(f"/api/recordings/{recording_id}")).json()
    assert (recording["ticket"], recording["status"], recording["duration_seconds"]) == (
        site.ticket("a1"),
        "linked",
        0.5,
    )
    assert recording["size_bytes"] == len(site.seeded.wav) and "local_path" not in recording
    assert recording["audio_url"] == f"/api/recordings/{recording_id}/audio"

    audio = await a1.get(recording["audio_url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content == site.seeded.wav and audio.content[:4] == b"RIFF"
    assert audio.headers["accept-ranges"] == "bytes"
    part = await a1.get(recording["audio_url"], headers={"Range": "bytes=44-143"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 44-143/{len(site.seeded.wav)}"
    assert part.content == site.seeded.wav[44:144]

    transcript = (await a1.get(f"/api/recordings/{recording_id}/transcript")).json()
    assert transcript == {
        "recording_id": recording_id,
        "language": "en",
        "text": "hello from a1",
        "words": [{"word": "hello", "start": 0.0, "end": 0.2, "conf": 1.0}],
        "duration_seconds": 0.5,
    }


async def test_a_recording_still_being_made_has_no_audio_and_no_transcript(site):
    call = inbound_call("L1")
    recording_id = await site.store.add_recording(
        call, "/spool/late.wav", str(site.ctx.attachments_folder), T0
    )
    admin = site.as_user("admin")
    assert (await admin.get(f"/api/recordings/{recording_id}")).json()["status"] == "recording"
    audio = await admin.get(f"/api/recordings/{recording_id}/audio")
    assert audio.status_code == 409 and audio.json()["detail"] == (
        f"recording {recording_id} is recording: no audio to play"
    )
    transcript = await admin.get(f"/api/recordings/{recording_id}/transcript")
    assert (
        transcript.status_code == 404
        and transcript.json()["detail"] == "no transcript (yet), or not yours to see"
    )
    assert (await admin.get("/api/recordings/999")).status_code == 404


async def test_the_knowledge_base_read_by_all_and_written_by_supervisors(site):
    sup, a1 = site.as_user("sup"), site.as_user("a1")
    added = await sup.post(
        "/api/kb/articles",
        json={
            "title": "宽带网速慢",
            "body": "重启光猫后测速。",
            "tags": ["宽带", " "],
            "category": "技术故障",
        },
    )
    assert added.status_code == 201
    article = added.json()
    assert (article["tags"], article["created_by"], article["created_at"]) == (["宽带"], "sup", T0)
    await sup.post("/api/kb/articles", json={"title": "Invoice", "body": "Download it from billing."})

    assert [a["title"] for a in (await a1.get("/api/kb/articles")).json()] == ["Invoice", "宽带网速慢"]
    hits = (await a1.get("/api/kb/articles", params={"q": "光猫"})).json()
    assert [h["id"] for h in hits] == [article["id"]] and "光猫" in hits[0]["snippet"]
    assert [
        a["title"] for a in (await a1.get("/api/kb/articles", params={"category": "技术故障"})).json()
    ] == ["宽带网速慢"]
    assert (await a1.get(f"/api/kb/articles/{article['id']}")).json()["body"] == "重启光猫后测速。"
    assert (await a1.get("/api/kb/articles/999")).status_code == 404

    site.clock.advance(10)
    url = f"/api/kb/articles/{article['id']}"
    # A null title, body or tags keeps them; a null category clears it.
    changed = await sup.patch(url, json={"title": "网速慢排查", "tags": None, "body": None, "category": None})
    assert changed.status_code == 200
    assert {k: changed.json()[k] for k in ("title", "body", "tags", "category", "updated_at")} == {
        "title": "网速慢排查",
        "body": "重启光猫后测速。",
        "tags": ["宽带"],
        "category": None,
        "updated_at": T0 + 10,
    }
    assert (await sup.patch(url, json={"title": ""})).status_code == 422
    blank = await sup.patch(url, json={"body": "   "})
    assert blank.status_code == 422 and "blank" in blank.json()["detail"]
    assert (await sup.patch("/api/kb/articles/999", json={"title": "x"})).status_code == 404


async def test_the_kpi_report_over_a_period(site):
    sup = site.as_user("sup")
    report = await sup.get("/api/reports/kpi", params={"from": "2027-01-15", "to": "2027-01-15"})

    assert report.status_code == 200
    kpi = report.json()
    assert kpi["period"]["from"] == "2027-01-15T00:00:00+08:00"
    assert kpi["period"]["until"] == "2027-01-16T00:00:00+08:00"
    assert (kpi["tickets"], kpi["open"], kpi["resolved"]) == (7, 7, 0)
    assert kpi["volumes"]["by_priority"] == {"P3": 7}
    assert set(kpi["agents"]) >= {"a1", "a2", "a3"}
    assert kpi["sla"]["first_response"]["met"] == 3 and kpi["sla"]["first_response"]["breached"] == 4
    assert set(kpi) >= {"first_response_seconds", "resolution_seconds", "csat", "reopened", "time_in_state"}
    # By default the 30 days up to today (the clock's).
    default = (await sup.get("/api/reports/kpi")).json()
    assert default["period"]["from"] == "2026-12-17T00:00:00+08:00" and default["tickets"] == 7
    later = {"from": "2027-01-16", "to": "2027-01-20"}
    assert (await sup.get("/api/reports/kpi", params=later)).json()["tickets"] == 0

    for params, problem in (
        ({"from": "2027-01-16", "to": "2027-01-15"}, "from is after to"),
        ({"from": "2025-01-01", "to": "2027-01-15"}, "a report spans a year at most"),
        ({"to": "0001-01-05"}, "no such period: date value out of range"),
        ({"from": "9999-12-30", "to": "9999-12-31"}, "no such period: date value out of range"),
    ):
        refused = await sup.get("/api/reports/kpi", params=params)
        assert refused.status_code == 422 and refused.json()["detail"] == problem, params
    assert (await sup.get("/api/reports/kpi", params={"from": "yesterday"})).status_code == 422


async def test_the_sla_watch_lists_tickets_near_or_past_their_target(site):
    store, workflow = site.store, site.ctx.workflow
    numbers = {}
    for name, created in (("late", T0 - 3600), ("close", T0 - 540), ("fresh", T0 - 60)):
        ticket, _ = await store.create_ticket_for_call(
            new_ticket(subject=f"{name} one"), inbound_call(f"W-{name}"), None, created
        )
        await store.apply_command(
            ticket.number, Assign(assignee="a1"), workflow=workflow, actor="sup", at=created
        )
        numbers[name] = ticket.number

    watch = (await site.as_user("a1").get("/api/sla/watch")).json()
    assert [(w["number"], w["state"], w["target"], w["remaining_seconds"]) for w in watch] == [
        (numbers["late"], "breached", "first_response", -3000.0),
        (numbers["close"], "warning", "first_response", 60.0),
    ]
    assert watch[0]["subject"] == "late one" and watch[0]["assignee"] == "a1"
    assert watch[0]["due_at"] == T0 - 3000
    # Not a2's to watch; the supervisor watches the unanswered seeded tickets too.
    assert (await site.as_user("a2").get("/api/sla/watch")).json() == []
    everyone = {w["number"] for w in (await site.as_user("sup").get("/api/sla/watch")).json()}
    assert everyone == {numbers["late"], numbers["close"]} | {
        site.ticket(w) for w in ("rang_a1", "nobody", "sup", "admin")
    }
    # A response stops the clock: the ticket leaves the watch.
    started = await site.as_user("a1").post(
        f"/api/tickets/{numbers['late']}/transitions",
        json={"action": "start", "fields": {"category": "技术故障/网络问题/登录异常"}},
    )
    assert started.status_code == 200
    assert [w["number"] for w in (await site.as_user("a1").get("/api/sla/watch")).json()] == [
        numbers["close"]
    ]


async def test_meta_describes_the_forms(site):
    meta = (await site.as_user("a1").get("/api/meta")).json()
    assert [c["key"] for c in meta["categories"]] == ["technical"]
    assert meta["categories"][0]["children"][0]["children"][0] == {
        "key": "login",
        "zh": "登录异常",
        "en": "Login failure",
        "children": [],
    }
    assert [p["code"] for p in meta["priorities"]] == ["P1", "P2", "P3", "P4"]
    assert meta["required_fields"]["in_progress"] == ["category"]
    assert "start" in meta["commands"]["assigned"] and meta["commands"]["closed"] == ["reopen", "comment"]
    [custom] = [f for f in meta["fields"] if f["name"] == "affected_users"]
    assert (custom["type"], custom["minimum"]) == ("integer", 1)
    assert meta["teams"][0] == {"name": "t1", "label": "一线", "supervisor": "sup"}


async def test_health_needs_no_sign_in_and_says_what_is_down(site):
    anonymous = site.client()
    health = (await anonymous.get("/api/health")).json()
    assert (health["status"], health["store"], health["mqtt"], health["live_calls"]) == (
        "degraded",
        True,
        False,
        0,
    )

    call = inbound_call("L20")
    site.ctx.health = Health(
        mqtt_connected=lambda: True, pbx_connected=lambda: {"main": True}, live_calls=lambda: (call,)
    )
    health = (await anonymous.get("/api/health")).json()
    assert (health["status"], health["pbxs"], health["live_calls"]) == ("ok", {"main": True}, 1)
    site.ctx.health = Health(mqtt_connected=lambda: True, pbx_connected=lambda: {"main": False})
    assert (await anonymous.get("/api/health")).json()["status"] == "degraded"


async def test_the_home_page_sends_to_sign_in_and_pages_get_protective_headers(site):
    anonymous = site.client()
    home = await anonymous.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/login"
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
    assert home.headers["x-content-type-options"] == "nosniff"
    browser = await site.signed_in("a1")
    assert (await browser.get("/")).headers["location"] == "/agent"
    # The API's answers are data: their own policy lets them load and run nothing.
    api_policy = (await anonymous.get("/api/health")).headers["content-security-policy"]
    assert api_policy.startswith("default-src 'none'")
