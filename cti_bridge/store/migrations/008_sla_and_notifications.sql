-- The SLA scheduler's memory, and the outbox of notifications to users (issue #4 item 6).

-- Each (ticket, target, kind) of SLA warning or breach fires once in a ticket's life
-- (cti_bridge.tickets.sla.SlaMark). A mark is written in the same transaction as what it fired
-- (history events, priority, assignee, notifications), and its primary key is what makes a
-- restarted daemon, or a second one on the same file, fire nothing twice.
CREATE TABLE sla_marks (
    key       TEXT PRIMARY KEY,                 -- SlaMark.key, e.g. '42:first_response:breach'
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    target    TEXT NOT NULL,                    -- first_response | resolution
    kind      TEXT NOT NULL,                    -- warning | breach
    due_at    REAL NOT NULL,                    -- when it became due
    fired_at  REAL NOT NULL                     -- when the scheduler acted on it
) WITHOUT ROWID;
CREATE INDEX sla_marks_ticket ON sla_marks(ticket_id);

-- Notifications to one user each, written inside the transaction of what caused them (an SLA
-- warning, a mention, a callback) and published later by the daemon's notifier: nothing is
-- announced that did not happen, and nothing that happened is forgotten by a crash.
CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY,
    recipient  TEXT NOT NULL,                   -- user (agent or supervisor) id
    kind       TEXT NOT NULL,                   -- sla_warning | sla_breach | mention | callback_assigned | ...
    ticket_id  INTEGER REFERENCES tickets(id),
    title      TEXT NOT NULL,
    body       TEXT NOT NULL DEFAULT '',
    data       TEXT NOT NULL DEFAULT '{}',      -- JSON
    created_at REAL NOT NULL,
    sent_at    REAL                             -- NULL until handed to the publisher
);
-- The notifier's queue: only the unsent rows, in order.
CREATE INDEX notifications_unsent ON notifications(id) WHERE sent_at IS NULL;
CREATE INDEX notifications_recipient ON notifications(recipient, created_at);
