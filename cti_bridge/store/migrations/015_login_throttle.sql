-- Failed sign-ins, so password guessing stays slowed across a restart (issue #12, item 3).
-- One row per password check that was let through: counted before the (slow) check, removed
-- again for that name and address when the check succeeds. Rows older than the throttle's
-- window are deleted as new attempts come in, so the table stays the size of one window.
CREATE TABLE login_attempts (
    id       INTEGER PRIMARY KEY,
    user_key TEXT NOT NULL,                     -- the name tried, case-folded
    address  TEXT NOT NULL,                     -- the client's address (an IPv6 client's /64)
    at       REAL NOT NULL
);
CREATE INDEX login_attempts_user ON login_attempts(user_key, address, at);
CREATE INDEX login_attempts_age ON login_attempts(at);
