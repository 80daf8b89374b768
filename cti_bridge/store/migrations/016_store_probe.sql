-- One row the health check rewrites while writes fail: a write is the only proof that the
-- store takes writes again (a SELECT succeeds on a full disk and under another's lock).
CREATE TABLE store_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    written_at REAL NOT NULL
);
