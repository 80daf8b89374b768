"""/api: customers, calls, recordings and transcripts, knowledge base, reports and SLA watch."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import FileResponse

from cti_bridge.phone import to_e164
from cti_bridge.store import browse
from cti_bridge.store import sla as sla_store
from cti_bridge.store.knowledge import Article, KnowledgeBaseError
from cti_bridge.tickets.kpi import Period, business_zone, compute_kpis, sla_now
from cti_bridge.tickets.sla import SlaState
from cti_bridge.web import schemas as s
from cti_bridge.web.context import Caller, Ctx, RowId, Supervisor, not_found, scope_of
from cti_bridge.web.tickets import place_call

router = APIRouter(prefix="/api")

# -- customers ---------------------------------------------------------------------------


@router.get("/customers/{customer_id}", response_model=s.CustomerOut, tags=["customers"])
async def customer(customer_id: RowId, ctx: Ctx, who: Caller) -> dict[str, Any]:
    scope = scope_of(who)
    found = await browse.customer(ctx.store.database, scope, customer_id)
    if found is None:
        raise not_found("customer")
    tickets, _ = await browse.list_tickets(
        ctx.store.database, scope, browse.TicketFilter(customer_id=customer_id), limit=50
    )
    return {**found, "tickets": tickets}


@router.get("/customers", response_model=list[s.CustomerOut], tags=["customers"], summary="Find by phone")
async def customer_by_phone(
    ctx: Ctx, who: Caller, phone: Annotated[str, Query(min_length=3, max_length=40)]
) -> list[dict[str, Any]]:
    e164 = to_e164(phone, ctx.config.phone.default_region)
    found = await ctx.store.customer_by_phone(e164) if e164 else None
    if found is None:
        return []
    try:
        return [await customer(found.id, ctx, who)]
    except HTTPException:  # theirs, but not one of this agent's team's customers
        return []


@router.post(
    "/customers/{customer_id}/dial",
    response_model=s.DialResult,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["customers"],
    summary="Call the customer from the agent's phone (click-to-dial)",
    responses={
        403: {"description": "The caller is not an agent (no phone to ring)."},
        404: {"description": "No such customer, or not one this agent may see."},
        409: {"description": "Click-to-dial is not configured, or the number cannot be dialled."},
        502: {"description": "The PBX refused the call or could not be reached."},
    },
)
async def dial_customer(customer_id: RowId, body: s.DialRequest, ctx: Ctx, who: Caller) -> s.DialResult:
    found = await browse.customer(ctx.store.database, scope_of(who), customer_id)
    if found is None:
        raise not_found("customer")
    phones = list(found.get("phones") or [])
    if body.phone and to_e164(body.phone, ctx.config.phone.default_region) not in phones:
        raise HTTPException(status.HTTP_409_CONFLICT, "not one of this customer's numbers")
    return await place_call(ctx, who, body.phone or (phones[0] if phones else None), None)


# -- calls ---------------------------------------------------------------------------------


@router.get("/calls", response_model=list[s.CallOut], tags=["calls"], summary="Recent calls")
async def calls(
    ctx: Ctx,
    who: Caller,
    since: float | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    return await browse.list_calls(ctx.store.database, scope_of(who), since=since, limit=limit, offset=offset)


@router.get("/calls/live", response_model=s.LiveCalls, tags=["calls"], summary="Calls in progress now")
async def live_calls(ctx: Ctx, who: Caller) -> s.LiveCalls:
    calls = list(ctx.health.live_calls())
    if who.sees_agents is not None:
        mine = who.sees_agents
        calls = [c for c in calls if c.agent_id in mine or set(c.rang_agents) & mine]
    queues: dict[str, dict[str, int]] = {}
    for call in calls:
        if call.queue:
            counts = queues.setdefault(call.queue, {"waiting": 0, "talking": 0})
            counts["talking" if call.answered_at is not None else "waiting"] += 1
    calls.sort(key=lambda c: c.started_at)
    # A call in progress has its ticket from its first ring (one indexed read each; a floor
    # has tens of live calls, not thousands).
    tickets = [await ctx.store.ticket_for_call(c.key.pbx, c.key.linkedid) for c in calls]
    return s.LiveCalls(
        calls=[
            s.CallOut(
                pbx=c.key.pbx,
                linkedid=c.key.linkedid,
                direction=str(c.direction),
                caller_number=c.caller_number,
                caller_name=c.caller_name,
                queue=c.queue,
                agent_id=c.agent_id,
                rang_agents=list(c.rang_agents),
                started_at=c.started_at,
                answered_at=c.answered_at,
                ended_at=c.ended_at,
                ticket=ticket.number if ticket is not None else None,
            )
            for c, ticket in zip(calls, tickets, strict=True)
        ],
        queues=queues,
        agents_on_call=sorted({c.agent_id for c in calls if c.agent_id and c.answered_at is not None}),
        agents=[
            s.AgentStateOut(
                agent_id=a.agent_id,
                status=a.status.value,
                queues=[m.queue for m in a.queues],
                paused_in=[m.queue for m in a.queues if m.paused],
                reason=a.pause_reason,
                since=a.since,
            )
            for a in ctx.health.agent_states()
            if who.sees_agents is None or a.agent_id in who.sees_agents
        ],
    )


# -- recordings and transcripts ------------------------------------------------------------


@router.get("/recordings/{recording_id}", response_model=s.RecordingOut, tags=["recordings"])
async def recording(recording_id: RowId, ctx: Ctx, who: Caller) -> dict[str, Any]:
    found = await browse.recording_owner(ctx.store.database, scope_of(who), recording_id)
    if found is None:
        raise not_found("recording")
    found.pop("local_path")
    return {**found, "ticket": found.pop("number"), "audio_url": f"/api/recordings/{recording_id}/audio"}


@router.get(
    "/recordings/{recording_id}/audio",
    tags=["recordings"],
    response_class=FileResponse,
    summary="The recording (WAV; byte ranges for seeking)",
)
async def recording_audio(recording_id: RowId, ctx: Ctx, who: Caller) -> FileResponse:
    found = await browse.recording_owner(ctx.store.database, scope_of(who), recording_id)
    if found is None:
        raise not_found("recording")
    path = Path(found["local_path"])
    if found["status"] != "linked" or not await asyncio.to_thread(path.is_file):
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"recording {recording_id} is {found['status']}: no audio to play"
        )
    return FileResponse(path, media_type="audio/wav")


@router.get("/recordings/{recording_id}/transcript", response_model=s.TranscriptOut, tags=["recordings"])
async def transcript(recording_id: RowId, ctx: Ctx, who: Caller) -> dict[str, Any]:
    if await browse.recording_owner(ctx.store.database, scope_of(who), recording_id) is None:
        raise not_found("recording")
    row = await browse.transcript_of(ctx.store.database, recording_id)
    if row is None:
        raise not_found("transcript (yet)")
    return {**dict(row), "words": json.loads(row["words"])}


# -- knowledge base -----------------------------------------------------------------------


def _article(article: Article, **extra: Any) -> s.ArticleHit:
    return s.ArticleHit(
        id=article.id,
        title=article.title,
        body=article.body,
        tags=list(article.tags),
        category=article.category,
        created_by=article.created_by,
        created_at=article.created_at,
        updated_at=article.updated_at,
        **extra,
    )


@router.get("/kb/articles", response_model=list[s.ArticleHit], tags=["knowledge base"])
async def articles(
    ctx: Ctx,
    who: Caller,
    q: Annotated[str | None, Query(max_length=200, description="Terms that must all appear.")] = None,
    category: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[s.ArticleHit]:
    if q and q.strip():
        try:
            matches = await ctx.store.kb_search(q, limit=limit, category=category)
        except KnowledgeBaseError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        return [_article(m.article, snippet=m.snippet, why=m.why) for m in matches]
    return [_article(a) for a in await ctx.store.kb_articles(category=category, limit=limit)]


@router.get("/kb/articles/{article_id}", response_model=s.ArticleHit, tags=["knowledge base"])
async def article(article_id: RowId, ctx: Ctx, who: Caller) -> s.ArticleHit:
    found = await ctx.store.kb_article(article_id)
    if found is None:
        raise not_found("article")
    return _article(found)


@router.post(
    "/kb/articles", response_model=s.ArticleHit, status_code=status.HTTP_201_CREATED, tags=["knowledge base"]
)
async def add_article(body: s.NewArticle, ctx: Ctx, who: Supervisor) -> s.ArticleHit:
    try:
        added = await ctx.store.kb_add_article(
            title=body.title,
            body=body.body,
            actor=who.user.id,
            at=ctx.clock(),
            tags=body.tags,
            category=body.category,
        )
    except (KnowledgeBaseError, ValueError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return _article(added)


@router.patch("/kb/articles/{article_id}", response_model=s.ArticleHit, tags=["knowledge base"])
async def update_article(article_id: RowId, body: s.ArticleUpdate, ctx: Ctx, who: Supervisor) -> s.ArticleHit:
    # A null title, body or tags keeps them (they cannot be emptied); a null category clears it.
    changes = {
        name: value
        for name, value in body.model_dump(exclude_unset=True).items()
        if value is not None or name == "category"
    }
    try:
        updated = await ctx.store.kb_update_article(article_id, at=ctx.clock(), **changes)
    except KnowledgeBaseError as exc:
        if await ctx.store.kb_article(article_id) is None:
            raise not_found("article") from None
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return _article(updated)


# -- reports and SLA ------------------------------------------------------------------------


@router.get("/reports/kpi", tags=["reports"], summary="KPIs over a period of days")
async def kpi_report(
    ctx: Ctx,
    who: Supervisor,
    from_: Annotated[
        date | None, Query(alias="from", description="First day (default: 29 days before to).")
    ] = None,
    to: Annotated[date | None, Query(description="Last day, inclusive (default: today).")] = None,
) -> dict[str, Any]:
    zone = business_zone(ctx.config)
    now = ctx.clock()
    until = to or datetime.fromtimestamp(now, zone).date()
    try:  # dates near year 1 or 9999 have no day before or after them
        since = from_ or until - timedelta(days=29)
        if since > until:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "from is after to")
        if (until - since).days > 366:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a report spans a year at most")
        period = Period.of_days(since, until, zone)
    except (OverflowError, ValueError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no such period: {exc}") from None
    histories = await ctx.store.ticket_histories(period.start, period.end)
    report = await asyncio.to_thread(compute_kpis, histories, period=period, policy=ctx.sla_policy, as_of=now)
    return report.to_dict()


@router.get(
    "/sla/watch", response_model=list[s.SlaWatchItem], tags=["reports"], summary="Tickets near or past SLA"
)
async def sla_watch(ctx: Ctx, who: Caller) -> list[s.SlaWatchItem]:
    snapshot = await sla_store.watched_tickets(ctx.store.database)
    now = ctx.clock()
    watch = []
    for ticket in snapshot.tickets:
        if who.sees_agents is not None and ticket.assignee not in who.sees_agents:
            continue
        for target in sla_now(ticket, policy=ctx.sla_policy, now=now).targets():
            if target.stopped_at is None and target.state in (SlaState.WARNING, SlaState.BREACHED):
                watch.append((ticket, target))
    subjects = await browse.ticket_subjects(ctx.store.database, [ticket.id for ticket, _ in watch])
    items = [
        s.SlaWatchItem(
            number=ticket.number,
            subject=subjects.get(ticket.id, ""),
            priority=ticket.priority,
            status=str(ticket.status),
            assignee=ticket.assignee,
            target=str(target.target),
            state=str(target.state),
            due_at=target.due_at,
            remaining_seconds=target.remaining,
        )
        for ticket, target in watch
    ]
    return sorted(items, key=lambda item: item.remaining_seconds)
