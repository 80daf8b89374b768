-- Knowledge base (issue #4 item 11): articles and their full-text index.

-- `tags` is the tags joined by commas; `category` a canonical category path or NULL (any).
CREATE TABLE kb_articles (
    id               INTEGER PRIMARY KEY,
    title            TEXT NOT NULL,
    body             TEXT NOT NULL,
    tags             TEXT NOT NULL DEFAULT '',
    category         TEXT,
    source_ticket_id INTEGER REFERENCES tickets(id),
    created_by       TEXT NOT NULL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX kb_articles_category ON kb_articles(category);
-- A resolved ticket becomes at most one article.
CREATE UNIQUE INDEX kb_articles_source ON kb_articles(source_ticket_id) WHERE source_ticket_id IS NOT NULL;

-- Trigram tokens find Chinese substrings without a word segmenter. The index keeps its own copy
-- of the text (rowid = kb_articles.id), written by the store in the same transaction as the
-- article: no triggers, and no 'delete' command that needs the old values.
CREATE VIRTUAL TABLE kb_articles_fts USING fts5(title, body, tags, tokenize = 'trigram');
