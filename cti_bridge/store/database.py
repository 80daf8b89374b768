"""One async database handle: opened from a URL, migrated, and safe to share between tasks."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class StoreError(Exception):
    """The store cannot be opened or migrated."""


def sqlite_path(url: str) -> Path:
    """`sqlite:///abs/path.db` -> /abs/path.db; `sqlite://rel.db` -> rel.db."""
    if not url.startswith("sqlite://"):
        raise StoreError(f"unsupported store URL {url!r}: expected sqlite://")
    return Path(url.removeprefix("sqlite://"))


class Session:
    """Statements on the store's connection, each one round trip to aiosqlite's thread.

    A round trip costs about 30 µs even when the loop is idle (a cursor's execute, fetch
    and close would be three), and a ticket's transaction is several statements: rows
    come back from `execute_fetchall`, and inserts name what they need with RETURNING.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        rows = await self._connection.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        return list(await self._connection.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._connection.execute_fetchall(sql, params)


class Database:
    """An aiosqlite connection behind a lock.

    aiosqlite runs statements on its own thread, but every `await` lets another task
    issue a statement on the same connection; the lock keeps a transaction's
    statements together.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._session = Session(connection)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str) -> Database:
        path = sqlite_path(url)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path, isolation_level=None)
        connection.row_factory = aiosqlite.Row
        # WAL: readers (the CLI) never block the daemon's writes.
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=5000",
            # 64 MiB of page cache instead of SQLite's 2 MiB: a ticket's indexes span far more
            # than 2 MiB of a store with 10^6 tickets, and every miss is a read() call.
            "PRAGMA cache_size=-65536",
        ):
            await connection.execute_fetchall(pragma)
        database = cls(connection)
        await database._migrate()
        return database

    async def close(self) -> None:
        await self._connection.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """Run statements atomically: BEGIN IMMEDIATE takes the write lock up front, so
        two daemons sharing a file never both decide to create the same ticket."""
        async with self._lock:
            await self._session.execute("BEGIN IMMEDIATE")
            try:
                yield self._session
            except BaseException:
                await self._session.execute("ROLLBACK")
                raise
            await self._session.execute("COMMIT")

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        async with self._lock:
            return await self._session.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self._lock:
            return await self._session.fetchall(sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        async with self._lock:
            await self._session.execute(sql, params)

    async def _migrate(self) -> None:
        await self._session.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT)"
        )
        applied = {row[0] for row in await self._session.fetchall("SELECT version FROM schema_migrations")}
        for version, name, sql in await asyncio.to_thread(_migrations):
            if version in applied:
                continue
            async with self.transaction() as tx:
                for statement in _statements(sql):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (version, name)
                )


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("cti_bridge.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(sql: str) -> list[str]:
    """Split a migration into statements: a `;` ends one only where SQLite says the statement is
    complete, so a trigger's BEGIN ... END body (and a `;` in a string) stays in one piece."""
    without_comments = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    statements: list[str] = []
    pending = ""
    for piece in without_comments.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip().removesuffix(";").strip())
            pending = ""
    if pending.removesuffix(";").strip():
        raise StoreError(f"incomplete SQL statement in migration: {pending.strip()[:80]!r}")
    return [s for s in statements if s]
