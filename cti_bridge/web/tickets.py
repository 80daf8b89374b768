"""/api/tickets: list, search, read and work a ticket, through the same workflow as the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import tempfile
from pathlib import Path
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, HTTPException, Query, UploadFile, status
from fastapi.responses import FileResponse

from cti_bridge.ami.originate import DialRefused
from cti_bridge.click_to_dial import DialError
from cti_bridge.screenpop.payload import ticket_message
from cti_bridge.store import browse
from cti_bridge.store.attachments import AttachmentError, attachments_of
from cti_bridge.tickets import workflow as w
from cti_bridge.tickets.errors import InvalidTransition, TicketError
from cti_bridge.tickets.kpi import HistoryEntry, TicketHistory, sla_now
from cti_bridge.tickets.model import OPEN_STATUSES, TicketStatus
from cti_bridge.web import schemas as s
from cti_bridge.web.auth import Principal
from cti_bridge.web.context import ROW_ID_MAX, Caller, Ctx, RowId, WebContext, not_found, scope_of

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api", tags=["tickets"])

MAX_UPLOAD = 50 * 1024 * 1024
# The multipart request around the file: its boundaries and part headers (a long file name).
_MULTIPART_ENVELOPE = 64 * 1024
_CHUNK = 1 << 20

Number = Annotated[str, "ticket number, e.g. T-000123"]


@router.get("/tickets", response_model=s.TicketPage, summary="List, filter and search tickets")
async def list_tickets(
    ctx: Ctx,
    who: Caller,
    q: Annotated[str | None, Query(max_length=200, description="Words, a ticket number or a phone.")] = None,
    status_: Annotated[list[TicketStatus] | None, Query(alias="status")] = None,
    priority: Annotated[list[str] | None, Query(max_length=10)] = None,
    assignee: Annotated[str | None, Query(max_length=100)] = None,
    mine: bool = False,
    unassigned: bool = False,
    category: Annotated[str | None, Query(max_length=300, description="A path prefix.")] = None,
    queue: Annotated[str | None, Query(max_length=100)] = None,
    customer_id: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX)] = None,
    created_from: float | None = None,
    created_until: float | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> s.TicketPage:
    numbers = None
    if q and q.strip():
        hits = await ctx.store.search(
            q, region=ctx.config.phone.default_region, limit=500, categories=ctx.workflow.schema.categories
        )
        numbers = [hit.number for hit in hits]
    where = browse.TicketFilter(
        status=[str(x) for x in status_ or ()],
        priority=priority or (),
        assignee=who.agent_id if mine and who.agent_id else assignee,
        unassigned=unassigned,
        category=category,
        queue=queue,
        customer_id=customer_id,
        created_from=created_from,
        created_until=created_until,
        numbers=numbers,
    )
    items, total = await browse.list_tickets(
        ctx.store.database, scope_of(who), where, limit=limit, offset=offset
    )
    if numbers is not None:  # search order: exact matches, then the best full-text hits
        rank = {number: n for n, number in enumerate(numbers)}
        items.sort(key=lambda item: rank[item["number"]])
    return s.TicketPage(total=total, items=[s.TicketItem(**item) for item in items])


@router.get("/tickets/{number}", response_model=s.TicketDetail, summary="One ticket in full")
async def show_ticket(number: Number, ctx: Ctx, who: Caller) -> dict[str, Any]:
    await _visible(ctx, who, number)
    return await ticket_view(ctx, number)


@router.patch("/tickets/{number}", response_model=s.TransitionResult, summary="Set fields")
async def update_fields(number: Number, body: s.FieldsUpdate, ctx: Ctx, who: Caller) -> s.TransitionResult:
    ticket = await _visible(ctx, who, number)
    return await _apply(ctx, who, number, ticket.id, [w.UpdateFields(values=body.fields, reason=body.reason)])


@router.post("/tickets/{number}/transitions", response_model=s.TransitionResult, summary="Move the ticket on")
async def transition(number: Number, body: s.TransitionRequest, ctx: Ctx, who: Caller) -> s.TransitionResult:
    ticket = await _visible(ctx, who, number)
    return await _apply(ctx, who, number, ticket.id, _commands(body, TicketStatus(ticket.status)))


@router.post("/tickets/{number}/comments", response_model=s.TransitionResult, summary="Comment")
async def comment(number: Number, body: s.CommentRequest, ctx: Ctx, who: Caller) -> s.TransitionResult:
    ticket = await _visible(ctx, who, number)
    visibility = w.Visibility.CUSTOMER if body.customer_visible else w.Visibility.INTERNAL
    return await _apply(ctx, who, number, ticket.id, [w.AddComment(text=body.text, visibility=visibility)])


@router.post(
    "/tickets/{number}/dial",
    response_model=s.DialResult,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Call the ticket's customer from the agent's phone (click-to-dial)",
    responses={
        403: {"description": "The caller is not an agent (no phone to ring)."},
        409: {"description": "Click-to-dial is not configured, or the number cannot be dialled."},
        502: {"description": "The PBX refused the call or could not be reached."},
    },
)
async def dial_ticket(number: Number, body: s.DialRequest, ctx: Ctx, who: Caller) -> s.DialResult:
    ticket = await _visible(ctx, who, number)
    phone = body.phone or (await ctx.store.get_ticket(ticket.id)).caller_number
    return await place_call(ctx, who, phone, number)


async def place_call(ctx: WebContext, who: Principal, phone: str | None, ticket: str | None) -> s.DialResult:
    """Ring the agent's phone, then the customer (see cti_bridge.click_to_dial)."""
    if who.agent_id is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only agents dial: supervisors have no phone here")
    if ctx.dialer is None or not ctx.dialer.enabled:
        raise HTTPException(status.HTTP_409_CONFLICT, "click-to-dial is not configured (pbxs[].originate)")
    try:
        placed = await ctx.dialer.dial(agent_id=who.agent_id, phone=phone, ticket=ticket)
    except DialError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except DialRefused as exc:
        log.warning("dial.refused", agent=who.agent_id, ticket=ticket, error=str(exc))
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
    return s.DialResult(agent_id=placed.agent_id, device=placed.device, pbx=placed.pbx, ticket=placed.ticket)


