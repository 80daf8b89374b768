"""The HTTP API's request and response bodies: what the OpenAPI document describes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from cti_bridge.store.users import ApiToken, User

Role = Literal["agent", "supervisor", "admin"]
Language = Literal["zh", "en"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _storable(value: Any) -> Any:
    """Refuse text UTF-8 cannot hold: JSON can spell a lone surrogate (\\ud800), which pydantic
    lets through in untyped values and the store (and every JSON answer naming it) cannot write."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("text with a lone UTF-16 surrogate (\\ud800-\\udfff)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    elif isinstance(value, list):
        for item in value:
            _storable(item)
    return value


FieldValues = Annotated[dict[str, Any], AfterValidator(_storable)]


class _Open(BaseModel):
    """A response that may carry more than listed (store rows grow with migrations)."""

    model_config = ConfigDict(extra="allow")


class Problem(BaseModel):
    where: str = Field(description="Where in the request, e.g. body.fields.priority or query.limit.")
    problem: str


class InvalidRequest(BaseModel):
    """The answer to a request that does not fit the operation (422)."""

    detail: str
    problems: list[Problem] = Field(default_factory=list)


# -- accounts ------------------------------------------------------------------------------


class Login(_Body):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class UserOut(BaseModel):
    id: str
    name: str
    role: Role
    agent_id: str | None
    language: Language | None
    disabled: bool
    has_password: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            name=user.name,
            role=user.role,
            agent_id=user.agent_id,
            language=user.language if user.language in ("zh", "en") else None,
            disabled=user.disabled,
            has_password=user.has_password,
        )


class Me(BaseModel):
    user: UserOut
    team: str | None = Field(description="An agent's team, from the config.")
    sees_agents: list[str] | None = Field(description="Whose tickets this user sees; null: everyone's.")
    csrf_token: str | None = Field(description="Send as X-CSRF-Token with every change made by cookie.")


class MeUpdate(_Body):
    language: Language | None = None
    name: str | None = Field(None, max_length=200)


class NewUser(_Body):
    id: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    name: str = Field("", max_length=200)
    role: Role
    agent_id: str | None = Field(None, description="Required for role agent: an agents[].id of the config.")
    language: Language | None = None
    password: str | None = Field(None, min_length=8, max_length=1000)


class UserUpdate(_Body):
    name: str | None = Field(None, max_length=200)
    role: Role | None = None
    agent_id: str | None = None
    language: Language | None = None
    password: str | None = Field(None, min_length=8, max_length=1000)
    disabled: bool | None = None


class NewToken(_Body):
    label: str = Field(min_length=1, max_length=100, description="What uses it, e.g. crm-sync.")


class TokenOut(BaseModel):
    id: int
    user_id: str
    label: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            id=token.id,
            user_id=token.user_id,
            label=token.label,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class IssuedToken(TokenOut):
    token: str = Field(description="Shown this once; only its SHA-256 is kept.")


# -- tickets -------------------------------------------------------------------------------


class TicketItem(_Open):
    number: str
    status: str
    priority: str
    category: str | None
    subject: str
    assignee: str | None
    caller_number: str | None
    customer: str | None
    vip: bool
    calls: int
    created_at: float
    updated_at: float


class TicketPage(BaseModel):
    total: int
    items: list[TicketItem]


class TicketDetail(_Open):
    number: str
    status: str
    priority: str
    fields: dict[str, Any]
    customer: dict[str, Any] | None
    calls: list[dict[str, Any]]
    recordings: list[dict[str, Any]]
    transcripts: list[dict[str, Any]]
    history: list[dict[str, Any]]
    crm: dict[str, Any] | None = Field(
        None,
        description="The CRM's last answer for the caller: found, phone, fetched_at and profile (name, "
        "company, email, tier, vip, external_id, notes, orders); null: no CRM answer kept.",
    )
    allowed: list[str] = Field(description="Commands that apply to the ticket now.")
    sla: list[dict[str, Any]] = Field(description="Each SLA target's state now.")


class FieldsUpdate(_Body):
    fields: FieldValues = Field(min_length=1, description="Field name -> value; null empties it.")
    reason: str | None = Field(None, max_length=1000)


Action = Literal["assign", "start", "wait", "resume", "resolve", "close", "reopen", "priority"]


