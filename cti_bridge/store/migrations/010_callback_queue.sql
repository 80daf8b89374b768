-- Callback tickets nobody could take stay in their team's queue; the daemon offers them
-- again as agents' loads fall. This index is that queue: few rows among all tickets.
CREATE INDEX tickets_callback_queue ON tickets(created_at)
WHERE callback_reason IS NOT NULL AND assignee IS NULL;