@router.get(
    "/tickets/{number}/attachments", response_model=list[s.AttachmentOut], summary="The ticket's files"
)
async def list_attachments(number: Number, ctx: Ctx, who: Caller) -> list[dict[str, Any]]:
    ticket = await _visible(ctx, who, number)
    return [_attachment(a) for a in await attachments_of(ctx.store.database, ticket.id)]


@router.post(
    "/tickets/{number}/attachments",
    response_model=s.AttachmentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Attach a file (kept with its SHA-256)",
    # Checked at Content-Length and while the body streams in, before the form parser has
    # spooled it to disk; the file's own size is checked again below.
    max_body_size=MAX_UPLOAD + _MULTIPART_ENVELOPE,
    responses={413: {"description": f"The file is larger than {MAX_UPLOAD >> 20} MiB."}},
)
async def add_attachment(number: Number, file: UploadFile, ctx: Ctx, who: Caller) -> dict[str, Any]:
    ticket = await _visible(ctx, who, number)
    name = Path(file.filename or "upload").name or "upload"
    with tempfile.TemporaryDirectory() as scratch:
        upload = Path(scratch) / "upload"
        size = 0
        sha256 = hashlib.sha256()
        with upload.open("wb") as out:
            while chunk := await file.read(_CHUNK):
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise HTTPException(
                        status.HTTP_413_CONTENT_TOO_LARGE, f"files up to {MAX_UPLOAD >> 20} MiB"
                    )
                sha256.update(chunk)
                await asyncio.to_thread(out.write, chunk)
        # The same file twice on one ticket is a slip (a double click, a retry): say which it is.
        for attached in await attachments_of(ctx.store.database, ticket.id):
            if attached.sha256 == sha256.hexdigest():
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"the same file is attached already, as {attached.name!r} (#{attached.id})",
                )
        try:
            added = await ctx.store.attach(
                number, upload, folder=ctx.attachments_folder, actor=who.user.id, at=ctx.clock(), name=name
            )
        except AttachmentError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        except sqlite3.IntegrityError:  # the same upload twice at once: the store keeps one
            raise HTTPException(status.HTTP_409_CONFLICT, "the same file is attached already") from None
    await _announce(ctx, ticket.id, "attachment_added", actor=who.user.id, name=name)
    return _attachment(added)


@router.get(
    "/attachments/{attachment_id}/content", summary="An attachment's file", response_class=FileResponse
)
async def attachment_content(attachment_id: RowId, ctx: Ctx, who: Caller) -> FileResponse:
    found = await browse.attachment_owner(ctx.store.database, scope_of(who), attachment_id)
    if found is None:
        raise not_found("attachment")
    path = Path(found["path"])
    if not await asyncio.to_thread(path.is_file):
        raise HTTPException(status.HTTP_410_GONE, "the attachment's file is gone from the store")
    return FileResponse(
        path, media_type=found["content_type"] or "application/octet-stream", filename=found["name"]
    )


@router.get(
    "/tickets/{number}/suggestions",
    response_model=list[s.Suggestion],
    summary="Knowledge-base articles that may help",
)
async def suggestions(
    number: Number, ctx: Ctx, who: Caller, limit: Annotated[int, Query(ge=1, le=20)] = 5
) -> list[s.Suggestion]:
    ticket = await _visible(ctx, who, number)
    matches = await ctx.store.kb_suggest(ticket.id, limit)
    return [
        s.Suggestion(
            id=m.article.id,
            title=m.article.title,
            snippet=m.snippet,
            category=m.article.category,
            tags=list(m.article.tags),
            why=m.why,
        )
        for m in matches
    ]


# -- shared with the other routers ----------------------------------------------------------


