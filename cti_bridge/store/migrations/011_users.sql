-- People who sign in to the browser pages and the HTTP API, their API tokens and their
-- browser sessions (issue #5). Passwords are argon2id hashes; tokens and session ids are
-- random 256-bit values stored only as their SHA-256 (cti_bridge.web.auth says why that is
-- enough for them and not for passwords).
CREATE TABLE users (
    id            TEXT PRIMARY KEY,             -- login name; an agent's is usually its agent id
    name          TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    agent_id      TEXT,                         -- agents[].id in the config, for role agent
    language      TEXT,                         -- zh | en; NULL: the browser's
    password_hash TEXT,                         -- NULL: API tokens only
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    label        TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the token
    created_at   REAL NOT NULL,
    last_used_at REAL,
    revoked_at   REAL
);

CREATE TABLE web_sessions (
    id_hash    TEXT PRIMARY KEY,                -- hex SHA-256 of the cookie's value
    user_id    TEXT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,                   -- sent back in X-CSRF-Token on every change
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_expiry ON web_sessions(expires_at);
