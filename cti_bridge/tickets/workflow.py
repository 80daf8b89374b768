"""The ticket lifecycle: commands in, the next state and its history events out; no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar, TypeVar

from cti_bridge.tickets.errors import InvalidTransition, MissingFieldsError
from cti_bridge.tickets.fields import FieldSchema, FieldValue
from cti_bridge.tickets.model import OPEN_STATUSES, TicketStatus

if TYPE_CHECKING:
    from cti_bridge.config.model import Config

S = TicketStatus
_ALL = frozenset(TicketStatus)
_MENTION = re.compile(r"(?<![\w.])@([A-Za-z0-9_][A-Za-z0-9_.@-]*)")


class WaitingOn(StrEnum):
    """Who a waiting ticket waits for: the SLA clock stops only for the customer."""

    CUSTOMER = "customer"
    THIRD_PARTY = "third_party"


class Visibility(StrEnum):
    INTERNAL = "internal"
    CUSTOMER = "customer"  # shown to the customer


class EventKind(StrEnum):
    CREATED = "created"
    ASSIGNED = "assigned"
    REASSIGNED = "reassigned"
    STARTED = "started"
    WAITING = "waiting"
    RESUMED = "resumed"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"
    FIELDS_UPDATED = "fields_updated"
    PRIORITY_CHANGED = "priority_changed"
    COMMENTED = "commented"


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEvent:
    """One entry of a ticket's append-only history.

    `data` holds what changed, under fixed keys that `replay` reads back: `priority`,
    `assignee`, `waiting_on`, `changes` (field name -> new value, None = cleared), plus
    free details such as `text`, `visibility`, `mentions`, `previous`, `confirmed`.
    """

    kind: EventKind
    actor: str
    at: float
    from_status: TicketStatus | None  # None only for `created`
    to_status: TicketStatus
    reason: str | None = None
    data: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketState:
    """What the lifecycle knows of a ticket; `history` is every event that led here."""

    status: TicketStatus
    priority: str
    assignee: str | None = None
    waiting_on: WaitingOn | None = None
    fields: Mapping[str, FieldValue] = field(default_factory=lambda: MappingProxyType({}))
    history: tuple[HistoryEvent, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def sla_paused(self) -> bool:
        """True while the ticket waits on the customer: the SLA clock does not run then."""
        return self.status is S.WAITING and self.waiting_on is WaitingOn.CUSTOMER


@dataclass(frozen=True, slots=True)
class Transition:
    """The result of a command: the new state and the events appended to its history."""

    state: TicketState
    events: tuple[HistoryEvent, ...]


# --- Commands -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    name: ClassVar[str]
    allowed_from: ClassVar[frozenset[TicketStatus]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Assign(Command):
    """Give the ticket to an agent; from `new` it becomes `assigned`, later the status stays."""

    name: ClassVar[str] = "assign"
    allowed_from: ClassVar[frozenset[TicketStatus]] = OPEN_STATUSES
    assignee: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Start(Command):
    name: ClassVar[str] = "start"
    allowed_from: ClassVar[frozenset[TicketStatus]] = frozenset({S.ASSIGNED})
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait(Command):
    """Put the ticket on hold for the customer or a third party (or switch who is awaited)."""

    name: ClassVar[str] = "wait"
    allowed_from: ClassVar[frozenset[TicketStatus]] = frozenset({S.IN_PROGRESS, S.WAITING})
    on: WaitingOn
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume(Command):
    name: ClassVar[str] = "resume"
    allowed_from: ClassVar[frozenset[TicketStatus]] = frozenset({S.WAITING})
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolve(Command):
    """Resolve, filling in `fields` (typically the resolution) in the same step."""

    name: ClassVar[str] = "resolve"
    allowed_from: ClassVar[frozenset[TicketStatus]] = frozenset({S.IN_PROGRESS, S.WAITING})
    fields: Mapping[str, object] = field(default_factory=dict)
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Close(Command):
    name: ClassVar[str] = "close"
    allowed_from: ClassVar[frozenset[TicketStatus]] = frozenset({S.RESOLVED})
    confirmed_by_customer: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Reopen(Command):
    """Back to work: `in_progress` with the last assignee, `new` if there was none."""

    name: ClassVar[str] = "reopen"
    allowed_from: ClassVar[frozenset[TicketStatus]] = frozenset({S.RESOLVED, S.CLOSED})
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateFields(Command):
    """Set fields (None or blank clears one); a closed ticket must be reopened first."""

    name: ClassVar[str] = "update_fields"
    allowed_from: ClassVar[frozenset[TicketStatus]] = _ALL - {S.CLOSED}
    values: Mapping[str, object]
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangePriority(Command):
    """Raise or lower the priority: a code (P1..P4) or a configured name (紧急, urgent)."""

    name: ClassVar[str] = "change_priority"
    allowed_from: ClassVar[frozenset[TicketStatus]] = OPEN_STATUSES
    priority: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AddComment(Command):
    """A note in the process record; `@agent` mentions are collected for notification."""

    name: ClassVar[str] = "comment"
    allowed_from: ClassVar[frozenset[TicketStatus]] = _ALL
    text: str
    visibility: Visibility = Visibility.INTERNAL


COMMANDS: tuple[type[Command], ...] = (
    Assign,
    Start,
    Wait,
    Resume,
    Resolve,
    Close,
    Reopen,
    UpdateFields,
    ChangePriority,
    AddComment,
)


def allowed_commands(status: TicketStatus) -> tuple[str, ...]:
    """Names of the commands that apply to a ticket in `status`."""
    return tuple(command.name for command in COMMANDS if status in command.allowed_from)


# --- The workflow -------------------------------------------------------------------------

C = TypeVar("C", bound=Command)
_Handler = Callable[["Workflow", TicketState, C, "_Context"], list[HistoryEvent]]


@dataclass(frozen=True, slots=True)
class _Context:
    actor: str
    at: float

    def event(
        self,
        kind: EventKind,
        state: TicketState,
        to: TicketStatus | None = None,
        reason: str | None = None,
        **data: object,
    ) -> HistoryEvent:
        return HistoryEvent(
            kind=kind,
            actor=self.actor,
            at=self.at,
            from_status=state.status,
            to_status=state.status if to is None else to,
            reason=reason,
            data=MappingProxyType(data),
        )


class Workflow:
    """Applies commands to ticket states under one field schema (required fields, priorities)."""

    def __init__(self, schema: FieldSchema | None = None) -> None:
        self.schema = schema or FieldSchema()

    @classmethod
    def from_config(cls, config: Config) -> Workflow:
        """The workflow of `tickets:` (fields, required fields, priority names)."""
        return cls(FieldSchema.from_config(config.tickets, phone_region=config.phone.default_region))

    def open(
        self, *, actor: str, at: float, priority: str, fields: Mapping[str, object] | None = None
    ) -> Transition:
        """A new ticket, status `new`, with one `created` event.

        Raises:
            FieldValidationError: a bad field value; PriorityError: an unknown priority.
        """
        values = self.schema.validate(fields or {})
        code = self.schema.priorities.code(priority)
        changes = {name: value for name, value in values.items() if value is not None}
        event = HistoryEvent(
            kind=EventKind.CREATED,
            actor=actor,
            at=at,
            from_status=None,
            to_status=S.NEW,
            data=MappingProxyType({"priority": code, "changes": MappingProxyType(changes)}),
        )
        return Transition(fold(None, [event]), (event,))

    def apply(self, state: TicketState, command: Command, *, actor: str, at: float) -> Transition:
        """Apply one command.

        Args:
            state: the ticket now.
            command: what is asked (Assign, Start, Wait, ...).
            actor: who asks: an agent id, `system`, `sla`, a rule name.
            at: when, in epoch seconds.

        Returns:
            The next state and the one or more events appended to its history.

        Raises:
            InvalidTransition: the command does not apply in this status (naming the ones that
                do) or would change nothing.
            MissingFieldsError: the target status requires fields that are empty.
            FieldValidationError, PriorityError: bad values in the command.
        """
        if state.status not in command.allowed_from:
            raise InvalidTransition(command.name, state.status, allowed_commands(state.status))
        handler = _HANDLERS[type(command)]
        events = handler(self, state, command, _Context(actor, at))
        after = fold(state, events)
        missing = self.schema.missing(after.status, after.fields)
        if after.status is state.status:
            # Staying put, only a field this command emptied counts: a ticket that predates a
            # newly required field can still be commented on and filled in bit by bit.
            already = set(self.schema.missing(state.status, state.fields))
            missing = tuple(name for name in missing if name not in already)
        if missing:
            raise MissingFieldsError(after.status, missing)
        return Transition(after, tuple(events))

    def allowed(self, state: TicketState) -> tuple[str, ...]:
        return allowed_commands(state.status)

    # Handlers: each returns the events; the state follows from them alone (see `fold`).

    def _assign(self, state: TicketState, command: Assign, ctx: _Context) -> list[HistoryEvent]:
        if not command.assignee.strip():
            raise InvalidTransition(command.name, state.status, self.allowed(state), "an assignee is needed")
        if command.assignee == state.assignee:
            detail = f"the ticket is assigned to {state.assignee} already"
            raise InvalidTransition(command.name, state.status, self.allowed(state), detail)
        if state.status is S.NEW:
            return [
                ctx.event(EventKind.ASSIGNED, state, S.ASSIGNED, command.reason, assignee=command.assignee)
            ]
        return [
            ctx.event(
                EventKind.REASSIGNED,
                state,
                reason=command.reason,
                assignee=command.assignee,
                previous=state.assignee,
            )
        ]

    def _start(self, state: TicketState, command: Start, ctx: _Context) -> list[HistoryEvent]:
        return [
            *self._field_events(state, command.fields, ctx),
            ctx.event(EventKind.STARTED, state, S.IN_PROGRESS),
        ]

    def _wait(self, state: TicketState, command: Wait, ctx: _Context) -> list[HistoryEvent]:
        on = WaitingOn(command.on)
        if state.waiting_on is on:
            detail = f"the ticket is waiting on the {on} already"
            raise InvalidTransition(command.name, state.status, self.allowed(state), detail)
        return [ctx.event(EventKind.WAITING, state, S.WAITING, command.reason, waiting_on=on)]

    def _resume(self, state: TicketState, command: Resume, ctx: _Context) -> list[HistoryEvent]:
        return [ctx.event(EventKind.RESUMED, state, S.IN_PROGRESS, command.reason)]

    def _resolve(self, state: TicketState, command: Resolve, ctx: _Context) -> list[HistoryEvent]:
        events = self._field_events(state, command.fields, ctx)
        return [*events, ctx.event(EventKind.RESOLVED, state, S.RESOLVED, command.reason)]

    def _close(self, state: TicketState, command: Close, ctx: _Context) -> list[HistoryEvent]:
        confirmed = command.confirmed_by_customer
        return [ctx.event(EventKind.CLOSED, state, S.CLOSED, command.reason, confirmed=confirmed)]

    def _reopen(self, state: TicketState, command: Reopen, ctx: _Context) -> list[HistoryEvent]:
        if not command.reason.strip():
            raise InvalidTransition(command.name, state.status, self.allowed(state), "say why it is reopened")
        target = S.IN_PROGRESS if state.assignee else S.NEW
        return [ctx.event(EventKind.REOPENED, state, target, command.reason)]

    def _update_fields(self, state: TicketState, command: UpdateFields, ctx: _Context) -> list[HistoryEvent]:
        events = self._field_events(state, command.values, ctx, command.reason)
        if not events:
            raise InvalidTransition(command.name, state.status, self.allowed(state), "no field changes")
        return events

    def _change_priority(
        self, state: TicketState, command: ChangePriority, ctx: _Context
    ) -> list[HistoryEvent]:
        code = self.schema.priorities.code(command.priority)
        if code == state.priority:
            detail = f"the priority is {code} already"
            raise InvalidTransition(command.name, state.status, self.allowed(state), detail)
        return [
            ctx.event(
                EventKind.PRIORITY_CHANGED,
                state,
                reason=command.reason,
                priority=code,
                previous=state.priority,
            )
        ]

    def _comment(self, state: TicketState, command: AddComment, ctx: _Context) -> list[HistoryEvent]:
        text = command.text.strip()
        if not text:
            raise InvalidTransition(command.name, state.status, self.allowed(state), "a comment needs text")
        mentions = tuple(dict.fromkeys(m.rstrip(".") for m in _MENTION.findall(text)))
        visibility = Visibility(command.visibility)
        return [ctx.event(EventKind.COMMENTED, state, text=text, visibility=visibility, mentions=mentions)]

    def _field_events(
        self, state: TicketState, values: Mapping[str, object], ctx: _Context, reason: str | None = None
    ) -> list[HistoryEvent]:
        typed = self.schema.validate(values)
        changes = {name: value for name, value in typed.items() if state.fields.get(name) != value}
        if not changes:
            return []
        return [ctx.event(EventKind.FIELDS_UPDATED, state, reason=reason, changes=MappingProxyType(changes))]


_HANDLERS: dict[type[Command], _Handler[Command]] = {
    Assign: Workflow._assign,
    Start: Workflow._start,
    Wait: Workflow._wait,
    Resume: Workflow._resume,
    Resolve: Workflow._resolve,
    Close: Workflow._close,
    Reopen: Workflow._reopen,
    UpdateFields: Workflow._update_fields,
    ChangePriority: Workflow._change_priority,
    AddComment: Workflow._comment,
}


def fold(state: TicketState | None, events: Iterable[HistoryEvent]) -> TicketState:
    """The state after `events`, starting from `state` (None: from nothing, a `created` first).

    Raises:
        ValueError: the events do not follow on (an event's from_status is not the status
            before it, or the first event of a new ticket is not `created`).
    """
    for event in events:
        if state is None:
            if event.kind is not EventKind.CREATED:
                raise ValueError(f"a ticket's history starts with `created`, not {event.kind}")
            state = TicketState(status=event.to_status, priority=str(event.data["priority"]))
        elif event.from_status is not state.status:
            raise ValueError(
                f"event {event.kind} starts from {event.from_status}, the ticket is {state.status}"
            )
        data = event.data
        fields = state.fields
        changes = data.get("changes")
        if isinstance(changes, Mapping):
            merged = {**fields, **changes}
            fields = MappingProxyType({k: v for k, v in merged.items() if v is not None})
        waiting_on = state.waiting_on if event.to_status is S.WAITING else None
        if "waiting_on" in data:
            waiting_on = WaitingOn(str(data["waiting_on"]))
        state = replace(
            state,
            status=event.to_status,
            priority=str(data.get("priority", state.priority)),
            assignee=str(data["assignee"]) if "assignee" in data else state.assignee,
            waiting_on=waiting_on,
            fields=fields,
            history=(*state.history, event),
        )
    if state is None:
        raise ValueError("no events: nothing to build a ticket from")
    return state


def replay(events: Iterable[HistoryEvent]) -> TicketState:
    """Rebuild a ticket's state from its whole history, e.g. as loaded from the store."""
    return fold(None, events)
