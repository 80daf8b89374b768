"""Why the ticket core refused something: every error names what is wrong and what would do."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class TicketError(ValueError):
    """Base of every refusal by the ticket core (bad fields, category, priority or transition)."""


class CategoryError(TicketError):
    """A category path that is not in the configured tree."""


class PriorityError(TicketError):
    """A priority that is neither a code (P1..P4) nor a configured name."""


class FieldValidationError(TicketError):
    """Some field values are invalid; `problems` maps every bad field to its reason."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        detail = "; ".join(f"{name}: {reason}" for name, reason in self.problems.items())
        super().__init__(f"invalid ticket field(s) {', '.join(self.problems)}: {detail}")


class MissingFieldsError(TicketError):
    """The ticket cannot be in `status` while these required fields are empty."""

    def __init__(self, status: str, fields: Iterable[str]) -> None:
        self.status = status
        self.fields = tuple(fields)
        super().__init__(f"a ticket that is {status} needs these fields filled in: {', '.join(self.fields)}")


class InvalidTransition(TicketError):
    """The command does not apply to a ticket in its current status (or would change nothing)."""

    def __init__(self, command: str, status: str, allowed: Iterable[str], detail: str | None = None) -> None:
        self.command = command
        self.status = status
        self.allowed = tuple(allowed)
        why = detail or f"cannot {command} a ticket that is {status}"
        super().__init__(f"{why}; allowed now: {', '.join(self.allowed) or 'nothing'}")
