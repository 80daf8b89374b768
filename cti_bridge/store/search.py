"""Ticket search: exact ticket number and phone first, then full text (FTS5, trigram) with snippets."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from cti_bridge.phone import to_e164
from cti_bridge.store.database import Database
from cti_bridge.tickets.categories import CategoryNode, CategoryTree

# The columns of the ticket_search table (migration 012), in order, and their bm25 weights:
# a word in the number or subject says more about the ticket than one in an hour of transcript.
_COLUMNS = (
    "number",
    "subject",
    "description",
    "caller",
    "customer",
    "category",
    "fields",
    "comments",
    "transcripts",
)
_WEIGHTS = (10.0, 5.0, 2.0, 3.0, 3.0, 4.0, 4.0, 1.0, 1.0)
# The trigram tokenizer's tokens are 3 characters: shorter terms never match through MATCH.
_TRIGRAM = 3
_PHONE_LIKE = re.compile(r"^\+?[\d\s\-().]+$")
_SNIPPET_TOKENS = 24  # with trigram, one token per character


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchHit:
    """One ticket found.

    `rank` is FTS5's bm25 (lower is better) for a full-text hit, and None for an exact ticket
    number or phone match, which comes before every full-text hit. `matched` names where the
    query was found: "number" or "phone" for exact matches, else columns of the index
    (number, subject, description, caller, customer, category, fields, comments, transcripts).
    """

    number: str
    status: str
    subject: str
    snippet: str
    rank: float | None
    matched: tuple[str, ...]


async def search_tickets(
    db: Database,
    query: str,
    *,
    region: str | None = None,
    limit: int = 20,
    highlight: tuple[str, str] = ("[", "]"),
    categories: CategoryTree | None = None,
) -> list[SearchHit]:
    """Find tickets by number, caller phone, customer, category, or any text of the ticket.

    Terms separated by spaces must all be found (anywhere in the ticket); each term is matched
    as a substring, so Chinese needs no word breaking. A category is stored with its Chinese
    labels; with `categories`, a term found in the tree's English labels or keys (`refund`,
    `Login`) also finds the tickets filed under the paths it names.

    Args:
        db: the store's database (migrated to 012 or later).
        query: what the user typed.
        region: ISO country for phone numbers typed without +, as in the config's phone section.
        limit: most hits returned.
        highlight: what goes before and after each match in a snippet.
        categories: the configured tree, for its English labels and keys.

    Returns:
        Exact matches (newest first), then full-text hits, best first; no ticket twice.
    """
    query = query.strip()
    terms = query.split()
    if not terms or limit <= 0:
        return []
    hits = await _exact(db, query, region, limit, highlight)
    seen = {hit.number for hit in hits}
    paths = {term: _category_paths(term, categories) for term in terms} if categories else {}
    for hit in await _full_text(db, terms, limit + len(hits), highlight, paths):
        if len(hits) >= limit:
            break
        if hit.number not in seen:
            seen.add(hit.number)
            hits.append(hit)
    return hits


async def _exact(
    db: Database, query: str, region: str | None, limit: int, highlight: tuple[str, str]
) -> list[SearchHit]:
    """Tickets whose number is the query, or whose caller (or customer) has the query's phone."""
    parts = ["SELECT 'number' AS how, t.* FROM tickets t WHERE t.number IN (?, ?)"]
    params: list[Any] = [query, query.upper()]
    phone = _phone(query, region)
    if phone is not None:
        # A known customer's tickets from their other numbers too (customer_phones is E.164).
        parts.append(
            "SELECT 'phone', t.* FROM tickets t WHERE t.caller_number = ?"
            " UNION SELECT 'phone', t.* FROM customer_phones p JOIN tickets t"
            " ON t.customer_id = p.customer_id WHERE p.phone = ?"
        )
        params += [phone, phone]
    rows = await db.fetchall(
        "SELECT * FROM (" + " UNION ".join(parts) + ") ORDER BY how = 'phone', updated_at DESC LIMIT ?",
        (*params, limit),
    )
    before, after = highlight
    hits: list[SearchHit] = []
    seen: set[str] = set()
    for row in rows:
        if row["number"] in seen:  # both its number and its caller's phone
            continue
        seen.add(row["number"])
        if row["how"] == "number":
            snippet = f"{before}{row['number']}{after} {row['subject']}"
        else:
            snippet = f"{before}{row['caller_number'] or phone}{after} {row['subject']}"
        hits.append(
            SearchHit(
                number=row["number"],
                status=row["status"],
                subject=row["subject"],
                snippet=snippet,
                rank=None,
                matched=(row["how"],),
            )
        )
    return hits


def _phone(query: str, region: str | None) -> str | None:
    if not _PHONE_LIKE.match(query) or sum(ch.isdigit() for ch in query) < 5:
        return None
    if region is None and not query.startswith(("+", "00")):
        return None
    return to_e164(query, region or "ZZ")


