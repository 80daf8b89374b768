"""Priority names (常规/紧急/加急) and the codes P1..P4 they stand for, looked up both ways."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cti_bridge.tickets.errors import PriorityError
from cti_bridge.tickets.model import PRIORITIES

if TYPE_CHECKING:
    from cti_bridge.config.model import PriorityNameConfig

Language = Literal["zh", "en"]


@dataclass(frozen=True, slots=True)
class PriorityName:
    key: str
    zh: str
    en: str
    priority: str  # P1..P4

    def label(self, language: Language) -> str:
        return self.zh if language == "zh" else self.en


DEFAULT_NAMES = (
    PriorityName("critical", "加急", "Critical", "P1"),
    PriorityName("urgent", "紧急", "Urgent", "P2"),
    PriorityName("regular", "常规", "Regular", "P3"),
)


class PriorityNames:
    """Each name stands for one code and each code has at most one name; a code without a
    name (P4 by default) is shown as the code itself."""

    def __init__(self, names: Iterable[PriorityName] = DEFAULT_NAMES) -> None:
        self.names = tuple(names)
        self._by_code = {name.priority: name for name in self.names}
        if len(self._by_code) != len(self.names) or not set(self._by_code) <= set(PRIORITIES):
            raise ValueError("each priority name needs its own code among P1..P4")

    @classmethod
    def from_config(cls, names: Iterable[PriorityNameConfig]) -> PriorityNames:
        return cls(PriorityName(n.key, n.zh, n.en, n.priority) for n in names)

    def code(self, text: str) -> str:
        """The code for a code, key, Chinese or English name: `紧急`, `urgent`, `Urgent`, `P2` -> `P2`.

        Raises:
            PriorityError: naming the accepted spellings.
        """
        wanted = text.strip()
        if wanted.upper() in PRIORITIES:
            return wanted.upper()
        folded = wanted.casefold()
        for name in self.names:
            if wanted == name.zh or folded in (name.key.casefold(), name.en.casefold()):
                return name.priority
        known = ", ".join(f"{n.zh}/{n.key}" for n in self.names)
        raise PriorityError(f"{text!r} is not a priority; use {', '.join(PRIORITIES)} or a name ({known})")

    def name(self, code: str) -> PriorityName | None:
        """The name configured for a code, None if it has none.

        Raises:
            PriorityError: `code` is not one of P1..P4.
        """
        if code not in PRIORITIES:
            raise PriorityError(f"{code!r} is not a priority code; use one of {', '.join(PRIORITIES)}")
        return self._by_code.get(code)

    def label(self, code: str, language: Language) -> str:
        """`P2` -> `紧急` (zh) or `Urgent` (en); the code itself when it has no name."""
        name = self.name(code)
        return name.label(language) if name is not None else code
