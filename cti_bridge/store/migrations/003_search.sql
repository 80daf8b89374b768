-- Full-text search over tickets (issue #4 item 9): one FTS5 document per ticket, rowid = tickets.id.
--
-- trigram: every run of 3 characters is a token, so Chinese (written without spaces) is found
-- by any substring, English by any part of a word, case-insensitively. A query term shorter
-- than 3 characters matches nothing through MATCH: cti_bridge/store/search.py looks such terms
-- up with LIKE on these same columns instead.
--
-- Kept in sync by triggers rather than by store calls: comments, transcripts and ticket edits
-- are written by several modules, and a trigger cannot be forgotten by the next one; it runs in
-- the writer's transaction without another round trip. The triggers fire only when indexed text
-- changes (`UPDATE OF` lists and WHEN), never on the updated_at bumps of the call path.
-- The table keeps its own copy of the text (not external content): a ticket's document is
-- assembled from several tables, and external content would need the old text to delete it.

CREATE VIRTUAL TABLE ticket_search USING fts5(
    number, subject, description, caller, customer, comments, transcripts,
    tokenize = 'trigram'
);

-- A ticket's document; the triggers and the backfill all read it from here.
CREATE VIEW ticket_search_source AS
SELECT
    t.id AS id,
    t.number AS number,
    t.subject AS subject,
    t.description AS description,
    trim(coalesce(t.caller_number, '') || ' ' || coalesce(t.caller_name, '')) AS caller,
    trim(coalesce(c.name, '') || ' ' || coalesce(c.company, '')) AS customer,
    coalesce((SELECT group_concat(body, char(10)) FROM (
        SELECT json_extract(e.data, '$.text') AS body FROM ticket_events e
        WHERE e.ticket_id = t.id AND e.kind = 'commented' AND json_valid(e.data) ORDER BY e.id
    )), '') AS comments,
    coalesce((SELECT group_concat(body, char(10)) FROM (
        SELECT r.text AS body FROM transcripts r WHERE r.ticket_id = t.id ORDER BY r.id
    )), '') AS transcripts
FROM tickets t LEFT JOIN customers c ON c.id = t.customer_id;

-- The store inserts a ticket and then sets its number (derived from the row id) in the same
-- transaction: the number's update indexes it, so indexing at the insert would be done twice.
CREATE TRIGGER ticket_search_ticket_inserted AFTER INSERT ON tickets
WHEN NEW.number IS NOT NULL
BEGIN
    INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, comments, transcripts)
    SELECT * FROM ticket_search_source WHERE id = NEW.id;
END;

CREATE TRIGGER ticket_search_ticket_updated
AFTER UPDATE OF number, subject, description, caller_number, caller_name, customer_id ON tickets
WHEN OLD.number IS NOT NEW.number OR OLD.subject IS NOT NEW.subject
    OR OLD.description IS NOT NEW.description OR OLD.caller_number IS NOT NEW.caller_number
    OR OLD.caller_name IS NOT NEW.caller_name OR OLD.customer_id IS NOT NEW.customer_id
BEGIN
    DELETE FROM ticket_search WHERE rowid = NEW.id;
    INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, comments, transcripts)
    SELECT * FROM ticket_search_source WHERE id = NEW.id;
END;

CREATE TRIGGER ticket_search_ticket_deleted AFTER DELETE ON tickets
BEGIN
    DELETE FROM ticket_search WHERE rowid = OLD.id;
END;

CREATE TRIGGER ticket_search_transcript_added AFTER INSERT ON transcripts
BEGIN
    DELETE FROM ticket_search WHERE rowid = NEW.ticket_id;
    INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, comments, transcripts)
    SELECT * FROM ticket_search_source WHERE id = NEW.ticket_id;
END;

-- Comments are ticket events of kind 'commented' whose data carries the text.
CREATE TRIGGER ticket_search_comment_added AFTER INSERT ON ticket_events
WHEN NEW.kind = 'commented'
BEGIN
    DELETE FROM ticket_search WHERE rowid = NEW.ticket_id;
    INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, comments, transcripts)
    SELECT * FROM ticket_search_source WHERE id = NEW.ticket_id;
END;

-- A customer import rewrites every name: only a real change re-indexes the customer's tickets.
CREATE TRIGGER ticket_search_customer_renamed AFTER UPDATE OF name, company ON customers
WHEN OLD.name IS NOT NEW.name OR OLD.company IS NOT NEW.company
BEGIN
    DELETE FROM ticket_search WHERE rowid IN (SELECT id FROM tickets WHERE customer_id = NEW.id);
    INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, comments, transcripts)
    SELECT * FROM ticket_search_source WHERE id IN (SELECT id FROM tickets WHERE customer_id = NEW.id);
END;

-- Backfill the tickets written before this migration.
INSERT INTO ticket_search (rowid, number, subject, description, caller, customer, comments, transcripts)
SELECT * FROM ticket_search_source;
