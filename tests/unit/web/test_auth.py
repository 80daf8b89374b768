"""Signing in and out, the session cookie and its CSRF token, API tokens, and what is stored of them."""

from http.cookies import SimpleCookie

from cti_bridge.config import Config
from cti_bridge.store import users as user_store
from cti_bridge.web.auth import digest
from cti_bridge.web.context import CSRF_HEADER, SESSION_COOKIE
from tests.unit.web.conftest import PASSWORD, T0, config_data, open_site


def _session_cookie(response):
    cookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    return cookie[SESSION_COOKIE]


async def test_signing_in_sets_a_strict_http_only_cookie_and_answers_who_it_is(site):
    response = await site.client().post("/api/session", json={"username": "a1", "password": PASSWORD})

    assert response.status_code == 200
    cookie = _session_cookie(response)
    assert cookie["httponly"] is True and cookie["samesite"] == "strict" and cookie["path"] == "/"
    assert cookie["max-age"] == str(12 * 3600) and not cookie["secure"]
    me = response.json()
    assert me["user"]["id"] == "a1" and me["user"]["role"] == "agent"
    assert me["team"] == "t1" and me["sees_agents"] == ["a1", "a3"]
    assert len(me["csrf_token"]) >= 24


async def test_the_cookie_is_secure_when_the_config_says_so(tmp_path, endpoint_hits, password_hash):
    config = Config.model_validate(config_data(tmp_path, web={"port": 0, "secure_cookies": True}))
    site = await open_site(tmp_path, endpoint_hits, password_hash, config)
    try:
        response = await site.client().post("/api/session", json={"username": "sup", "password": PASSWORD})
        assert response.status_code == 200
        assert _session_cookie(response)["secure"] is True
    finally:
        await site.close()


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(site):
    await site.as_user("admin").patch("/api/users/a2", json={"disabled": True})
    await user_store.add_user(site.store.database, "robot", role="admin", at=T0)  # tokens only
    client = site.client()
    answers = [
        await client.post("/api/session", json={"username": username, "password": password})
        for username, password in (
            ("a1", "not the password"),
            ("nobody", PASSWORD),
            ("a2", PASSWORD),  # disabled
            ("robot", PASSWORD),  # has no password
        )
    ]
    assert [r.status_code for r in answers] == [401] * 4
    assert {r.json()["detail"] for r in answers} == {"wrong user name or password"}
    assert all("set-cookie" not in r.headers for r in answers)


