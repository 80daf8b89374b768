"""Which SQLite errors pass (full, busy, I/O) and which never do; writes waiting for the store.

The errors are SQLite's own: a full database is made with `PRAGMA max_page_count` (the same
SQLITE_FULL a full disk gives, see tests/faults/test_store_full.py for the real disk), a lock
by a second connection holding BEGIN IMMEDIATE.
"""

import asyncio
import sqlite3

import pytest

from cti_bridge.store.database import (
    Database,
    Session,
    StoreUnavailable,
    is_transient,
    waiting_for_store,
)


def sqlite_error(kind: type[sqlite3.Error], code: int) -> sqlite3.Error:
    """An error as the sqlite3 module raises it for `code` (its sqlite_errorcode attribute)."""
    error = kind("from SQLite")
    error.sqlite_errorcode = code
    error.sqlite_errorname = "SQLITE_X"
    return error


@pytest.mark.parametrize(
    "code",
    [
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_IOERR_WRITE,  # extended codes count by their primary code
        sqlite3.SQLITE_IOERR_FSYNC,
        sqlite3.SQLITE_IOERR_SHMSIZE,
        sqlite3.SQLITE_BUSY_SNAPSHOT,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PROTOCOL,
    ],
)
def test_refusals_for_a_passing_reason_are_transient(code):
    assert is_transient(sqlite_error(sqlite3.OperationalError, code))


@pytest.mark.parametrize(
    "error",
    [
        sqlite_error(sqlite3.IntegrityError, sqlite3.SQLITE_CONSTRAINT_UNIQUE),
        # Whatever code it carries, a constraint is the data's fault, not the store's state.
        sqlite_error(sqlite3.IntegrityError, sqlite3.SQLITE_BUSY),
        sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_ERROR),  # syntax, no such table
        sqlite_error(sqlite3.DatabaseError, sqlite3.SQLITE_CORRUPT),
        sqlite_error(sqlite3.DatabaseError, sqlite3.SQLITE_NOTADB),
        sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_TOOBIG),
        sqlite_error(sqlite3.ProgrammingError, sqlite3.SQLITE_MISUSE),
        sqlite3.ProgrammingError("Cannot operate on a closed database."),  # no SQLite code
        sqlite3.OperationalError("no code at all"),
        OSError(28, "No space left on device"),  # not SQLite's: whoever raised it handles it
        RuntimeError("a bug"),
    ],
)
def test_bugs_bad_data_and_damage_are_not_transient(error):
    assert not is_transient(error)


@pytest.fixture
async def database(tmp_path):
    database = await Database.open(f"sqlite:///{tmp_path}/t.db")
    await database.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE)")
    yield database
    await database.close()


async def _note(tx: Session, body: str) -> None:
    await tx.execute("INSERT INTO notes (body) VALUES (?)", (body,))


async def _fill(database: Database) -> None:
    """No page left: the next insert fails with SQLITE_FULL, as on a full disk."""
    pages = (await database.fetchone("PRAGMA page_count"))[0]
    await database.fetchone(f"PRAGMA max_page_count = {pages}")


async def _make_room(database: Database) -> None:
    await database.fetchone("PRAGMA max_page_count = 1073741823")


async def test_the_real_errors_are_classified_as_they_happen(database, tmp_path):
    await database.transaction(_note, "x")
    with pytest.raises(sqlite3.IntegrityError) as duplicate:
        await database.transaction(_note, "x")
    assert not is_transient(duplicate.value)
    with pytest.raises(sqlite3.OperationalError) as syntax:
        await database.execute("INSERT INTO nowhere VALUES (1)")
    assert not is_transient(syntax.value)

    await _fill(database)
    with pytest.raises(StoreUnavailable, match=r"database or disk is full \(SQLITE_FULL\)") as full:
        await database.transaction(_note, "y" * 10_000)
    assert is_transient(full.value.__cause__)

    await _make_room(database)
    other = sqlite3.connect(tmp_path / "t.db", isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        await database.execute("PRAGMA busy_timeout = 0")
        with pytest.raises(StoreUnavailable, match="SQLITE_BUSY"):
            await database.transaction(_note, "z")
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_a_refused_commit_leaves_no_transaction_open(database):
    # SQLITE_FULL at the write: without a rollback the connection stayed inside the failed
    # transaction and every later BEGIN failed with "cannot start a transaction within a transaction".
    await _fill(database)
    with pytest.raises(StoreUnavailable):
        await database.transaction(_note, "y" * 10_000)
    await _make_room(database)
    await database.transaction(_note, "fits now")
    assert [r["body"] for r in await database.fetchall("SELECT body FROM notes")] == ["fits now"]


async def test_health_is_red_from_a_refused_write_until_a_write_succeeds(database):
    assert database.write_health.ok
    await _fill(database)
    with pytest.raises(StoreUnavailable):
        await database.transaction(_note, "y" * 10_000)
    health = database.write_health
    assert not health.ok and health.failures == 1 and "SQLITE_FULL" in health.last_error
    # A read, and a transaction that writes nothing, succeed on a full disk: no proof.
    await database.fetchall("SELECT * FROM notes")
    await database.transaction(lambda tx: tx.fetchone("SELECT 1"))
    assert not database.write_health.ok

    # The health check's probe is a real write (on a full disk it needs a new page of the WAL,
    # see tests/faults/test_store_full.py); one that goes through turns health green.
    await _make_room(database)
    assert await database.check(2.0)
    health = database.write_health
    assert health.ok and health.failing_since is None and health.last_write_at is not None


async def test_a_write_waiting_for_the_store_is_retried_until_it_takes_it(database):
    await _fill(database)

    async def patient(body: str) -> None:
        with waiting_for_store():
            await database.transaction(_note, body)

    writers = [asyncio.create_task(patient(f"{i}" * 3000), name=f"patient-{i}") for i in range(20)]
    await asyncio.sleep(0.5)
    assert not any(w.done() for w in writers) and not database.write_health.ok
    # Meanwhile one not waiting is told at once, and nothing of it is written.
    with pytest.raises(StoreUnavailable):
        await database.transaction(_note, "impatient" * 1000)
    await _make_room(database)
    await asyncio.wait_for(asyncio.gather(*writers), 10)
    assert (await database.fetchone("SELECT COUNT(*) FROM notes"))[0] == 20
    assert database.write_health.ok


async def test_bad_work_waiting_for_the_store_still_fails_at_once(database):
    await database.transaction(_note, "x")
    with waiting_for_store(), pytest.raises(sqlite3.IntegrityError):
        await asyncio.wait_for(database.transaction(_note, "x"), 2)
    assert database.write_health.ok


async def test_a_cancelled_waiting_writer_hands_the_retrying_on(database):
    await _fill(database)

    async def patient(body: str) -> None:
        with waiting_for_store():
            await database.transaction(_note, body)

    first = asyncio.create_task(patient("a" * 5000), name="patient-first")
    await asyncio.sleep(0.2)
    second = asyncio.create_task(patient("b" * 5000), name="patient-second")
    await asyncio.sleep(0.2)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await _make_room(database)
    await asyncio.wait_for(second, 10)
    assert [r["body"][0] for r in await database.fetchall("SELECT body FROM notes")] == ["b"]
