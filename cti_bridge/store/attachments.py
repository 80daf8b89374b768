"""Ticket attachments: the file copied into the attachments folder with its SHA-256, then
recorded with a history event; and a check that what is on disk still matches."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import re
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
    db: Database,
    ticket_id: int,
    number: str,
    source: Path,
    *,
    folder: Path,
    actor: str,
    at: float,
    name: str | None = None,
) -> Attachment:
    """Copy `source` into `folder`/<ticket number>/ and record it on the ticket, as `name`
    (default: the source's name; an upload arrives in a temporary file).

    The copy is written under a temporary name and renamed once hashed, so a crash never
    leaves a half-written file under a recorded path; if the row cannot be written, the copy
    is removed again.
    """
    if not await asyncio.to_thread(source.is_file):
        raise AttachmentError(f"{source}: no such file")
    name = name or source.name
    target, sha256, size, created = await asyncio.to_thread(_copy_hashed, source, folder / number, name)
    content_type = mimetypes.guess_type(name)[0]

    async def write(tx: Session) -> int:
        row = await tx.fetchone(
            "INSERT INTO attachments (ticket_id, name, path, sha256, size_bytes, content_type,"
            " added_by, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (ticket_id, name, str(target), sha256, size, content_type, actor, at),
        )
        assert row is not None
        data = {"attachment_id": row["id"], "name": name, "sha256": sha256, "size_bytes": size}
        await append_history(tx, ticket_id, at, [HistoryRow("attachment_added", actor, data)])
        return row["id"]

    try:
        attachment_id = await db.transaction(write)
    except BaseException:
        # Only a file this call made: the same content under the same name may already be a
        # recorded attachment's (attaching it again is what failed), and must stay.
        if created:
            await asyncio.to_thread(target.unlink, missing_ok=True)
        raise
    return Attachment(
        id=attachment_id,
        ticket_id=ticket_id,
        name=name,
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


def _copy_hashed(source: Path, folder: Path, name: str) -> tuple[Path, str, int, bool]:
    """The copy's path, SHA-256 and size, and whether this call created the file (False: the
    same content under the same name was there already)."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as reading, tempfile.NamedTemporaryFile(dir=folder, delete=False) as writing:
        try:
            while chunk := reading.read(_CHUNK):
                digest.update(chunk)
                writing.write(chunk)
                size += len(chunk)
        except BaseException:
            Path(writing.name).unlink(missing_ok=True)
            raise
    sha256 = digest.hexdigest()
    # The hash in the name keeps two files of the same name apart and says what it held.
    target = folder / f"{sha256[:12]}-{_safe_name(name)}"
    try:
        os.link(writing.name, target)  # unlike a rename, never replaces a file already there
        created = True
    except FileExistsError:
        created = False
    finally:
        Path(writing.name).unlink(missing_ok=True)
    return target, sha256, size, created


def _safe_name(name: str, limit: int = 200) -> str:
    """The name with unsafe characters replaced, cut to `limit` bytes (file systems count
    bytes, and a Chinese character is three), keeping its extension."""
    safe = _UNSAFE.sub("_", name)
    if len(safe.encode()) <= limit:
        return safe
    stem, dot, extension = safe.rpartition(".")
    if not dot or len(extension.encode()) > 20:
        stem, extension = safe, ""
    room = limit - len(extension.encode()) - (1 if extension else 0)
    cut = stem.encode()[:room].decode(errors="ignore")
    return f"{cut}.{extension}" if extension else cut


def _check(attachment: Attachment) -> str | None:
    path = Path(attachment.path)
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()
    with path.open("rb") as reading:
        while chunk := reading.read(_CHUNK):
            digest.update(chunk)
    return None if digest.hexdigest() == attachment.sha256 else "checksum differs"
