"""One async database handle: opened from a URL, migrated, and safe to share between tasks."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite
import structlog

P = ParamSpec("P")
T = TypeVar("T")

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")

log = structlog.get_logger(__name__)

# SQLite's primary result codes (the low byte of an extended code) that say the store could not
# take the work *now*, for a reason outside the statement: another process holds the lock, the
# disk is full or failing, the file or memory ran out. The same work succeeds once the operator
# or the other process is done. Everything else (a constraint, a syntax or schema error, misuse,
# a corrupt file) fails the same way every time: retrying it would only hide a bug.
_TRANSIENT_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        # A filesystem remounted read-only after errors, or permissions changed under us.
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
_BUSY_TIMEOUT_MS = 5000
_RETRY_FIRST_SECONDS = 0.05
_RETRY_MAX_SECONDS = 2.0
_REMIND_EVERY_SECONDS = 30.0
# The health check's write probe must not hold a request for the whole busy timeout.
_PROBE_BUSY_MS = 200

# Set by the daemon's own writers (call pipeline, recordings, transcription results): their work
# waits for the store to come back instead of failing. Web requests leave it unset and get
# StoreUnavailable at once, which the API answers with 503.
_waits_for_store: contextvars.ContextVar[bool] = contextvars.ContextVar("waits_for_store", default=False)


class StoreError(Exception):
    """The store cannot be opened or migrated."""


class StoreUnavailable(Exception):
    """The store refused work for a transient reason (full disk, lock held elsewhere, I/O error).

    The same work may succeed later; nothing of it was written.

    Attributes:
        reason: SQLite's message and error name, e.g. "database or disk is full (SQLITE_FULL)".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_transient(exc: BaseException) -> bool:
    """True when `exc` is SQLite refusing work for a reason that passes (see _TRANSIENT_CODES).

    Errors the sqlite3 module raises itself (a closed connection, a wrong parameter count) carry
    no SQLite code and are never transient; nor is any sqlite3.IntegrityError, whatever its code.
    """
    if not isinstance(exc, sqlite3.Error) or isinstance(
        exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
    ):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _TRANSIENT_CODES


def describe(exc: BaseException) -> str:
    """SQLite's message with its error name: what an operator searches for."""
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)


@contextlib.contextmanager
def waiting_for_store() -> Iterator[None]:
    """Inside this block (and in tasks it starts), work the store refuses for a transient
    reason is retried with backoff until the store takes it, instead of raising
    StoreUnavailable. For writers that must lose nothing and may wait: the call path."""
    token = _waits_for_store.set(True)
    try:
        yield
    finally:
        _waits_for_store.reset(token)


