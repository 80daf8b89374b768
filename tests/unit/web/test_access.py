"""Who sees and may do what: no credentials, another team's things, and role-only endpoints."""

import pytest

from cti_bridge.store import users as user_store
from tests.unit.web.conftest import CUSTOMER_PHONE, LOGIN_CATEGORY, OTHER_CUSTOMER_PHONE

PUBLIC = {("GET", "/api/health"), ("POST", "/api/session")}


def _concrete(site, path):
    """A documented path with real values for its parameters."""
    return (
        path.replace("{number}", site.ticket("a1"))
        .replace("{user_id}", "a1")
        .replace("{recording_id}", str(site.seeded.recordings["a1"]))
        .replace("{attachment_id}", str(site.seeded.attachments["a2"]))
        .replace("{customer_id}", str(site.seeded.customers["wang"]))
        .replace("{token_id}", "1")
        .replace("{article_id}", "1")
    )


async def test_every_endpoint_but_health_and_sign_in_wants_credentials(site):
    anonymous = site.client()
    forged = site.client({"Authorization": "Bearer ctb_not-a-token"})
    stale_cookie = site.client()
    stale_cookie.cookies.set("cti_session", "not-a-session")
    operations = [
        (method.upper(), path)
        for path, methods in site.app.openapi()["paths"].items()
        for method in methods
        if (method.upper(), path) not in PUBLIC
    ]
    assert len(operations) > 30
    for method, path in operations:
        url = _concrete(site, path)
        body = {"json": {}} if method in ("POST", "PATCH") else {}
        for client in (anonymous, forged, stale_cookie):
            response = await client.request(method, url, **body)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert (await anonymous.get("/api/health")).status_code == 200
    assert (await anonymous.post("/api/session", json={"username": "a1", "password": "x"})).status_code == 401


def _peeks(site, whose):
    """Every way of reaching `whose` ticket and its recording, attachment and customer."""
    number = site.ticket(whose)
    recording = site.seeded.recordings[whose]
    return [
        ("GET", f"/api/tickets/{number}", {}),
        ("GET", f"/api/tickets/{number}/attachments", {}),
        ("GET", f"/api/tickets/{number}/suggestions", {}),
        ("GET", f"/api/recordings/{recording}", {}),
        ("GET", f"/api/recordings/{recording}/audio", {}),
        ("GET", f"/api/recordings/{recording}/transcript", {}),
        ("GET", f"/api/attachments/{site.seeded.attachments['a2']}/content", {}),
        ("GET", f"/api/customers/{site.seeded.customers['li']}", {}),
        ("PATCH", f"/api/tickets/{number}", {"json": {"fields": {"affected_users": 3}}}),
        ("POST", f"/api/tickets/{number}/comments", {"json": {"text": "a look"}}),
        ("POST", f"/api/tickets/{number}/attachments", {"files": {"file": ("note.txt", b"a note")}}),
        (
            "POST",
            f"/api/tickets/{number}/transitions",
            {"json": {"action": "start", "fields": {"category": LOGIN_CATEGORY}}},
        ),
    ]


async def test_an_agent_gets_404_for_everything_of_another_team(site):
    admin = site.as_user("admin")
    before = (await admin.get(f"/api/tickets/{site.ticket('a2')}")).json()

    for client in (site.as_user("a1"), await site.signed_in("a1")):
        for method, url, request in _peeks(site, "a2"):
            response = await client.request(method, url, **request)
            assert response.status_code == 404, (method, url, response.text)
            assert "not yours to see" in response.json()["detail"]

    # Nothing was changed, added or announced on the way.
    assert (await admin.get(f"/api/tickets/{site.ticket('a2')}")).json() == before
    assert site.sent.events(site.ticket("a2")) == []
    # The very same requests work for the ticket's own agent: only who asks differs.
    own = site.as_user("a2")
    for method, url, request in _peeks(site, "a2"):
        response = await own.request(method, url, **request)
        assert response.status_code in (200, 201), (method, url, response.text)


async def test_an_agent_lists_their_own_their_teams_and_rung_tickets(site):
    async def listed(user, **params):
        page = (await site.as_user(user).get("/api/tickets", params=params)).json()
        numbers = {item["number"] for item in page["items"]}
        assert page["total"] == len(numbers)
        return numbers

    t = site.ticket
    assert await listed("a1") == {t("a1"), t("a3"), t("rang_a1")}
    assert await listed("a3") == {t("a1"), t("a3")}  # a1's rung call is no teammate's
    assert await listed("a2") == {t("a2"), t("nobody")}
    everything = {t(w) for w in ("a1", "a2", "a3", "rang_a1", "nobody", "sup", "admin")}
    assert await listed("sup") == await listed("admin") == everything
    assert await listed("a1", mine="true") == {t("a1")}
    assert await listed("a1", unassigned="true") == {t("rang_a1")}
    # A search cannot reach past the scope either.
    assert await listed("a1", q="账单疑问") == set()
    assert await listed("a2", q="账单疑问") == {t("a2")}


