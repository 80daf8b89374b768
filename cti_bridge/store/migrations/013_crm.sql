-- What the site's CRM said about a ticket's caller (issue #11, item 9): the latest answer
-- for the ticket, kept as fetched, so the pages and `tickets show` need no CRM to show it.
CREATE TABLE ticket_crm (
    ticket_id  INTEGER PRIMARY KEY REFERENCES tickets(id),
    phone      TEXT NOT NULL,               -- E.164: the number looked up
    found      INTEGER NOT NULL,            -- 0: the CRM does not know the number
    profile    TEXT,                        -- JSON: name, company, email, tier, vip, external_id, notes, orders
    fetched_at REAL NOT NULL                -- when the CRM answered (a cached answer keeps its time)
) WITHOUT ROWID;