class TransitionRequest(_Body):
    action: Action
    assignee: str | None = Field(None, description="assign: the agent.")
    on: Literal["customer", "third_party"] | None = Field(None, description="wait: on whom.")
    resolution: str | None = Field(
        None, max_length=10000, description="resolve, or close: a ticket not yet resolved is resolved first."
    )
    priority: str | None = Field(None, max_length=50, description="priority: P1..P4 or a name.")
    confirmed: bool = Field(False, description="close: the customer confirmed the resolution.")
    fields: FieldValues = Field(default_factory=dict, description="start, resolve: fields to set too.")
    reason: str | None = Field(None, max_length=1000)


class TransitionResult(BaseModel):
    number: str
    status: str
    priority: str
    assignee: str | None
    events: list[str]


class CommentRequest(_Body):
    text: str = Field(min_length=1, max_length=20000)
    customer_visible: bool = False


class AttachmentOut(_Open):
    id: int
    name: str
    sha256: str
    size_bytes: int
    content_type: str | None
    added_by: str
    added_at: float


class Suggestion(BaseModel):
    id: int
    title: str
    snippet: str
    category: str | None
    tags: list[str]
    why: str


# -- other resources -----------------------------------------------------------------------


class CustomerOut(_Open):
    id: int
    name: str
    vip: bool
    phones: list[str]
    tickets: list[TicketItem]


class CallOut(_Open):
    pbx: str
    linkedid: str
    direction: str
    caller_number: str | None
    queue: str | None
    agent_id: str | None
    started_at: float
    answered_at: float | None
    ended_at: float | None
    ticket: str | None


class AgentStateOut(BaseModel):
    agent_id: str
    status: Literal["logged_in", "paused", "logged_out"] = Field(
        description="As the PBX's queues say: a member of a queue, paused in all of them, or in none."
    )
    queues: list[str]
    paused_in: list[str] = Field(description="The queues the agent is paused in.")
    reason: str = Field(description="Why paused, if the phone or the PBX said.")
    since: float = Field(description="When the status last changed.")


class LiveCalls(BaseModel):
    calls: list[CallOut]
    queues: dict[str, dict[str, int]] = Field(description="Queue -> waiting and talking calls now.")
    agents_on_call: list[str]
    agents: list[AgentStateOut] = Field(
        default_factory=list, description="Agents the queues know of; none when the PBX uses no queue logins."
    )


class DialRequest(_Body):
    phone: str | None = Field(
        None,
        max_length=40,
        description="The number to call; default: the ticket's caller (or the customer's first).",
    )


class DialResult(BaseModel):
    status: Literal["dialing"] = "dialing"
    agent_id: str = Field(description="Whose phone rings first.")
    device: str
    pbx: str
    ticket: str | None = Field(description="The ticket the call will be attached to, when dialled from one.")


class RecordingOut(_Open):
    id: int
    ticket: str
    status: str
    size_bytes: int | None
    duration_seconds: float | None
    audio_url: str


class Word(BaseModel):
    word: str
    start: float
    end: float
    conf: float


class TranscriptOut(BaseModel):
    recording_id: int
    language: str
    text: str
    words: list[Word]
    duration_seconds: float | None


class ArticleOut(BaseModel):
    id: int
    title: str
    body: str
    tags: list[str]
    category: str | None
    created_by: str
    created_at: float
    updated_at: float


class ArticleHit(ArticleOut):
    snippet: str | None = None
    why: str | None = None


class NewArticle(_Body):
    title: str = Field(min_length=1, max_length=500)
    body: str = Field(min_length=1, max_length=100000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    category: str | None = Field(None, max_length=500)


class ArticleUpdate(_Body):
    title: str | None = Field(None, min_length=1, max_length=500)
    body: str | None = Field(None, min_length=1, max_length=100000)
    tags: list[str] | None = Field(None, max_length=50)
    category: str | None = Field(None, max_length=500)


class SlaWatchItem(BaseModel):
    number: str
    subject: str
    priority: str
    status: str
    assignee: str | None
    target: Literal["first_response", "resolution"]
    state: Literal["warning", "breached"]
    due_at: float | None
    remaining_seconds: float


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    store: bool
    mqtt: bool
    pbxs: dict[str, bool]
    live_calls: int
    version: str
