"""Attachments on the real store and disk: copied with their SHA-256, recorded with a history
event, and found out when the file on disk changes or goes."""

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from cti_bridge.store import Store
from cti_bridge.store.attachments import AttachmentError
from cti_bridge.tickets.model import TicketNumbering
from tests.support.helpers import inbound_call, new_ticket

T0 = 1_800_000_000.0


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(f"sqlite:///{tmp_path}/a.db", TicketNumbering())
    yield opened
    await opened.close()


async def test_a_file_is_copied_hashed_and_recorded(store, tmp_path):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("1.1"), None, T0)
    source = tmp_path / "故障截图 1.png"
    source.write_bytes(b"\x89PNG fake screenshot" * 1000)
    folder = tmp_path / "attachments"

    added = await store.attach(ticket.number, source, folder=folder, actor="agent1", at=T0 + 5)

    assert added.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert added.size_bytes == source.stat().st_size and added.content_type == "image/png"
    copied = folder / ticket.number / added.path.rsplit("/", 1)[1]
    assert copied.read_bytes() == source.read_bytes()
    assert list((folder / ticket.number).iterdir()) == [copied]  # no temporary file left
    detail = await store.ticket_detail(ticket.number)
    assert [a["name"] for a in detail["attachments"]] == ["故障截图 1.png"]
    [event] = [e for e in detail["history"] if e["kind"] == "attachment_added"]
    assert event["actor"] == "agent1" and event["data"]["sha256"] == added.sha256
    assert await store.damaged_attachments(ticket.number) == []

    copied.write_bytes(b"tampered")
    [(attachment, problem)] = await store.damaged_attachments(ticket.number)
    assert attachment.id == added.id and problem == "checksum differs"
    copied.unlink()
    assert [p for _, p in await store.damaged_attachments(ticket.number)] == ["missing"]


async def test_nothing_is_kept_for_a_missing_file_or_an_unknown_ticket(store, tmp_path):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("2.1"), None, T0)
    folder = tmp_path / "attachments"
    with pytest.raises(AttachmentError, match="no such file"):
        await store.attach(ticket.number, tmp_path / "gone.pdf", folder=folder, actor="a", at=T0)
    source = tmp_path / "note.txt"
    source.write_text("hello")
    with pytest.raises(AttachmentError, match="no ticket T-999999"):
        await store.attach("T-999999", source, folder=folder, actor="a", at=T0)
    detail = await store.ticket_detail(ticket.number)
    assert detail["attachments"] == []
    assert not folder.exists() or not any(folder.rglob("*.txt"))
    assert json.dumps(detail["attachments"]) == "[]"


async def test_attaching_the_same_file_twice_fails_and_keeps_the_first(store, tmp_path):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("3.1"), None, T0)
    source = tmp_path / "invoice.pdf"
    source.write_bytes(b"%PDF-1.4 invoice")
    folder = tmp_path / "attachments"
    first = await store.attach(ticket.number, source, folder=folder, actor="a", at=T0)

    with pytest.raises(sqlite3.IntegrityError):  # same content, same name: the same path
        await store.attach(ticket.number, source, folder=folder, actor="a", at=T0 + 1)

    assert await store.damaged_attachments(ticket.number) == []  # the first file is whole
    assert list((folder / ticket.number).iterdir()) == [Path(first.path)]


async def test_a_name_too_long_for_the_disk_is_kept_whole_in_the_store(store, tmp_path):
    ticket, _ = await store.create_ticket_for_call(new_ticket(), inbound_call("4.1"), None, T0)
    source = tmp_path / "upload"
    source.write_bytes(b"%PDF-1.4")
    name = "客户提供的发票" * 20 + ".pdf"  # 843 bytes: no file system takes that

    added = await store.attach(ticket.number, source, folder=tmp_path / "files", actor="a", at=T0, name=name)

    kept = tmp_path / "files" / ticket.number / Path(added.path).name
    assert len(kept.name.encode()) <= 255 and kept.name.endswith(".pdf")
    assert added.name == name and added.content_type == "application/pdf"
    assert kept.read_bytes() == b"%PDF-1.4"
