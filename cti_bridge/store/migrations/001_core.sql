-- Customers, tickets, calls, recordings, the transcription job queue and transcripts.
-- Times are seconds since the epoch (REAL): durations and windows are plain subtraction.

CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    company     TEXT,
    email       TEXT,
    tier        TEXT NOT NULL DEFAULT 'standard',
    vip         INTEGER NOT NULL DEFAULT 0,
    notes       TEXT,
    external_id TEXT UNIQUE,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);

-- A customer may call from several numbers; a number belongs to one customer.
CREATE TABLE customer_phones (
    phone       TEXT PRIMARY KEY,           -- E.164
    customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE
);
CREATE INDEX customer_phones_customer ON customer_phones(customer_id);

CREATE TABLE tickets (
    id            INTEGER PRIMARY KEY,
    number        TEXT UNIQUE,
    status        TEXT NOT NULL,
    priority      TEXT NOT NULL,
    category      TEXT,
    rule          TEXT,                     -- the prefill rule that set category/priority
    subject       TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    channel       TEXT NOT NULL DEFAULT 'phone',
    customer_id   INTEGER REFERENCES customers(id),
    caller_number TEXT,                     -- E.164 when it could be normalised
    caller_name   TEXT,
    did           TEXT,
    queue         TEXT,
    assignee      TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE INDEX tickets_customer ON tickets(customer_id, updated_at);
CREATE INDEX tickets_caller ON tickets(caller_number, updated_at);
CREATE INDEX tickets_status ON tickets(status, updated_at);

-- Exactly one row per call and PBX: the UNIQUE key is what makes ticket creation
-- idempotent across reconnects and daemon restarts.
CREATE TABLE calls (
    id                INTEGER PRIMARY KEY,
    pbx               TEXT NOT NULL,
    linkedid          TEXT NOT NULL,
    ticket_id         INTEGER NOT NULL REFERENCES tickets(id),
    direction         TEXT NOT NULL,
    caller_number     TEXT,
    caller_name       TEXT,
    did               TEXT,
    queue             TEXT,
    agent_id          TEXT,
    rang_agents       TEXT NOT NULL DEFAULT '',
    started_at        REAL NOT NULL,
    answered_at       REAL,
    ended_at          REAL,
    ring_seconds      REAL,
    talk_seconds      REAL,
    hangup_cause      INTEGER,
    hangup_cause_text TEXT,
    outcome           TEXT,
    UNIQUE (pbx, linkedid)
);
CREATE INDEX calls_ticket ON calls(ticket_id);
CREATE INDEX calls_open ON calls(pbx, ended_at);

CREATE TABLE recordings (
    id               INTEGER PRIMARY KEY,
    call_id          INTEGER NOT NULL REFERENCES calls(id),
    ticket_id        INTEGER NOT NULL REFERENCES tickets(id),
    pbx_path         TEXT NOT NULL,
    local_path       TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'recording',  -- recording | linked | missing | incomplete
    size_bytes       INTEGER,
    duration_seconds REAL,
    error            TEXT,
    created_at       REAL NOT NULL,
    linked_at        REAL,
    UNIQUE (call_id, pbx_path)
);
CREATE INDEX recordings_ticket ON recordings(ticket_id);

-- The durable job queue. A job is claimed with a lease; only the lease holder may
-- complete it, so a job whose worker died is retried and never completed twice.
CREATE TABLE transcription_jobs (
    id               INTEGER PRIMARY KEY,
    recording_id     INTEGER NOT NULL UNIQUE REFERENCES recordings(id),
    state            TEXT NOT NULL DEFAULT 'queued',    -- queued | running | done | failed
    language         TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at REAL,
    not_before       REAL NOT NULL DEFAULT 0,
    error            TEXT,
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL
);
CREATE INDEX transcription_jobs_ready ON transcription_jobs(state, not_before);

CREATE TABLE transcripts (
    id               INTEGER PRIMARY KEY,
    job_id           INTEGER NOT NULL UNIQUE REFERENCES transcription_jobs(id),
    recording_id     INTEGER NOT NULL UNIQUE REFERENCES recordings(id),
    ticket_id        INTEGER NOT NULL REFERENCES tickets(id),
    language         TEXT NOT NULL,
    text             TEXT NOT NULL,
    words            TEXT NOT NULL,            -- JSON: [{word, start, end, conf, channel?}]
    duration_seconds REAL NOT NULL,
    elapsed_seconds  REAL NOT NULL,
    created_at       REAL NOT NULL
);
CREATE INDEX transcripts_ticket ON transcripts(ticket_id);

-- Append-only ticket history.
CREATE TABLE ticket_events (
    id        INTEGER PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    at        REAL NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    data      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX ticket_events_ticket ON ticket_events(ticket_id, at);
