-- Every call flow in the ticket (issue #11): outbound calls, callbacks made, transfers.
--
-- calls.transfers: how many times the call was transferred (each is also a 'transferred' event
-- in the ticket's history, with its kind, from and to).
-- calls.placed_by: the agent whose phone placed an outbound call.
-- tickets.callback_made_at: when an agent first called a callback ticket's customer back
-- (answered or not); NULL while nobody has. Each attempt is a 'callback_made' history event.
ALTER TABLE calls ADD COLUMN transfers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN placed_by TEXT;
ALTER TABLE tickets ADD COLUMN callback_made_at REAL;

-- An outbound call looks for its customer's open callback ticket whatever its age.
CREATE INDEX tickets_open_callbacks ON tickets(caller_number, created_at)
WHERE callback_reason IS NOT NULL;