def _category_paths(term: str, tree: CategoryTree) -> tuple[str, ...]:
    """The stored (Chinese) paths a term of the tree's English or keys names, shortest first.

    `refund` names 账务问题/退款 (English "Refund") and, below it, paths that path already
    covers: a phrase match on 账务问题/退款 finds them too, so only the highest is kept.
    """
    if len(term) < _TRIGRAM:
        return ()  # "a" or "id" would name half the tree
    folded = term.casefold()
    found: list[str] = []
    for above, node in _nodes(tree.roots, ()):
        if folded in node.en.casefold() or folded in node.key.casefold():
            path = "/".join(n.zh for n in (*above, node))
            # A path shorter than a trigram cannot be looked up through MATCH (a 2-character 大类
            # on its own): such a category is found by its Chinese label only.
            if len(path) >= _TRIGRAM and not any(path.startswith(f"{p}/") for p in found):
                found.append(path)
    return tuple(found)


def _nodes(
    level: Sequence[CategoryNode], above: tuple[CategoryNode, ...]
) -> Iterator[tuple[tuple[CategoryNode, ...], CategoryNode]]:
    for node in level:
        yield above, node
        yield from _nodes(node.children, (*above, node))


def _phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


async def _full_text(
    db: Database,
    terms: Sequence[str],
    limit: int,
    highlight: tuple[str, str],
    paths: Mapping[str, Sequence[str]],
) -> list[SearchHit]:
    long_terms = [t for t in terms if len(t) >= _TRIGRAM]
    short_terms = [t for t in terms if len(t) < _TRIGRAM]
    params: list[Any] = []
    where: list[str] = []
    if long_terms:
        where.append("ticket_search MATCH ?")
        # A term found anywhere, or one of the category paths its English names.
        params.append(
            " AND ".join(
                "(" + " OR ".join([_phrase(t), *(f"category : {_phrase(p)}" for p in paths.get(t, ()))]) + ")"
                for t in long_terms
            )
        )
    # 1-2 character terms (a Chinese word is often two characters): trigram cannot look them up,
    # so they are LIKE filters on the indexed text, on the rows MATCH found, or on all rows when
    # every term is short (a scan of the index's text; fine at support-desk sizes).
    for term in short_terms:
        where.append("(" + " OR ".join(f"ticket_search.{c} LIKE ? ESCAPE '\\'" for c in _COLUMNS) + ")")
        params += [_like(term)] * len(_COLUMNS)
    before, after = highlight
    text_columns = ", ".join(f"ticket_search.{c} AS s_{c}" for c in _COLUMNS)
    if long_terms:
        weights = ", ".join(str(w) for w in _WEIGHTS)
        scored = (
            f"snippet(ticket_search, -1, ?, ?, '…', {_SNIPPET_TOKENS}) AS snippet,"
            f" bm25(ticket_search, {weights}) AS score"
        )
        params = [before, after, *params]
    else:
        # No MATCH, so no snippet() or bm25(): score by the weights of the columns that hold
        # each term (negated, so lower is better as with bm25); the snippet is made here.
        scored = (
            "NULL AS snippet, -("
            + " + ".join(
                f"{w} * (ticket_search.{c} LIKE ? ESCAPE '\\')"
                for _ in short_terms
                for c, w in zip(_COLUMNS, _WEIGHTS, strict=True)
            )
            + ") AS score"
        )
        params = [_like(t) for t in short_terms for _ in _COLUMNS] + params
    rows = await db.fetchall(
        f"SELECT t.number, t.status, t.subject, {scored}, {text_columns}"
        " FROM ticket_search JOIN tickets t ON t.id = ticket_search.rowid"
        f" WHERE {' AND '.join(where)} ORDER BY score, t.updated_at DESC LIMIT ?",
        (*params, limit),
    )
    return [_hit(row, terms, highlight, paths) for row in rows]


def _hit(
    row: aiosqlite.Row, terms: Sequence[str], highlight: tuple[str, str], paths: Mapping[str, Sequence[str]]
) -> SearchHit:
    folded = [t.casefold() for t in terms]
    matched = tuple(c for c in _COLUMNS if any(t in (row[f"s_{c}"] or "").casefold() for t in folded))
    category = row["s_category"] or ""
    if "category" not in matched and any(p in category for found in paths.values() for p in found):
        matched = tuple(c for c in _COLUMNS if c in matched or c == "category")
    snippet = row["snippet"]
    if snippet is None:
        column = next((c for c in _COLUMNS if c in matched), _COLUMNS[1])
        snippet = _snippet(row[f"s_{column}"] or "", terms, highlight)
    return SearchHit(
        number=row["number"],
        status=row["status"],
        subject=row["subject"],
        snippet=snippet,
        rank=float(row["score"]),
        matched=matched,
    )


def _snippet(text: str, terms: Sequence[str], highlight: tuple[str, str]) -> str:
    """Like FTS5's snippet(), for the LIKE path: a window around the first match, marked."""
    marks = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    first = marks.search(text)
    begin = max(0, (first.start() if first else 0) - _SNIPPET_TOKENS // 3)
    end = min(len(text), begin + _SNIPPET_TOKENS)
    before, after = highlight
    window = marks.sub(lambda m: f"{before}{m.group(0)}{after}", text[begin:end])
    return ("…" if begin > 0 else "") + window + ("…" if end < len(text) else "")


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
