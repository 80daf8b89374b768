-- Customer satisfaction from the post-call IVR survey (issue #4, item 8): one score per call
-- (a repeated survey for the same call replaces it), and the ticket's latest score and when it
-- came, for listing and reports. Every score is also a 'csat' event in the ticket's history.
CREATE TABLE csat_scores (
    call_id   INTEGER PRIMARY KEY REFERENCES calls(id),
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    score     INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    at        REAL NOT NULL
);
CREATE INDEX csat_scores_ticket ON csat_scores(ticket_id, at);
ALTER TABLE tickets ADD COLUMN csat_score INTEGER;
ALTER TABLE tickets ADD COLUMN csat_at REAL;
