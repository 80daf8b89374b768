-- Files attached to tickets (issue #4 item 7). The bytes live on disk, in the configured
-- attachments folder; the row keeps where, how big and the SHA-256 they had when attached,
-- so a file changed or lost on disk is found out (Store.verify_attachments).
CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    ticket_id    INTEGER NOT NULL REFERENCES tickets(id),
    name         TEXT NOT NULL,
    path         TEXT NOT NULL UNIQUE,
    sha256       TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL,
    content_type TEXT,
    added_by     TEXT NOT NULL,
    added_at     REAL NOT NULL
);
CREATE INDEX attachments_ticket ON attachments(ticket_id);
