-- Category paths in ticket search (issue #11, item 8.3): `tickets search 登录异常`, the README's
-- own example, found nothing, because a ticket's category was in no column of ticket_search.
--
-- The index gets a `category` column holding the path as stored (the Chinese labels,
-- 技术故障/网络问题/登录异常). English labels and keys live in the config's tree, not here:
-- cti_bridge/store/search.py turns a word of the tree's English (or a key) into the stored
-- paths it names at query time, so relabelling the tree needs no re-indexing.
--
-- The values of the ticket's fields (order number, product model, the IVR path the caller took,
-- what the dialplan reported) get a `fields` column too: an agent searches for an order
-- number, a supervisor for everyone who chose "refunds" in the IVR.
--
-- An FTS5 table cannot gain a column: the table, its source view and its triggers are made
-- again as in 003, with the category added, and every ticket is indexed again (the backfill).

DROP TRIGGER ticket_search_ticket_inserted;
DROP TRIGGER ticket_search_ticket_updated;
DROP TRIGGER ticket_search_ticket_deleted;
DROP TRIGGER ticket_search_transcript_added;
DROP TRIGGER ticket_search_comment_added;
DROP TRIGGER ticket_search_customer_renamed;
DROP VIEW ticket_search_source;
DROP TABLE ticket_search;

CREATE VIRTUAL TABLE ticket_search USING fts5(
    number, subject, description, caller, customer, category, fields, comments, transcripts,
    tokenize = 'trigram'
);

CREATE VIEW ticket_search_source AS
SELECT
    t.id AS id,
    t.number AS number,
    t.subject AS subject,
    t.description AS description,
    trim(coalesce(t.caller_number, '') || ' ' || coalesce(t.caller_name, '')) AS caller,
    trim(coalesce(c.name, '') || ' ' || coalesce(c.company, '')) AS customer,
    coalesce(t.category, '') AS category,
    coalesce((SELECT group_concat(f.value, char(10))
        FROM json_each(CASE WHEN json_valid(t.fields) THEN t.fields ELSE '{}' END) f
        WHERE f.type IN ('text', 'integer', 'real')), '') AS fields,
    coalesce((SELECT group_concat(body, char(10)) FROM (
        SELECT json_extract(e.data, '$.text') AS body FROM ticket_events e
        WHERE e.ticket_id = t.id AND e.kind = 'commented' AND json_valid(e.data) ORDER BY e.id
    )), '') AS comments,
    coalesce((SELECT group_concat(body, char(10)) FROM (
        SELECT r.text AS body FROM transcripts r WHERE r.ticket_id = t.id ORDER BY r.id
    )), '') AS transcripts
FROM tickets t LEFT JOIN customers c ON c.id = t.customer_id;

CREATE TRIGGER ticket_search_ticket_inserted AFTER INSERT ON tickets
WHEN NEW.number IS NOT NULL
BEGIN
    INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, category, fields, comments, transcripts)
    SELECT * FROM ticket_search_source WHERE id = NEW.id;
END;

-- The category and the fields join the watched columns: a ticket recategorised by an agent, a rule or the
-- CLI is found under its new path at once (in the writer's transaction, as the rest).
CREATE TRIGGER ticket_search_ticket_updated
AFTER UPDATE OF number, subject, description, caller_number, caller_name, customer_id, category, fields
ON tickets
WHEN OLD.number IS NOT NEW.number OR OLD.subject IS NOT NEW.subject
    OR OLD.description IS NOT NEW.description OR OLD.caller_number IS NOT NEW.caller_number
    OR OLD.caller_name IS NOT NEW.caller_name OR OLD.customer_id IS NOT NEW.customer_id
    OR OLD.category IS NOT NEW.category OR OLD.fields IS NOT NEW.fields
BEGIN
    DELETE FROM ticket_search WHERE rowid = NEW.id;
    INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, category, fields, comments, transcripts)
    SELECT * FROM ticket_search_source WHERE id = NEW.id;
END;

CREATE TRIGGER ticket_search_ticket_deleted AFTER DELETE ON tickets
BEGIN
    DELETE FROM ticket_search WHERE rowid = OLD.id;
END;

CREATE TRIGGER ticket_search_transcript_added AFTER INSERT ON transcripts
BEGIN
    DELETE FROM ticket_search WHERE rowid = NEW.ticket_id;
    INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, category, fields, comments, transcripts)
    SELECT * FROM ticket_search_source WHERE id = NEW.ticket_id;
END;

CREATE TRIGGER ticket_search_comment_added AFTER INSERT ON ticket_events
WHEN NEW.kind = 'commented'
BEGIN
    DELETE FROM ticket_search WHERE rowid = NEW.ticket_id;
    INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, category, fields, comments, transcripts)
    SELECT * FROM ticket_search_source WHERE id = NEW.ticket_id;
END;

CREATE TRIGGER ticket_search_customer_renamed AFTER UPDATE OF name, company ON customers
WHEN OLD.name IS NOT NEW.name OR OLD.company IS NOT NEW.company
BEGIN
    DELETE FROM ticket_search WHERE rowid IN (SELECT id FROM tickets WHERE customer_id = NEW.id);
    INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, category, fields, comments, transcripts)
    SELECT * FROM ticket_search_source WHERE id IN (SELECT id FROM tickets WHERE customer_id = NEW.id);
END;

-- Backfill: every ticket written before this migration, its category included.
INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, category, fields, comments, transcripts)
SELECT * FROM ticket_search_source;
