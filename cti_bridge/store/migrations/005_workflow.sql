-- The ticket workflow (issue #4): field values that have no column of their own (typed by the
-- configured schema, stored as JSON), what a waiting ticket waits on, and the lifecycle's
-- from/to status and reason on each history event. Events written before this migration (and
-- the call path's own, which change no status) leave them NULL.
ALTER TABLE tickets ADD COLUMN fields TEXT NOT NULL DEFAULT '{}';
ALTER TABLE tickets ADD COLUMN waiting_on TEXT;
ALTER TABLE ticket_events ADD COLUMN from_status TEXT;
ALTER TABLE ticket_events ADD COLUMN to_status TEXT;
ALTER TABLE ticket_events ADD COLUMN reason TEXT;
