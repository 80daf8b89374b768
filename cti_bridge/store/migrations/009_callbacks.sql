-- Callback dispatch (issue #4 item 5): a missed, abandoned or after-hours call makes its ticket a
-- callback ticket, given to an agent by cti_bridge.tickets.dispatch.
--
-- tickets.callback_reason: why the ticket needs a call back (missed | abandoned | after_hours),
-- set by the first call that made it one; NULL for a ticket nobody has to call back.
-- calls.callback_at: when this call's callback was handled (dispatched, left in a team queue,
-- or left with the ticket's owner). Set once: a replayed or resynced call end finds it set and
-- dispatches nothing again; the calls row is found through its UNIQUE (pbx, linkedid).
ALTER TABLE tickets ADD COLUMN callback_reason TEXT;
ALTER TABLE calls ADD COLUMN callback_at REAL;

-- An agent's load (open tickets) is counted at every dispatch, for each agent: a covering
-- index per (assignee, status) instead of a scan of every open ticket.
CREATE INDEX tickets_assignee_status ON tickets(assignee, status);

-- Response speed reads the first-response events of a recent window; the call path writes
-- many other events (rang, ended, recordings...) that this index leaves out. The dispatch
-- query repeats this WHERE term word for word, which SQLite needs to use a partial index.
CREATE INDEX ticket_events_responses ON ticket_events(at)
WHERE kind IN ('call_answered', 'started', 'resolved', 'commented');

-- Calls whose end was recorded but whose callback was not (the daemon stopped in between):
-- the daemon looks for them when it starts.
CREATE INDEX calls_awaiting_callback ON calls(ended_at)
WHERE callback_at IS NULL AND outcome IN ('missed', 'abandoned');
