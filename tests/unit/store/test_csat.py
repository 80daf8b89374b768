"""Post-call survey scores on the real SQLite store: the right ticket, 1..5 only, one per call."""

import pytest

from cti_bridge.store import Store
from cti_bridge.tickets.model import TicketNumbering
from tests.support.helpers import inbound_call, new_ticket

T0 = 1_800_000_000.0


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(f"sqlite:///{tmp_path}/csat.db", TicketNumbering())
    yield opened
    await opened.close()


async def csat_events(store, number):
    detail = await store.ticket_detail(number)
    return [(e["actor"], e["data"]) for e in detail["history"] if e["kind"] == "csat"]


async def test_the_score_lands_on_the_ticket_of_that_call(store):
    first, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("100.1"), "+14155550001", T0)
    other, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("200.1"), "+14155550002", T0)
    # A second call on the first ticket, and a call of the same linkedid on another PBX.
    await store.attach_call(first.id, inbound_call("100.9"), "+14155550001", T0 + 60)
    await store.create_ticket_for_call(new_ticket(), inbound_call("200.1", pbx="branch"), None, T0)

    ticket = await store.record_csat("main", "200.1", 4, T0 + 100)

    assert ticket is not None and ticket.number == other.number and ticket.updated_at == T0 + 100
    detail = await store.ticket_detail(other.number)
    assert detail["csat"] == [{"pbx": "main", "linkedid": "200.1", "score": 4, "at": T0 + 100}]
    assert await csat_events(store, other.number) == [("customer", {"call": "main/200.1", "score": 4})]
    assert (await store.ticket_detail(first.number))["csat"] == []
    row = await store._db.fetchone("SELECT csat_score, csat_at FROM tickets WHERE id = ?", (other.id,))
    assert (row["csat_score"], row["csat_at"]) == (4, T0 + 100)


async def test_each_call_of_a_ticket_gets_its_own_score(store):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("100.1"), None, T0)
    await store.attach_call(ticket.id, inbound_call("100.9"), None, T0 + 60)
    await store.record_csat("main", "100.1", 2, T0 + 30)
    await store.record_csat("main", "100.9", 5, T0 + 90)
    detail = await store.ticket_detail(ticket.number)
    assert [(c["linkedid"], c["score"]) for c in detail["csat"]] == [("100.1", 2), ("100.9", 5)]
    row = await store._db.fetchone("SELECT csat_score FROM tickets WHERE id = ?", (ticket.id,))
    assert row["csat_score"] == 5  # the latest


async def test_a_repeated_survey_updates_the_score_and_never_duplicates(store):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("100.1"), None, T0)
    await store.record_csat("main", "100.1", 2, T0 + 10)
    await store.record_csat("main", "100.1", 2, T0 + 11)  # the same again: nothing new
    again = await store.record_csat("main", "100.1", 5, T0 + 20)

    assert again is not None and again.number == ticket.number
    detail = await store.ticket_detail(ticket.number)
    assert [(c["score"], c["at"]) for c in detail["csat"]] == [(5, T0 + 20)]
    assert await csat_events(store, ticket.number) == [
        ("customer", {"call": "main/100.1", "score": 2}),
        ("customer", {"call": "main/100.1", "score": 5, "previous": 2}),
    ]


async def test_an_unknown_call_has_no_ticket(store):
    assert await store.record_csat("main", "999.1", 3, T0) is None


@pytest.mark.parametrize("score", [0, 6, -1, True, 3.0, "3", None])
async def test_a_score_outside_1_to_5_is_refused_and_nothing_is_written(store, score):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("100.1"), None, T0)
    with pytest.raises(ValueError, match=r"1\.\.5"):
        await store.record_csat("main", "100.1", score, T0 + 10)
    detail = await store.ticket_detail(ticket.number)
    assert detail["csat"] == [] and await csat_events(store, ticket.number) == []