async def test_an_agent_sees_the_calls_customers_and_agents_of_their_team_only(site):
    a1 = site.as_user("a1")
    calls = (await a1.get("/api/calls")).json()
    assert {c["linkedid"] for c in calls} == {"L1", "L3", "L4"}
    assert {c["linkedid"] for c in (await site.as_user("sup").get("/api/calls")).json()} == {
        f"L{n}" for n in range(1, 8)
    }
    assert [c["name"] for c in (await a1.get("/api/customers", params={"phone": CUSTOMER_PHONE})).json()] == [
        "王小明"
    ]
    assert (await a1.get("/api/customers", params={"phone": OTHER_CUSTOMER_PHONE})).json() == []
    assert [a["id"] for a in (await a1.get("/api/meta")).json()["agents"]] == ["a1", "a3"]
    assert [a["id"] for a in (await site.as_user("sup").get("/api/meta")).json()["agents"]] == [
        "a1",
        "a3",
        "a2",
    ]


async def test_a_teammate_sees_the_ticket_but_another_team_does_not(site):
    number = site.ticket("a3")
    assert (await site.as_user("a1").get(f"/api/tickets/{number}")).status_code == 200
    assert (await site.as_user("a2").get(f"/api/tickets/{number}")).status_code == 404
    # The rung ticket is the rung agent's alone.
    assert (await site.as_user("a1").get(f"/api/tickets/{site.ticket('rang_a1')}")).status_code == 200
    assert (await site.as_user("a3").get(f"/api/tickets/{site.ticket('rang_a1')}")).status_code == 404


SUPERVISOR_ONLY = [
    ("GET", "/api/reports/kpi", {}),
    ("POST", "/api/kb/articles", {"json": {"title": "Reset a password", "body": "Send the SMS code."}}),
    ("PATCH", "/api/kb/articles/1", {"json": {"title": "Reset a password, again"}}),
]


async def test_reports_and_writing_articles_are_for_supervisors(site):
    await site.store.kb_add_article(title="Old title", body="Some body.", actor="sup", at=site.clock())
    for method, url, request in SUPERVISOR_ONLY:
        for client in (site.as_user("a1"), await site.signed_in("a2")):
            response = await client.request(method, url, **request)
            assert response.status_code == 403, (method, url, response.text)
            assert response.json()["detail"] == "supervisors and admins only"
    assert [a.title for a in await site.store.kb_articles()] == ["Old title"]
    for method, url, request in SUPERVISOR_ONLY:
        for user in ("sup", "admin"):
            response = await site.as_user(user).request(method, url, **request)
            assert response.status_code in (200, 201), (user, method, url, response.text)


ADMIN_ONLY = [
    ("GET", "/api/users", {}),
    ("POST", "/api/users", {"json": {"id": "a4", "role": "agent", "agent_id": "a3"}}),
    ("PATCH", "/api/users/a1", {"json": {"role": "admin"}}),
    ("GET", "/api/tokens", {}),
    ("POST", "/api/users/a1/tokens", {"json": {"label": "mine now"}}),
    ("DELETE", "/api/tokens/5", {}),  # the admin's own token: last, so the others still work
]


@pytest.mark.parametrize("user", ["a1", "sup"])
async def test_users_and_tokens_are_for_admins(site, user):
    for method, url, request in ADMIN_ONLY:
        for client in (site.as_user(user), await site.signed_in(user)):
            response = await client.request(method, url, **request)
            assert response.status_code == 403, (method, url, response.text)
            assert response.json()["detail"] == "admins only"
    db = site.store.database
    assert [u.id for u in await user_store.users(db)] == ["a1", "a2", "a3", "admin", "sup"]
    assert (await user_store.user(db, "a1")).role == "agent"
    assert [(t.label, t.revoked_at) for t in await user_store.tokens(db)] == [("tests", None)] * 5
    admin = site.as_user("admin")
    for method, url, request in ADMIN_ONLY:
        response = await admin.request(method, url, **request)
        assert response.status_code in (200, 201), (method, url, response.text)
