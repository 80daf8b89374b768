"""Splitting migrations into statements."""

import pytest

from cti_bridge.store.database import StoreError, _statements


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
