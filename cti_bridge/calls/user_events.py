"""What a site's dialplan says in UserEvents: survey scores, IVR choices, ticket fields.

Sites name their UserEvents and headers their own way (`UserEvent(SurveyResult,Score: 4)`,
`UserEvent(Survey,Rating: 4)`, `UserEvent(IVRChoice,...)`); the config maps them
(`user_events:` in the YAML). Names are matched without case, as Asterisk itself matches
header names. Pure: no I/O, no logging.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from cti_bridge.calls import events as ev


@dataclass(frozen=True, slots=True, kw_only=True)
class SurveyMapping:
    event: str
    score: str = "Score"  # header with the caller's 1-5 score
    call: str | None = "CallLinkedid"  # header naming the call's Linkedid, when not its own


@dataclass(frozen=True, slots=True, kw_only=True)
class IvrMapping:
    event: str
    choice: str = "Choice"  # header with the key or option chosen
    menu: str | None = "Menu"  # header naming the menu
    menu_name: str | None = None  # the menu's name when the event carries none


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldMapping:
    event: str
    fields: Mapping[str, str] = field(default_factory=dict)  # ticket field -> header


@dataclass(frozen=True, slots=True)
class SurveyReading:
    linkedid: str  # the call the score is for
    raw_score: str | None  # as sent; None when the header is missing
    mapping: SurveyMapping


@dataclass(frozen=True, slots=True)
class UserEventReading:
    """What one UserEvent meant under the site's mappings (several may match one event)."""

    surveys: tuple[SurveyReading, ...] = ()
    ivr_choices: tuple[tuple[str, str], ...] = ()
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.surveys or self.ivr_choices or self.fields)


# The sample dialplan's own conventions (asterisk/extensions.conf): the default mappings.
DEFAULT_SURVEYS = (SurveyMapping(event="SurveyResult"),)
DEFAULT_IVRS = (IvrMapping(event="IvrChoice"),)


class UserEventRules:
    """Reads UserEvents by the configured mappings."""

    def __init__(
        self,
        surveys: Iterable[SurveyMapping] = DEFAULT_SURVEYS,
        ivrs: Iterable[IvrMapping] = DEFAULT_IVRS,
        fields: Iterable[FieldMapping] = (),
    ) -> None:
        self._surveys = _by_event(surveys)
        self._ivrs = _by_event(ivrs)
        self._fields = _by_event(fields)

    def read(self, event: ev.UserEventReceived) -> UserEventReading:
        name = event.name.lower()
        headers = {key.lower(): value for key, value in event.fields}
        surveys = tuple(
            SurveyReading(
                (headers.get(m.call.lower()) if m.call else None) or event.linkedid,
                headers.get(m.score.lower()),
                m,
            )
            for m in self._surveys.get(name, ())
        )
        choices: list[tuple[str, str]] = []
        for m in self._ivrs.get(name, ()):
            menu = (headers.get(m.menu.lower()) if m.menu else None) or m.menu_name
            choice = headers.get(m.choice.lower())
            # A choice without its menu cannot be told apart from another menu's: ignored.
            if menu and choice:
                choices.append((menu, choice))
        values = [
            (name_, headers[header.lower()])
            for m in self._fields.get(name, ())
            for name_, header in m.fields.items()
            if headers.get(header.lower(), "").strip()
        ]
        return UserEventReading(surveys, tuple(choices), tuple(values))


_M = TypeVar("_M", SurveyMapping, IvrMapping, FieldMapping)


def _by_event(mappings: Iterable[_M]) -> dict[str, tuple[_M, ...]]:
    grouped: dict[str, list[_M]] = {}
    for mapping in mappings:
        grouped.setdefault(mapping.event.lower(), []).append(mapping)
    return {name: tuple(group) for name, group in grouped.items()}