async def ticket_view(ctx: WebContext, number: str) -> dict[str, Any]:
    """The ticket as the pages show it: detail, what may be done now, and its SLA."""
    detail = await ctx.store.ticket_detail(number)
    if detail is None:
        raise not_found(f"ticket {number}")
    detail["allowed"] = [
        c for c in w.allowed_commands(TicketStatus(detail["status"])) if c != "update_fields"
    ]
    detail["sla"] = sla_view(ctx, detail)
    for recording in detail["recordings"]:
        recording["audio_url"] = f"/api/recordings/{recording['id']}/audio"
        recording.pop("local_path", None)  # where the bridge keeps it is nobody's business
    return detail


def sla_view(ctx: WebContext, detail: dict[str, Any]) -> list[dict[str, Any]]:
    events = tuple(
        HistoryEntry(
            at=e["at"],
            kind=e["kind"],
            actor=e["actor"],
            data=e["data"],
            from_status=_status(e["from_status"]),
            to_status=_status(e["to_status"]),
        )
        for e in detail["history"]
    )
    history = TicketHistory(
        id=detail["id"],
        number=detail["number"],
        status=TicketStatus(detail["status"]),
        priority=detail["priority"],
        category=detail["category"],
        queue=detail["queue"],
        assignee=detail["assignee"],
        created_at=detail["created_at"],
        events=events,
    )
    return [
        {
            "target": str(t.target),
            "state": str(t.state),
            "allowed_seconds": t.allowed,
            "remaining_seconds": t.remaining,
            "running": t.running,
            "due_at": t.due_at,
        }
        for t in sla_now(history, policy=ctx.sla_policy, now=ctx.clock()).targets()
    ]


def _status(value: str | None) -> TicketStatus | None:
    return TicketStatus(value) if value else None


async def _visible(ctx: WebContext, who: Principal, number: str) -> browse.VisibleTicket:
    ticket = await browse.visible_ticket(ctx.store.database, scope_of(who), number)
    if ticket is None:
        raise not_found(f"ticket {number}")
    return ticket


def _commands(body: s.TransitionRequest, current: TicketStatus) -> list[w.Command]:
    def need(value: str | None, what: str) -> str:
        if not value:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{body.action} needs {what}")
        return value

    match body.action:
        case "assign":
            return [w.Assign(assignee=need(body.assignee, "an assignee"), reason=body.reason)]
        case "start":
            return [w.Start(fields=body.fields)]
        case "wait":
            return [w.Wait(on=w.WaitingOn(need(body.on, "on: customer or third_party")), reason=body.reason)]
        case "resume":
            return [w.Resume(reason=body.reason)]
        case "resolve":
            fields = {**body.fields, "resolution": need(body.resolution, "a resolution")}
            return [w.Resolve(fields=fields, reason=body.reason)]
        case "close":
            close = w.Close(confirmed_by_customer=body.confirmed, reason=body.reason)
            if current not in OPEN_STATUSES or not body.resolution:
                return [close]
            # Closing a ticket still being worked: the steps an agent would take, in one go.
            steps: list[w.Command] = []
            if current in (TicketStatus.NEW, TicketStatus.ASSIGNED):
                steps.append(w.Start(fields=body.fields))
            elif body.fields:
                steps.append(w.UpdateFields(values=body.fields))
            steps.append(w.Resolve(fields={"resolution": body.resolution}, reason=body.reason))
            return [*steps, close]
        case "reopen":
            return [w.Reopen(reason=need(body.reason, "a reason"))]
        case "priority":
            return [w.ChangePriority(priority=need(body.priority, "a priority"), reason=body.reason)]
    raise AssertionError(body.action)


async def _apply(
    ctx: WebContext, who: Principal, number: str, ticket_id: int, commands: list[w.Command]
) -> s.TransitionResult:
    try:
        transition = await ctx.store.apply_commands(
            number, commands, workflow=ctx.workflow, actor=who.user.id, at=ctx.clock()
        )
    except InvalidTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except TicketError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except LookupError:
        raise not_found(f"ticket {number}") from None
    kinds = [str(e.kind) for e in transition.events]
    await _announce(ctx, ticket_id, "updated", actor=who.user.id, events=kinds)
    state = transition.state
    return s.TransitionResult(
        number=number,
        status=str(state.status),
        priority=state.priority,
        assignee=state.assignee,
        events=kinds,
    )


async def _announce(ctx: WebContext, ticket_id: int, event: str, **data: Any) -> None:
    """Tell MQTT subscribers and open pages, as the call path does for its changes."""
    ticket = await ctx.store.get_ticket(ticket_id)
    ctx.publisher.publish(ticket_message(event, ticket, ctx.clock(), **data))


def _attachment(attachment: Any) -> dict[str, Any]:
    return {
        "id": attachment.id,
        "name": attachment.name,
        "sha256": attachment.sha256,
        "size_bytes": attachment.size_bytes,
        "content_type": attachment.content_type,
        "added_by": attachment.added_by,
        "added_at": attachment.added_at,
        "url": f"/api/attachments/{attachment.id}/content",
    }