async def test_guessing_a_password_is_slowed_down_for_that_user_name(site):
    client = site.client()
    tries = [
        (await client.post("/api/session", json={"username": "A1", "password": f"guess {n}"})).status_code
        for n in range(10)
    ]
    assert tries == [401] * 10

    # Even the right password waits now (the name's case does not matter); others sign in.
    refused = await client.post("/api/session", json={"username": "a1", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) == 300
    assert "set-cookie" not in refused.headers
    other = await site.client().post("/api/session", json={"username": "a3", "password": PASSWORD})
    assert other.status_code == 200

    site.clock.advance(300)
    welcome = await client.post("/api/session", json={"username": "a1", "password": PASSWORD})
    assert welcome.status_code == 200 and SESSION_COOKIE in welcome.cookies


async def test_a_change_by_cookie_needs_the_sessions_csrf_token(site):
    browser = await site.signed_in("a1")
    csrf = browser.headers.pop(CSRF_HEADER)
    number = site.ticket("a1")
    changes = [
        ("POST", f"/api/tickets/{number}/comments", {"json": {"text": "客户已回电"}}),
        ("PATCH", f"/api/tickets/{number}", {"json": {"fields": {"affected_users": 2}}}),
        ("PATCH", "/api/me", {"json": {"language": "zh"}}),
        ("DELETE", "/api/session", {}),
    ]
    for headers in ({}, {CSRF_HEADER: "forged"}, {CSRF_HEADER: csrf[:-1]}):
        for method, url, request in changes:
            response = await browser.request(method, url, headers=headers, **request)
            assert response.status_code == 403, (headers, method, url)
            assert response.json()["detail"] == f"missing or wrong {CSRF_HEADER} header"
    # Reading needs none; nothing was changed above.
    detail = (await browser.get(f"/api/tickets/{number}")).json()
    assert [e["kind"] for e in detail["history"]].count("commented") == 0
    assert detail["fields"] == {}
    assert (await browser.get("/api/me")).json()["user"]["language"] is None

    for method, url, request in changes:
        response = await browser.request(method, url, headers={CSRF_HEADER: csrf}, **request)
        assert response.status_code in (200, 204), (method, url, response.text)
    detail = (await site.as_user("a1").get(f"/api/tickets/{number}")).json()
    assert [e["kind"] for e in detail["history"]].count("commented") == 1
    assert detail["fields"] == {"affected_users": 2}


async def test_a_token_needs_no_csrf_token_and_has_no_session_to_end(site):
    client = site.as_user("a1")
    response = await client.post(f"/api/tickets/{site.ticket('a1')}/comments", json={"text": "by token"})
    assert response.status_code == 200 and response.json()["events"] == ["commented"]
    me = (await client.get("/api/me")).json()
    assert me["csrf_token"] is None and me["user"]["id"] == "a1"
    response = await client.delete("/api/session")
    assert response.status_code == 400 and "revoke the token" in response.json()["detail"]
    # Its use is noted.
    [token] = await user_store.tokens(site.store.database, "a1")
    assert token.last_used_at == T0


async def test_a_revoked_token_stops_working_at_once(site):
    a1 = site.as_user("a1")
    assert (await a1.get("/api/me")).status_code == 200
    [token] = await user_store.tokens(site.store.database, "a1")
    revoked = await site.as_user("admin").delete(f"/api/tokens/{token.id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] == T0

    response = await a1.get("/api/me")
    assert response.status_code == 401
    assert response.json()["detail"] == "unknown or revoked API token"


async def test_disabling_a_user_ends_their_sessions_and_tokens(site):
    browser, by_token = await site.signed_in("a1"), site.as_user("a1")
    admin = site.as_user("admin")
    assert (await admin.patch("/api/users/a1", json={"disabled": True})).json()["disabled"] is True

    assert (await browser.get("/api/me")).status_code == 401
    assert (await by_token.get("/api/me")).status_code == 401
    again = await site.client().post("/api/session", json={"username": "a1", "password": PASSWORD})
    assert again.status_code == 401
    # Enabled again, the token works; the session ended for good.
    assert (await admin.patch("/api/users/a1", json={"disabled": False})).json()["disabled"] is False
    assert (await by_token.get("/api/me")).status_code == 200
    assert (await browser.get("/api/me")).status_code == 401


async def test_a_new_password_signs_the_user_out_everywhere(site):
    browser = await site.signed_in("a2")
    response = await site.as_user("admin").patch("/api/users/a2", json={"password": "a brand new one"})
    assert response.status_code == 200
    assert (await browser.get("/api/me")).status_code == 401
    assert (await site.signed_in("a2", "a brand new one")).cookies.get(SESSION_COOKIE)
    old = await site.client().post("/api/session", json={"username": "a2", "password": PASSWORD})
    assert old.status_code == 401


async def test_signing_out_ends_the_session(site):
    browser = await site.signed_in("sup")
    cookie = browser.cookies[SESSION_COOKIE]
    response = await browser.delete("/api/session")
    assert response.status_code == 204
    assert _session_cookie(response)["max-age"] == "0"

    replay = site.client()
    replay.cookies.set(SESSION_COOKIE, cookie)
    response = await replay.get("/api/me")
    assert response.status_code == 401
    assert response.json()["detail"] == "session expired: sign in again"


async def test_a_session_expires_after_its_lifetime(site):
    browser = await site.signed_in("a1")
    site.clock.advance(12 * 3600 - 1)
    assert (await browser.get("/api/me")).status_code == 200
    site.clock.advance(1)
    response = await browser.get("/api/me")
    assert response.status_code == 401
    assert response.json()["detail"] == "session expired: sign in again"
    # Signing in again clears the expired session away.
    await site.signed_in("a1")
    rows = await site.store.database.fetchall("SELECT expires_at FROM web_sessions")
    assert [r["expires_at"] for r in rows] == [site.clock() + 12 * 3600]


async def test_only_digests_of_tokens_session_ids_and_passwords_are_stored(site):
    browser = await site.signed_in("a1")
    session_id = browser.cookies[SESSION_COOKIE]
    issued = await site.as_user("admin").post("/api/users/a2/tokens", json={"label": "crm-sync"})
    token = issued.json()["token"]
    assert token.startswith("ctb_") and len(token) > 40

    db = site.store.database
    stored = ""
    for table in ("users", "api_tokens", "web_sessions"):
        for row in await db.fetchall(f"SELECT * FROM {table}"):
            stored += "\n".join(str(value) for value in tuple(row)) + "\n"
    secrets = [token, session_id, *site.tokens.values()]
    assert not [secret for secret in secrets if secret in stored]
    assert PASSWORD not in stored
    assert digest(token) in stored and digest(session_id) in stored
    hashes = [r["password_hash"] for r in await db.fetchall("SELECT password_hash FROM users")]
    assert len(hashes) == 5 and all(h.startswith("$argon2id$") for h in hashes)
    # The token list shows no secret either.
    listed = (await site.as_user("admin").get("/api/tokens")).text
    assert token not in listed and digest(token) not in listed
