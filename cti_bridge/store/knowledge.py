"""Knowledge-base articles: storage, full-text search, suggestions for a ticket, articles from tickets."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import aiosqlite

from cti_bridge.store.database import Database, Session
from cti_bridge.store.ticket_rows import HistoryRow, append_history

# bm25 column weights (title, body, tags): a term in the title or the tags says more about what
# an article is for than the same term somewhere in its body.
_BM25 = "bm25(kb_articles_fts, 10.0, 1.0, 5.0)"
_COLUMNS = (
    "a.id, a.title, a.body, a.tags, a.category, a.source_ticket_id, a.created_by, a.created_at, a.updated_at"
)
# The trigram tokenizer indexes 3-character sequences: a MATCH term must have 3 characters or
# more. Shorter terms (common in Chinese: 登录, 密码, 网速) are matched with LIKE instead.
_TRIGRAM = 3
_MAX_SUGGESTION_TERMS = 32
_SNIPPET_CONTEXT = 16  # characters shown before the first hit
_SNIPPET_WIDTH = 72
_RESOLVED = ("resolved", "closed")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_LATIN_WORD = re.compile(r"[A-Za-z0-9]+(?:[-_.][A-Za-z0-9]+)*")
# Words that say nothing about the problem; ticket subjects made for calls start "Phone call from".
_STOPWORD_TEXT = (
    "the and you your for with that this have has had from are was were not but can cannot can't "
    "will would could should there their they them what when where which who how our out get got "
    "just about into then than also been being its it's please thanks thank hello okay yes "
    "phone call calls calling called customer"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


class KnowledgeBaseError(ValueError):
    """An article cannot be written as asked: blank text, unknown article or ticket, open ticket."""


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""`update_article` leaves a field it is given KEEP for as it is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Article:
    id: int
    title: str
    body: str
    tags: tuple[str, ...]
    category: str | None
    source_ticket_id: int | None
    created_by: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ArticleMatch:
    """An article found for a query or a ticket, and why.

    `rank` is FTS5's bm25 (lower is better; 0.0 when only short terms matched by LIKE);
    `matched_terms` are the query terms found in the article, `why` says it in words.
    """

    article: Article
    rank: float
    snippet: str
    matched_terms: tuple[str, ...]
    why: str


# -- writing ---------------------------------------------------------------------------


async def add_article(
    db: Database,
    *,
    title: str,
    body: str,
    actor: str,
    at: float,
    tags: Iterable[str] = (),
    category: str | None = None,
) -> Article:
    """Store an article and index it.

    Raises:
        KnowledgeBaseError: the title or body is blank.
    """
    return await db.transaction(_insert, title, body, _tags(tags), category, None, actor, at)


async def update_article(
    db: Database,
    article_id: int,
    *,
    at: float,
    title: str | _Keep = KEEP,
    body: str | _Keep = KEEP,
    tags: Iterable[str] | _Keep = KEEP,
    category: str | _Keep | None = KEEP,
) -> Article:
    """Change the fields given (others are KEEP) and re-index the article.

    Raises:
        KnowledgeBaseError: no such article, or a blank title or body.
    """

    async def write(tx: Session) -> Article:
        row = await tx.fetchone(f"SELECT {_COLUMNS} FROM kb_articles a WHERE a.id = ?", (article_id,))
        if row is None:
            raise KnowledgeBaseError(f"no article #{article_id}")
        old = _article(row)
        new_title = _required("title", old.title if title is KEEP else title)
        new_body = _required("body", old.body if body is KEEP else body)
        new_tags = old.tags if tags is KEEP else _tags(tags)
        new_category = old.category if category is KEEP else category
        row = await tx.fetchone(
            "UPDATE kb_articles SET title = ?, body = ?, tags = ?, category = ?, updated_at = ?"
            f" WHERE id = ? RETURNING {_COLUMNS.replace('a.', '')}",
            (new_title, new_body, ",".join(new_tags), new_category, at, article_id),
        )
        assert row is not None
        await tx.execute("DELETE FROM kb_articles_fts WHERE rowid = ?", (article_id,))
        await _index(tx, article_id, new_title, new_body, new_tags)
        return _article(row)

    return await db.transaction(write)


async def article_from_ticket(db: Database, ticket_id: int, actor: str, at: float) -> Article:
    """Turn a resolved or closed ticket into an article, and say so in the ticket's history.

    The title is the ticket's subject; the body its description followed by the resolution,
    taken from the latest history event that set a `resolution` field.

    Raises:
        KnowledgeBaseError: no such ticket, the ticket is not resolved or closed, it already
            has an article, or it has neither description nor resolution to write one from.
    """

    async def write(tx: Session) -> Article:
        ticket = await tx.fetchone(
            "SELECT id, number, status, subject, description, category FROM tickets WHERE id = ?",
            (ticket_id,),
        )
        if ticket is None:
            raise KnowledgeBaseError(f"no ticket #{ticket_id}")
        name = ticket["number"] or f"#{ticket_id}"
        if ticket["status"] not in _RESOLVED:
            raise KnowledgeBaseError(
                f"ticket {name} is {ticket['status']}: only a resolved or closed ticket becomes an article"
            )
        existing = await tx.fetchone("SELECT id FROM kb_articles WHERE source_ticket_id = ?", (ticket_id,))
        if existing is not None:
            raise KnowledgeBaseError(f"ticket {name} already has article #{existing['id']}")
        resolution = await _resolution(tx, ticket_id)
        description = (ticket["description"] or "").strip()
        solved = f"解决方案 / Resolution:\n{resolution}" if resolution else ""
        body = "\n\n".join(p for p in (description, solved) if p)
        if not body:
            raise KnowledgeBaseError(f"ticket {name} has neither description nor resolution to write up")
        article = await _insert(tx, ticket["subject"], body, (), ticket["category"], ticket_id, actor, at)
        data = {"article_id": article.id, "title": article.title}
        await append_history(tx, ticket_id, at, [HistoryRow("kb_article_created", actor, data)])
        return article

    return await db.transaction(write)


# -- reading ---------------------------------------------------------------------------


async def get_article(db: Database, article_id: int) -> Article | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM kb_articles a WHERE a.id = ?", (article_id,))
    return None if row is None else _article(row)


async def list_articles(db: Database, *, category: str | None = None, limit: int = 50) -> list[Article]:
    """Newest first; with `category`, that path and the paths below it."""
    where, params = _category_below(category)
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM kb_articles a WHERE {where} ORDER BY a.updated_at DESC, a.id DESC LIMIT ?",
        (*params, limit),
    )
    return [_article(r) for r in rows]


async def ticket_id(db: Database, number: str) -> int | None:
    row = await db.fetchone("SELECT id FROM tickets WHERE number = ?", (number,))
    return None if row is None else int(row["id"])


async def search(
    db: Database, query: str, *, limit: int = 10, category: str | None = None
) -> list[ArticleMatch]:
    """Articles containing every whitespace-separated term of `query`, best first.

    Args:
        query: e.g. "无法登录 VPN"; terms match substrings, case-insensitively.
        category: only articles at or below this category path.
    """
    terms = list(dict.fromkeys(query.split()))
    if not terms:
        return []
    where, params = _category_below(category)
    return await _find(db, terms, require_all=True, where=where, params=params, limit=limit)


async def suggest_for_ticket(db: Database, ticket_id: int, limit: int = 5) -> list[ArticleMatch]:
    """Articles that may help with a ticket, best first.

    The query is the ticket's salient terms (see `salient_terms`) joined by OR, so bm25
    ranks articles by how many of them, and how rare ones, they contain. A categorised ticket
    only gets articles of its 大类 (first level) or uncategorised ones: a 账单 article that
    happens to share words with a 网络 ticket is noise.

    Raises:
        KnowledgeBaseError: no such ticket.
    """
    ticket = await db.fetchone(
        "SELECT subject, description, category FROM tickets WHERE id = ?", (ticket_id,)
    )
    if ticket is None:
        raise KnowledgeBaseError(f"no ticket #{ticket_id}")
    transcripts = await db.fetchall(
        "SELECT text FROM transcripts WHERE ticket_id = ? ORDER BY id", (ticket_id,)
    )
    category = ticket["category"]
    terms = salient_terms(
        [ticket["subject"], ticket["description"] or "", *(t["text"] for t in transcripts)], category
    )
    if not terms:
        return []
    where, params = "1", ()
    if category:
        top = category.split("/", 1)[0]
        where, params = (
            "(a.category IS NULL OR a.category = ? OR a.category LIKE ? ESCAPE '\\')",
            (
                top,
                _like_prefix(top),
            ),
        )
    found = await _find(db, terms, require_all=False, where=where, params=params, limit=limit)
    if not category:
        return found
    return [_with_category_reason(m, category) for m in found]


def salient_terms(texts: Sequence[str], category: str | None = None) -> list[str]:
    """The terms a ticket is searched by: its category's labels, then its most frequent words.

    Latin words are kept whole (3+ letters, not stop words, not bare numbers); Chinese has no
    spaces, so each run of Chinese characters gives all its 3-character substrings, which is what
    the trigram index holds (无法登录 -> 无法登, 法登录). Words and trigrams are ordered by how
    often they occur, longer first on ties, and at most 32 are kept.
    """
    labels = [label for label in (category or "").split("/") if len(label) >= _TRIGRAM]
    counts: Counter[str] = Counter()
    for text in texts:
        for run in _CJK_RUN.findall(text):
            counts.update(run[i : i + _TRIGRAM] for i in range(len(run) - _TRIGRAM + 1))
        for word in _LATIN_WORD.findall(text):
            folded = word.casefold()
            if len(folded) >= _TRIGRAM and folded not in _STOPWORDS and not folded.isdigit():
                counts[folded] += 1
    first_seen = {term: i for i, term in enumerate(counts)}
    ranked = sorted(counts, key=lambda t: (-counts[t], -len(t), first_seen[t]))
    return list(dict.fromkeys([*labels, *ranked]))[:_MAX_SUGGESTION_TERMS]


# -- helpers -----------------------------------------------------------------------------


async def _find(
    db: Database,
    terms: Sequence[str],
    *,
    require_all: bool,
    where: str,
    params: Sequence[Any],
    limit: int,
) -> list[ArticleMatch]:
    long = [t for t in terms if len(t) >= _TRIGRAM]
    short = [t for t in terms if len(t) < _TRIGRAM]
    if not require_all:
        # Any-of queries (suggestions) have enough long terms; a short one would match nearly everything.
        short = []
    like_sql, like_params = _likes(short)
    if long:
        match = (" AND " if require_all else " OR ").join(_phrase(t) for t in long)
        rows = await db.fetchall(
            f"SELECT {_COLUMNS}, {_BM25} AS rank"
            " FROM kb_articles_fts f JOIN kb_articles a ON a.id = f.rowid"
            f" WHERE kb_articles_fts MATCH ? AND {like_sql} AND {where} ORDER BY rank, a.id LIMIT ?",
            (match, *like_params, *params, limit),
        )
    elif short:
        # LIKE scans every article (the trigram index cannot serve fewer than 3 characters);
        # articles with the terms in their title come first.
        title_hits = " + ".join(["(a.title LIKE ? ESCAPE '\\')"] * len(short))
        rows = await db.fetchall(
            f"SELECT {_COLUMNS}, 0.0 AS rank FROM kb_articles a"
            f" WHERE {like_sql} AND {where} ORDER BY {title_hits} DESC, a.updated_at DESC, a.id DESC LIMIT ?",
            (*like_params, *params, *(_like_contains(t) for t in short), limit),
        )
    else:
        return []
    return [_match(row, terms) for row in rows]


def _match(row: aiosqlite.Row, terms: Sequence[str]) -> ArticleMatch:
    article = _article(row)
    fields = {"title": article.title, "body": article.body, "tags": " ".join(article.tags)}
    hits = {name: _hits(text, terms) for name, text in fields.items()}
    folded = {name: text.casefold() for name, text in fields.items()}
    matched = tuple(t for t in terms if any(t.casefold() in text for text in folded.values()))
    # Say what was found as the article spells it, overlapping trigrams joined back together
    # (无法登 + 法登录 -> 无法登录), field by field.
    reasons = []
    for name, spans in hits.items():
        phrases = list(dict.fromkeys(fields[name][b:e] for b, e in spans))
        if phrases:
            more = f" and {len(phrases) - 6} more" if len(phrases) > 6 else ""
            reasons.append(f"{name}: {', '.join(phrases[:6])}{more}")
    text, spans = next(
        ((fields[n], hits[n]) for n in ("body", "title", "tags") if hits[n]), (article.body, [])
    )
    return ArticleMatch(
        article=article,
        rank=float(row["rank"]),
        snippet=_snippet(text, spans),
        matched_terms=matched,
        why="matched " + "; ".join(reasons) if reasons else "matched",
    )


def _with_category_reason(found: ArticleMatch, category: str) -> ArticleMatch:
    theirs = found.article.category
    if theirs is None:
        reason = "uncategorised article"
    elif category == theirs or category.startswith(theirs + "/"):
        reason = f"category {theirs} covers the ticket's"
    else:
        reason = f"same 大类 as the ticket ({category.split('/', 1)[0]})"
    return ArticleMatch(
        article=found.article,
        rank=found.rank,
        snippet=found.snippet,
        matched_terms=found.matched_terms,
        why=f"{found.why}; {reason}",
    )


def _hits(text: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    """Where the terms occur in `text`, case-insensitively, overlapping occurrences merged."""
    spans = sorted(
        (m.start(), m.end()) for term in terms for m in re.finditer(re.escape(term), text, re.IGNORECASE)
    )
    merged: list[tuple[int, int]] = []
    for begin, end in spans:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _snippet(text: str, hits: Sequence[tuple[int, int]]) -> str:
    """The text around its first hit, every hit in [brackets].

    Not FTS5's snippet(): with trigram phrases that overlap, as a suggestion's 无法登 and 法登录
    do, it repeats the text between them once per phrase.
    """
    start = max(0, hits[0][0] - _SNIPPET_CONTEXT) if hits else 0
    stop = min(len(text), start + _SNIPPET_WIDTH)
    out, at = [], start
    for begin, end in hits:
        if begin >= stop:
            break
        out += [text[at:begin], "[", text[begin : min(end, stop)], "]"]
        at = min(end, stop)
    out.append(text[at:stop])
    shown = "".join(out).replace("\n", " ")
    return ("…" if start else "") + shown + ("…" if stop < len(text) else "")


async def _insert(
    tx: Session,
    title: str,
    body: str,
    tags: tuple[str, ...],
    category: str | None,
    source_ticket_id: int | None,
    actor: str,
    at: float,
) -> Article:
    title, body = _required("title", title), _required("body", body)
    row = await tx.fetchone(
        "INSERT INTO kb_articles (title, body, tags, category, source_ticket_id, created_by, created_at,"
        f" updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS.replace('a.', '')}",
        (title, body, ",".join(tags), category or None, source_ticket_id, actor, at, at),
    )
    assert row is not None
    await _index(tx, row["id"], title, body, tags)
    return _article(row)


async def _index(tx: Session, article_id: int, title: str, body: str, tags: tuple[str, ...]) -> None:
    # Tags are indexed space-separated so that a trigram never spans two tags.
    await tx.execute(
        "INSERT INTO kb_articles_fts (rowid, title, body, tags) VALUES (?, ?, ?, ?)",
        (article_id, title, body, " ".join(tags)),
    )


async def _resolution(tx: Session, ticket_id: int) -> str | None:
    """The latest `resolution` an event recorded: under `fields` (resolve) or `changes` (field updates)."""
    rows = await tx.fetchall(
        "SELECT data FROM ticket_events WHERE ticket_id = ? AND data LIKE '%resolution%' ORDER BY id DESC",
        (ticket_id,),
    )
    for row in rows:
        data = json.loads(row["data"])
        for key in ("fields", "changes"):
            section = data.get(key)
            if isinstance(section, dict) and isinstance(section.get("resolution"), str):
                return section["resolution"].strip() or None
    return None


def _required(name: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise KnowledgeBaseError(f"an article's {name} cannot be blank")
    return value


def _tags(tags: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _likes(terms: Sequence[str]) -> tuple[str, list[str]]:
    if not terms:
        return "1", []
    one = "(a.title LIKE ? ESCAPE '\\' OR a.body LIKE ? ESCAPE '\\' OR a.tags LIKE ? ESCAPE '\\')"
    return " AND ".join([one] * len(terms)), [_like_contains(t) for t in terms for _ in range(3)]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_contains(term: str) -> str:
    return f"%{_escape_like(term)}%"


def _like_prefix(path: str) -> str:
    return f"{_escape_like(path)}/%"


def _category_below(category: str | None) -> tuple[str, tuple[Any, ...]]:
    if not category:
        return "1", ()
    return "(a.category = ? OR a.category LIKE ? ESCAPE '\\')", (category, _like_prefix(category))


def _article(row: aiosqlite.Row) -> Article:
    return Article(
        id=row["id"],
        title=row["title"],
        body=row["body"],
        tags=tuple(t for t in row["tags"].split(",") if t),
        category=row["category"],
        source_ticket_id=row["source_ticket_id"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