@dataclass(frozen=True, slots=True)
class WriteHealth:
    """Whether the store takes writes, as the last attempts found.

    Attributes:
        ok: False from a transient failure until a unit of work that changed rows succeeds.
        failing_since: When the current run of failures began (None while ok).
        last_error: The last transient failure's description (kept after recovery).
        last_failure_at: When it happened.
        last_write_at: When a unit of work that changed rows last succeeded.
        failures: Transient failures so far (all time).
    """

    ok: bool
    failing_since: float | None
    last_error: str | None
    last_failure_at: float | None
    last_write_at: float | None
    failures: int


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

    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self._connection = connection
        self._path = path
        self._health = WriteHealth(True, None, None, None, None, 0)
        self._reminded_at = -_REMIND_EVERY_SECONDS  # when a failure was last logged
        self._outage_logged = False
        # While the store fails, one waiting writer (the prober) retries with backoff and the
        # others wait for its attempt: the store's one thread then holds a single attempt at a
        # time instead of every lane's (each may sit out the busy timeout), and web requests
        # are not queued behind hundreds of doomed retries.
        self._prober: asyncio.Task[Any] | None = None
        self._recovered = asyncio.Event()  # set whenever there is no prober to wait for
        self._recovered.set()
        self._retry_delay = _RETRY_FIRST_SECONDS
        # Read and written on the store's thread too: a unit failed for a transient reason and
        # no unit has changed rows since (see _attempt).
        self._refusing = False

    @property
    def write_health(self) -> WriteHealth:
        """Whether writes succeed now (see WriteHealth); read by the health endpoint."""
        return self._health

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
            f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}",
            # 64 MiB of page cache instead of SQLite's 2 MiB: a ticket's indexes span far more
            # than 2 MiB of a store with 10^6 tickets, and every miss is a read() call.
            "PRAGMA cache_size=-65536",
        ):
            await connection.execute_fetchall(pragma)
        database = cls(connection, path)
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
        rows = await self._run(_statement, sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self._run(_statement, sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._run(_statement, sql, params)

    async def check(self, at: float) -> bool:
        """Whether the store answers and, as far as anyone knows, takes writes.

        Asked on a short connection of its own in a worker thread, so the answer never waits
        behind the daemon's queued work on the store's thread (which, under another process's
        lock, may sit out the busy timeout once per queued unit). While writes fail, it also
        writes one row (migration 016's store_probe): health then turns green when the store
        does, whether or not anything else is writing. A SELECT alone succeeds on a full disk
        and under a lock held elsewhere, so it proves nothing about writes.

        Raises:
            sqlite3.Error: The store cannot be read at all (not transient: a damaged file, say).
        """
        probe = not self._health.ok
        try:
            await asyncio.to_thread(_check, self._path, at, probe)
        except sqlite3.Error as exc:
            if not is_transient(exc):
                raise
            self._failed(describe(exc))
            return False
        if probe:
            self._succeeded()
        return self._health.ok

    async def _run(self, unit: Callable[..., T], *args: Any) -> T:
        """Run `unit(connection, *args)` on the store's thread. A transient failure raises
        StoreUnavailable, or inside waiting_for_store() is retried until the store takes it."""
        if not _waits_for_store.get():
            return await self._attempt(unit, args, None)
        me = asyncio.current_task()
        try:
            while True:
                await self._wait_for_prober(me)
                try:
                    result = await self._attempt(unit, args, me)
                except (StoreUnavailable, _Deferred):
                    await self._back_off(me)
                    continue
                if self._prober is me:  # its own work got through: the others may try theirs
                    self._hand_on()
                return result
        except BaseException:
            if self._prober is me:  # cancelled while probing: someone else probes next
                self._hand_on()
            raise

    async def _attempt(self, unit: Callable[..., T], args: tuple, waiter: asyncio.Task[Any] | None) -> T:
        """One try of `unit`. `waiter`: the waiting writer's task, None for a caller that is told
        at once."""
        connection = self._connection

        def on_thread() -> tuple[T, bool]:
            # Work queued on the thread before the first failure was known would each sit out
            # the busy timeout under another's lock (a hundred lanes: minutes in which web
            # requests wait behind them). Once a unit has failed, waiting writers other than
            # the prober step aside without touching SQLite and wait for the prober instead.
            if waiter is not None and self._refusing and self._prober is not waiter:
                raise _Deferred
            try:
                result, changed = _counting(connection._conn, unit, args)
            except sqlite3.Error as exc:
                if is_transient(exc):
                    self._refusing = True
                raise
            if changed:
                self._refusing = False
            return result, changed

        try:
            result, changed = await connection._execute(on_thread)
        except sqlite3.Error as exc:
            if not is_transient(exc):
                raise
            reason = describe(exc)
            self._failed(reason)
            raise StoreUnavailable(reason) from exc
        if changed:
            self._succeeded()
        return result

    async def _wait_for_prober(self, me: asyncio.Task[Any] | None) -> None:
        while self._prober is not None and self._prober is not me:
            # Bounded, in case the prober is stuck or gone: then this writer may take over.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._recovered.wait(), _RETRY_MAX_SECONDS * 2)
            if self._prober is not None and self._prober.done():
                self._hand_on()

    async def _back_off(self, me: asyncio.Task[Any] | None) -> None:
        if self._prober is None:
            self._prober = me
            self._recovered.clear()
            self._retry_delay = _RETRY_FIRST_SECONDS
        if self._prober is not me:
            return  # another writer probes; the loop waits for it
        await asyncio.sleep(self._retry_delay)
        self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX_SECONDS)

    def _hand_on(self) -> None:
        self._prober = None
        self._recovered.set()

    def _failed(self, reason: str) -> None:
        now = time.time()
        health = self._health
        # A nearly full disk takes some writes and refuses others: health follows every flip,
        # the log says it once per _REMIND_EVERY_SECONDS.
        if now - self._reminded_at >= _REMIND_EVERY_SECONDS:
            if health.ok:
                log.error(
                    "store.writes_failing",
                    error=reason,
                    note="the daemon's writes are retried and calls kept in memory until the store"
                    " takes them again; web requests get 503",
                )
            else:
                log.error(
                    "store.writes_still_failing",
                    error=reason,
                    seconds=round(now - (health.failing_since or now), 1),
                    failures=health.failures + 1,
                )
            self._reminded_at = now
            self._outage_logged = True
        self._health = WriteHealth(
            ok=False,
            failing_since=health.failing_since if not health.ok else now,
            last_error=reason,
            last_failure_at=now,
            last_write_at=health.last_write_at,
            failures=health.failures + 1,
        )

    def _succeeded(self) -> None:
        now = time.time()
        health = self._health
        if not health.ok and self._outage_logged:
            log.warning(
                "store.writes_recovered",
                seconds=round(now - (health.failing_since or now), 1),
                last_error=health.last_error,
            )
            self._outage_logged = False
        self._health = WriteHealth(
            True, None, health.last_error, health.last_failure_at, now, health.failures
        )
        self._refusing = False
        self._hand_on()  # every waiting writer tries its work again now

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


class _Deferred(Exception):
    """A waiting writer's unit stepped aside: the store is failing and another writer probes."""


def _counting(connection: sqlite3.Connection, unit: Callable[..., T], args: tuple) -> tuple[T, bool]:
    """Run a unit; also say whether it changed rows (a successful write, for WriteHealth: a read,
    or a transaction that wrote nothing, proves nothing about a full disk)."""
    before = connection.total_changes
    result = unit(connection, *args)
    return result, connection.total_changes != before


def _statement(connection: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
    return connection.execute(sql, params).fetchall()


def _check(path: Path, at: float, probe: bool) -> None:
    connection = sqlite3.connect(path, timeout=_PROBE_BUSY_MS / 1000, isolation_level=None)
    try:
        connection.execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()
        if probe:
            connection.execute(
                "INSERT INTO store_probe (id, written_at) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
                (at,),
            )
    finally:
        connection.close()


def _in_transaction(
    connection: sqlite3.Connection, work: Callable[..., Awaitable[T]], args: tuple, kwargs: dict
) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = _finish(work(Session(connection), *args, **kwargs))
        # Inside the try: a COMMIT refused (SQLITE_FULL, SQLITE_BUSY) leaves the transaction
        # open, and the next BEGIN on this connection would fail for ever.
        connection.execute("COMMIT")
    except BaseException:
        _roll_back(connection)
        raise
    return result


def _roll_back(connection: sqlite3.Connection) -> None:
    # SQLite may have rolled back already (it does on SQLITE_FULL and some I/O errors); a ROLLBACK
    # then fails and would hide the error that matters.
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


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
