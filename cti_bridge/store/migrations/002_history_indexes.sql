-- Indexes found missing by bench/store_scale.py (issue #3).

-- A caller's last N tickets are ordered by creation: without these, every ticket of a
-- frequent caller was sorted for each screen-pop.
CREATE INDEX tickets_customer_created ON tickets(customer_id, created_at);
CREATE INDEX tickets_caller_created ON tickets(caller_number, created_at);

-- Recordings still waiting to be linked (read at start-up), without scanning them all.
CREATE INDEX recordings_pending ON recordings(id) WHERE status = 'recording';

-- `tickets list --status` newest first.
CREATE INDEX tickets_status_id ON tickets(status, id);
