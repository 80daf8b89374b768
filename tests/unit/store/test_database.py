"""Splitting migrations into statements; transactions as units on the store's thread."""

import asyncio
import threading

import pytest

from cti_bridge.store.database import Database, Session, StoreError, _statements


def test_plain_statements_are_split_on_semicolons_and_comments_dropped():
    sql = "-- a comment; with a semicolon\nCREATE TABLE a (x);\n\nCREATE INDEX a_x ON a(x); -- trailing\n"
    assert _statements(sql) == ["CREATE TABLE a (x)", "CREATE INDEX a_x ON a(x)"]


def test_a_trigger_body_and_a_quoted_semicolon_stay_in_one_statement():
    sql = (
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n"
        "    DELETE FROM b WHERE id = NEW.id;\n"
        "    INSERT INTO b VALUES (NEW.id, 'x;y');\n"
        "END;\n"
        "INSERT INTO a VALUES ('1;2');"
    )
    trigger, insert = _statements(sql)
    assert trigger.startswith("CREATE TRIGGER t") and trigger.endswith("END")
    assert "'x;y'" in trigger and insert == "INSERT INTO a VALUES ('1;2')"


def test_an_unfinished_statement_is_refused():
    with pytest.raises(StoreError, match="incomplete"):
        _statements("CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM b;")


# -- transactions as units on the store's thread -------------------------------------------


@pytest.fixture
async def database(tmp_path):
    database = await Database.open(f"sqlite:///{tmp_path}/t.db")
    await database.execute("CREATE TABLE counter (n INTEGER NOT NULL)")
    await database.execute("INSERT INTO counter VALUES (0)")
    yield database
    await database.close()


async def _increment(tx: Session) -> int:
    row = await tx.fetchone("SELECT n FROM counter")
    assert row is not None
    await tx.execute("UPDATE counter SET n = ?", (row["n"] + 1,))
    return row["n"] + 1


async def test_concurrent_transactions_never_interleave(database):
    # Read-then-write from 200 tasks at once: any interleaving would lose increments.
    results = await asyncio.gather(*(database.transaction(_increment) for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert (await database.fetchone("SELECT n FROM counter"))["n"] == 200


async def test_a_failing_transaction_changes_nothing_and_raises_its_error(database):
    async def fail_after_writing(tx: Session) -> None:
        await _increment(tx)
        raise LookupError("refused")

    with pytest.raises(LookupError, match="refused"):
        await database.transaction(fail_after_writing)
    assert (await database.fetchone("SELECT n FROM counter"))["n"] == 0
    assert await database.transaction(_increment) == 1


async def test_a_transaction_that_awaits_anything_else_is_refused_and_rolled_back(database):
    async def sleeps_inside(tx: Session) -> None:
        await _increment(tx)
        await asyncio.sleep(0)

    with pytest.raises(StoreError, match="awaited something other than its session"):
        await database.transaction(sleeps_inside)
    assert (await database.fetchone("SELECT n FROM counter"))["n"] == 0


async def test_a_transaction_runs_off_the_event_loop_thread(database):
    async def thread_name(tx: Session) -> str:
        return threading.current_thread().name

    assert await database.transaction(thread_name) != threading.current_thread().name


async def test_a_read_sees_one_snapshot(database):
    async def two_reads(tx: Session) -> tuple[int, int]:
        first = await tx.fetchone("SELECT n FROM counter")
        second = await tx.fetchone("SELECT n FROM counter")
        return first["n"], second["n"]

    reads = asyncio.gather(*(database.read(two_reads) for _ in range(50)))
    writes = asyncio.gather(*(database.transaction(_increment) for _ in range(50)))
    for first, second in (await asyncio.gather(reads, writes))[0]:
        assert first == second
