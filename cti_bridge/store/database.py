"""One async database handle: opened from a URL, migrated, and safe to share between tasks."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite

P = ParamSpec("P")
T = TypeVar("T")

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class StoreError(Exception):
    """The store cannot be opened or migrated."""


def sqlite_path(url: str) -> Path:
    """`sqlite:///abs/path.db` -> /abs/path.db; `sqlite://rel.db` -> rel.db."""
    if not url.startswith("sqlite://"):
        raise StoreError(f"unsupported store URL {url!r}: expected sqlite://")
    return Path(url.removeprefix("sqlite://"))


class Session:
    """Statements inside one unit of work, run one after another on the store's thread.

    The methods are coroutines only so that store code reads the same inside and outside a
    unit: none of them suspends, because each runs its statement on the spot.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        return self._connection.execute(sql, params).fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._connection.execute(sql, params).fetchall()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._connection.execute(sql, params)


class Database:
    """One SQLite connection, used from aiosqlite's thread.

    A transaction runs as one unit on that thread: its statements go one after another with
    no hop back to the event loop in between. So a call's ticket work costs one hand-off
    per transaction instead of one per statement, and transactions never interleave without
    an asyncio lock (a lock's waiters convoyed at 100 calls/s: bench/RESULTS.md).
    aiosqlite has no public call for running a function on its thread (omnilib/aiosqlite#19
    asked for one); `_run` below is the single place that uses its private `_execute`.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

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

    async def transaction(
        self, work: Callable[Concatenate[Session, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `work(session, *args, **kwargs)` atomically, as one unit on the store's thread.

        BEGIN IMMEDIATE takes the write lock up front, so two daemons sharing a file never
        both decide to create the same ticket. An exception rolls everything back and is
        raised here as is. `work` may await only its session's methods.
        """
        return await self._run(_in_transaction, work, args, kwargs)

    async def read(
        self, work: Callable[Concatenate[Session, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run several reads as one unit: they all see the same snapshot of the store."""
        return await self._run(_in_read_transaction, work, args, kwargs)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._connection.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(await self._connection.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._connection.execute_fetchall(sql, params)

    async def _run(self, unit: Callable[..., T], *args: Any) -> T:
        connection = self._connection
        return await connection._execute(lambda: unit(connection._conn, *args))

    async def _migrate(self) -> None:
        await self.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT)"
        )
        applied = {row[0] for row in await self.fetchall("SELECT version FROM schema_migrations")}
        for version, name, sql in await asyncio.to_thread(_migrations):
            if version not in applied:
                await self.transaction(_apply_migration, version, name, sql)


async def _apply_migration(tx: Session, version: int, name: str, sql: str) -> None:
    for statement in _statements(sql):
        await tx.execute(statement)
    await tx.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (version, name))


def _in_transaction(
    connection: sqlite3.Connection, work: Callable[..., Awaitable[T]], args: tuple, kwargs: dict
) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = _finish(work(Session(connection), *args, **kwargs))
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result


def _in_read_transaction(
    connection: sqlite3.Connection, work: Callable[..., Awaitable[T]], args: tuple, kwargs: dict
) -> T:
    connection.execute("BEGIN")
    try:
        return _finish(work(Session(connection), *args, **kwargs))
    finally:
        connection.execute("COMMIT")


def _finish(work: Awaitable[T]) -> T:
    """Run a unit's coroutine to its end on this thread: it never suspends, since a Session's
    methods do not, so a single send() completes it."""
    coroutine = work.__await__()
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise StoreError("a store transaction awaited something other than its session")


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
