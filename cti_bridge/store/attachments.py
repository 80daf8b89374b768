"""Ticket attachments: the file copied into the attachments folder with its SHA-256, then
recorded with a history event; and a check that what is on disk still matches."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cti_bridge.store.database import Database, Session
from cti_bridge.store.ticket_rows import HistoryRow, append_history

_UNSAFE = re.compile(r"[^\w.\-]+")
_CHUNK = 1 << 20


class AttachmentError(ValueError):
    """The file cannot be attached (missing, not a file, unknown ticket)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    id: int
    ticket_id: int
    name: str
    path: str
    sha256: str
    size_bytes: int
    content_type: str | None
    added_by: str
    added_at: float


async def add_attachment(
    db: Database, ticket_id: int, number: str, source: Path, *, folder: Path, actor: str, at: float
) -> Attachment:
    """Copy `source` into `folder`/<ticket number>/ and record it on the ticket.

    The copy is written under a temporary name and renamed once hashed, so a crash never
    leaves a half-written file under a recorded path; if the row cannot be written, the copy
    is removed again.
    """
    if not await asyncio.to_thread(source.is_file):
        raise AttachmentError(f"{source}: no such file")
    target, sha256, size = await asyncio.to_thread(_copy_hashed, source, folder / number)
    content_type = mimetypes.guess_type(source.name)[0]

    async def write(tx: Session) -> int:
        row = await tx.fetchone(
            "INSERT INTO attachments (ticket_id, name, path, sha256, size_bytes, content_type,"
            " added_by, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (ticket_id, source.name, str(target), sha256, size, content_type, actor, at),
        )
        assert row is not None
        data = {"attachment_id": row["id"], "name": source.name, "sha256": sha256, "size_bytes": size}
        await append_history(tx, ticket_id, at, [HistoryRow("attachment_added", actor, data)])
        return row["id"]

    try:
        attachment_id = await db.transaction(write)
    except BaseException:
        await asyncio.to_thread(target.unlink, missing_ok=True)
        raise
    return Attachment(
        id=attachment_id,
        ticket_id=ticket_id,
        name=source.name,
        path=str(target),
        sha256=sha256,
        size_bytes=size,
        content_type=content_type,
        added_by=actor,
        added_at=at,
    )


async def attachments_of(db: Database, ticket_id: int) -> list[Attachment]:
    rows = await db.fetchall("SELECT * FROM attachments WHERE ticket_id = ? ORDER BY id", (ticket_id,))
    return [Attachment(**dict(r)) for r in rows]


async def damaged(db: Database, ticket_id: int) -> list[tuple[Attachment, str]]:
    """The ticket's attachments whose file is gone or no longer has its recorded SHA-256."""
    problems = []
    for attachment in await attachments_of(db, ticket_id):
        problem = await asyncio.to_thread(_check, attachment)
        if problem:
            problems.append((attachment, problem))
    return problems


def _copy_hashed(source: Path, folder: Path) -> tuple[Path, str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as reading, tempfile.NamedTemporaryFile(dir=folder, delete=False) as writing:
        while chunk := reading.read(_CHUNK):
            digest.update(chunk)
            writing.write(chunk)
            size += len(chunk)
    sha256 = digest.hexdigest()
    # The hash in the name keeps two files of the same name apart and says what it held.
    target = folder / f"{sha256[:12]}-{_UNSAFE.sub('_', source.name)[:100]}"
    shutil.move(writing.name, target)
    return target, sha256, size


def _check(attachment: Attachment) -> str | None:
    path = Path(attachment.path)
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()
    with path.open("rb") as reading:
        while chunk := reading.read(_CHUNK):
            digest.update(chunk)
    return None if digest.hexdigest() == attachment.sha256 else "checksum differs"
