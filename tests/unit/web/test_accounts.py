"""/api/me, and the admin's /api/users and /api/tokens."""

from cti_bridge.store import users as user_store
from cti_bridge.web.auth import digest
from tests.unit.web.conftest import T0


async def test_me_tells_and_changes_own_name_and_language(site):
    a1 = site.as_user("a1")
    me = (await a1.get("/api/me")).json()
    assert me["user"] == {
        "id": "a1",
        "name": "A1",
        "role": "agent",
        "agent_id": "a1",
        "language": None,
        "disabled": False,
        "has_password": True,
    }
    assert (me["team"], me["sees_agents"]) == ("t1", ["a1", "a3"])
    changed = await a1.patch("/api/me", json={"name": "艾一", "language": "zh"})
    assert changed.status_code == 200
    assert (changed.json()["user"]["name"], changed.json()["user"]["language"]) == ("艾一", "zh")
    assert (await user_store.user(site.store.database, "a1")).language == "zh"
    refused = await a1.patch("/api/me", json={"language": "fr"})
    assert refused.status_code == 422 and refused.json()["problems"][0]["where"] == "body.language"
    # Own role is not one of the things to change.
    assert (await a1.patch("/api/me", json={"role": "admin"})).status_code == 422
    assert (await a1.get("/api/me")).json()["user"]["role"] == "agent"
    sup = (await site.as_user("sup").get("/api/me")).json()
    assert (sup["team"], sup["sees_agents"]) == (None, None)


async def test_an_admin_adds_a_user_who_can_then_sign_in(site):
    admin = site.as_user("admin")
    added = await admin.post(
        "/api/users", json={"id": "a3.night", "role": "agent", "agent_id": "a3", "password": "night shift 1"}
    )
    assert added.status_code == 201
    assert added.json() == {
        "id": "a3.night",
        "name": "",
        "role": "agent",
        "agent_id": "a3",
        "language": None,
        "disabled": False,
        "has_password": True,
    }
    browser = await site.signed_in("a3.night", "night shift 1")
    me = (await browser.get("/api/me")).json()
    assert me["team"] == "t1" and me["sees_agents"] == ["a1", "a3"]
    assert [u["id"] for u in (await admin.get("/api/users")).json()] == [
        "a1",
        "a2",
        "a3",
        "a3.night",
        "admin",
        "sup",
    ]

    taken = await admin.post("/api/users", json={"id": "a1", "role": "supervisor"})
    assert taken.status_code == 409 and taken.json()["detail"] == "user 'a1' exists"
    unknown = await admin.post("/api/users", json={"id": "a9", "role": "agent"})
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == "agent 'a9' is not in the config's agents (a1, a2, a3)"
    short = await admin.post("/api/users", json={"id": "x", "role": "admin", "password": "short"})
    assert short.status_code == 422 and short.json()["problems"][0]["where"] == "body.password"
    odd = await admin.post("/api/users", json={"id": "a b/c", "role": "admin"})
    assert odd.status_code == 422 and odd.json()["problems"][0]["where"] == "body.id"


async def test_an_admin_changes_a_user(site):
    admin = site.as_user("admin")
    response = await admin.patch(
        "/api/users/a2", json={"name": "Two", "language": "en", "role": "supervisor"}
    )
    assert response.status_code == 200
    assert {k: response.json()[k] for k in ("name", "language", "role")} == {
        "name": "Two",
        "language": "en",
        "role": "supervisor",
    }
    # Now a supervisor, a2 sees every ticket.
    assert (await site.as_user("a2").get("/api/tickets")).json()["total"] == 7
    bad_agent = await admin.patch("/api/users/a2", json={"role": "agent", "agent_id": "zz"})
    assert bad_agent.status_code == 422 and "'zz' is not in the config's agents" in bad_agent.json()["detail"]
    missing = await admin.patch("/api/users/nobody", json={"name": "x"})
    assert missing.status_code == 404 and missing.json()["detail"] == "no user 'nobody'"


async def test_an_admin_issues_lists_and_revokes_tokens(site):
    admin = site.as_user("admin")
    issued = await admin.post("/api/users/sup/tokens", json={"label": "wallboard"})
    assert issued.status_code == 201
    body = issued.json()
    assert (body["user_id"], body["label"], body["created_at"], body["revoked_at"]) == (
        "sup",
        "wallboard",
        T0,
        None,
    )
    wallboard = site.client({"Authorization": f"Bearer {body['token']}"})
    assert (await wallboard.get("/api/me")).json()["user"]["id"] == "sup"
    [row] = await site.store.database.fetchall(
        "SELECT token_hash FROM api_tokens WHERE id = ?", (body["id"],)
    )
    assert row["token_hash"] == digest(body["token"])

    everyone = (await admin.get("/api/tokens")).json()
    assert [(t["user_id"], t["label"]) for t in everyone][-1] == ("sup", "wallboard")
    assert all("token" not in t for t in everyone)
    sups = (await admin.get("/api/tokens", params={"user": "sup"})).json()
    assert [t["label"] for t in sups] == ["tests", "wallboard"]

    site.clock.advance(60)
    revoked = await admin.delete(f"/api/tokens/{body['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] == T0 + 60
    assert (await wallboard.get("/api/me")).status_code == 401
    # Revoking again keeps the first time.
    site.clock.advance(60)
    assert (await admin.delete(f"/api/tokens/{body['id']}")).json()["revoked_at"] == T0 + 60

    assert (await admin.delete("/api/tokens/999")).status_code == 404
    nobody = await admin.post("/api/users/nobody/tokens", json={"label": "x"})
    assert nobody.status_code == 404 and nobody.json()["detail"] == "no user 'nobody'"
    assert (await admin.post("/api/users/sup/tokens", json={"label": ""})).status_code == 422
