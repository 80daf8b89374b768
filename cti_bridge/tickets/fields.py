"""The ticket's fields: standard and custom, typed values, and what each status requires."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

import regex

from cti_bridge.phone import to_e164
from cti_bridge.tickets.categories import CategoryTree
from cti_bridge.tickets.errors import FieldValidationError, MissingFieldsError, TicketError
from cti_bridge.tickets.model import TicketStatus
from cti_bridge.tickets.priorities import PriorityNames

if TYPE_CHECKING:
    from cti_bridge.config.model import TicketConfig

FieldValue = str | int | float | bool | date | tuple[str, ...]


class FieldType(StrEnum):
    TEXT = "text"
    LONG_TEXT = "long_text"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATE = "date"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"
    PHONE = "phone"
    EMAIL = "email"
    # Only standard fields have these two: their values come from the tree and the priority names.
    CATEGORY = "category"
    PRIORITY = "priority"


CUSTOM_TYPES = frozenset(FieldType) - {FieldType.CATEGORY, FieldType.PRIORITY}


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    name: str
    type: FieldType
    zh: str
    en: str
    choices: tuple[str, ...] = ()
    pattern: str | None = None  # full match, text fields
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    standard: bool = False


def _standard(name: str, kind: FieldType, zh: str, en: str, max_length: int | None = None) -> FieldSpec:
    return FieldSpec(name=name, type=kind, zh=zh, en=en, max_length=max_length, standard=True)


STANDARD_FIELDS = (
    _standard("subject", FieldType.TEXT, "主题", "Subject", 200),
    _standard("category", FieldType.CATEGORY, "分类", "Category"),
    _standard("customer_name", FieldType.TEXT, "客户姓名", "Customer name", 100),
    _standard("contact_phone", FieldType.PHONE, "联系电话", "Contact phone"),
    _standard("contact_email", FieldType.EMAIL, "联系邮箱", "Contact email"),
    _standard("problem_type", FieldType.TEXT, "问题类型", "Problem type", 100),
    _standard("description", FieldType.LONG_TEXT, "问题描述", "Description", 20_000),
    _standard("urgency", FieldType.PRIORITY, "紧急程度", "Urgency"),
    _standard("product_model", FieldType.TEXT, "产品型号", "Product model", 100),
    _standard("order_number", FieldType.TEXT, "订单号", "Order number", 64),
    # What the caller chose in the IVR, e.g. "main: 2 > billing: 1" (set from the call).
    _standard("ivr_path", FieldType.TEXT, "IVR 选择", "IVR choices", 500),
    _standard("resolution", FieldType.LONG_TEXT, "解决方案", "Resolution", 20_000),
)
STANDARD_FIELD_NAMES = frozenset(spec.name for spec in STANDARD_FIELDS)

# A field's pattern (from the config) runs on what a person typed, in a web request on the event
# loop: with a time limit, so a pattern that backtracks catastrophically refuses the value
# instead of stalling every other request.
PATTERN_TIME_LIMIT = 0.1  # seconds


def _fullmatch(pattern: str, text: str) -> bool:
    try:
        return regex.fullmatch(pattern, text, timeout=PATTERN_TIME_LIMIT) is not None
    except TimeoutError:
        raise ValueError(
            f"could not be checked against the pattern {pattern} in {PATTERN_TIME_LIMIT:g}s; "
            "shorten the value, or ask an admin to simplify the pattern"
        ) from None


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_TRUE = {"true", "yes", "y", "1", "on", "是"}
_FALSE = {"false", "no", "n", "0", "off", "否"}


def is_empty(value: object) -> bool:
    """Unset, blank text or no choice: what a required field may not be (False and 0 are set)."""
    return value is None or (isinstance(value, (str, tuple, list)) and not value)


class FieldSchema:
    """Standard fields, the configured custom fields, and the fields each status requires."""

    def __init__(
        self,
        custom: Iterable[FieldSpec] = (),
        *,
        required: Mapping[TicketStatus, Iterable[str]] | None = None,
        categories: CategoryTree | None = None,
        priorities: PriorityNames | None = None,
        phone_region: str = "CN",
    ) -> None:
        """Raises ValueError on a custom field named like another or a required field not defined."""
        self.specs: dict[str, FieldSpec] = {spec.name: spec for spec in STANDARD_FIELDS}
        for spec in custom:
            if spec.name in self.specs:
                raise ValueError(f"field {spec.name!r} is defined twice (or is a standard field)")
            self.specs[spec.name] = spec
        self._required = {TicketStatus(s): tuple(names) for s, names in (required or {}).items()}
        unknown = sorted({n for names in self._required.values() for n in names} - set(self.specs))
        if unknown:
            raise ValueError(f"required field(s) not defined: {', '.join(unknown)}")
        self.categories = categories or CategoryTree()
        self.priorities = priorities or PriorityNames()
        self._region = phone_region

    @classmethod
    def from_config(cls, config: TicketConfig, *, phone_region: str = "CN") -> FieldSchema:
        custom = (
            FieldSpec(
                name=f.name,
                type=FieldType(f.type),
                zh=f.zh or f.name,
                en=f.en or f.name,
                choices=tuple(f.choices or ()),
                pattern=f.pattern,
                max_length=f.max_length,
                minimum=f.min,
                maximum=f.max,
            )
            for f in config.fields
        )
        return cls(
            custom,
            required={TicketStatus(s): names for s, names in config.required_fields.items()},
            categories=CategoryTree.from_config(config.categories),
            priorities=PriorityNames.from_config(config.priority_names),
            phone_region=phone_region,
        )

    def required_for(self, status: TicketStatus) -> tuple[str, ...]:
        return self._required.get(status, ())

    def missing(self, status: TicketStatus, values: Mapping[str, object]) -> tuple[str, ...]:
        """The fields `status` requires that are empty in `values`, in configured order."""
        return tuple(name for name in self.required_for(status) if is_empty(values.get(name)))

    def check_required(self, status: TicketStatus, values: Mapping[str, object]) -> None:
        """Raises MissingFieldsError naming every required field that is empty."""
        missing = self.missing(status, values)
        if missing:
            raise MissingFieldsError(status, missing)

    def validate(self, values: Mapping[str, object]) -> dict[str, FieldValue | None]:
        """Check and convert field values as typed in a form, an API call or a rule.

        Args:
            values: field name -> raw value; None or blank text clears the field.

        Returns:
            field name -> typed value (str, int, float, bool, date or a tuple of choices),
            None for a cleared field; categories and priorities in their canonical form.

        Raises:
            FieldValidationError: naming every unknown or invalid field and why.
        """
        typed: dict[str, FieldValue | None] = {}
        problems: dict[str, str] = {}
        for name, raw in values.items():
            spec = self.specs.get(name)
            if spec is None:
                problems[name] = "no such field"
                continue
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                typed[name] = None
                continue
            try:
                typed[name] = self._convert(spec, raw)
            except (TicketError, ValueError, TypeError) as exc:
                problems[name] = str(exc)
        if problems:
            raise FieldValidationError(problems)
        return typed

    def accepted(self, values: Mapping[str, object]) -> dict[str, FieldValue]:
        """The values that `validate` would take, typed; unknown, blank or invalid ones dropped.

        For values no person typed (the dialplan's, say), where one bad value must not lose
        the others.
        """
        typed: dict[str, FieldValue] = {}
        for name, raw in values.items():
            try:
                value = self.validate({name: raw}).get(name)
            except FieldValidationError:
                continue
            if value is not None:
                typed[name] = value
        return typed

    def _convert(self, spec: FieldSpec, raw: object) -> FieldValue:
        value = _CONVERTERS[spec.type](self, spec, raw)
        if isinstance(value, str) and spec.max_length is not None and len(value) > spec.max_length:
            raise ValueError(f"longer than {spec.max_length} characters")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if spec.minimum is not None and value < spec.minimum:
                raise ValueError(f"less than the minimum {spec.minimum:g}")
            if spec.maximum is not None and value > spec.maximum:
                raise ValueError(f"more than the maximum {spec.maximum:g}")
        return value

    def _text(self, spec: FieldSpec, raw: object) -> str:
        text = _string(raw).strip()
        if spec.pattern is not None and not _fullmatch(spec.pattern, text):
            raise ValueError(f"{text!r} does not match the pattern {spec.pattern}")
        return text

    def _long_text(self, spec: FieldSpec, raw: object) -> str:
        return _string(raw).strip()

    def _number(self, spec: FieldSpec, raw: object) -> float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise TypeError("expected a number")
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError("expected a finite number")
        return number

    def _integer(self, spec: FieldSpec, raw: object) -> int:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise TypeError("expected a whole number")
        if isinstance(raw, float):
            if not raw.is_integer():
                raise ValueError(f"{raw!r} is not a whole number")
            return int(raw)
        try:
            return int(raw.strip()) if isinstance(raw, str) else int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None

    def _boolean(self, spec: FieldSpec, raw: object) -> bool:
        if isinstance(raw, bool):
            return raw
        word = _string(raw).strip().casefold()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError(f"{raw!r} is not yes/no")

    def _date(self, spec: FieldSpec, raw: object) -> date:
        if isinstance(raw, datetime):
            raise TypeError("expected a date without a time of day")
        if isinstance(raw, date):
            return raw
        try:
            return date.fromisoformat(_string(raw).strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a date; write YYYY-MM-DD") from None

    def _choice(self, spec: FieldSpec, raw: object) -> str:
        text = _string(raw).strip()
        if text not in spec.choices:
            raise ValueError(f"{text!r} is not one of: {', '.join(spec.choices)}")
        return text

    def _multi_choice(self, spec: FieldSpec, raw: object) -> tuple[str, ...]:
        if isinstance(raw, str) or not isinstance(raw, (list, tuple, set, frozenset)):
            raise TypeError("expected a list of choices")
        picked = [self._choice(spec, item) for item in raw]
        return tuple(dict.fromkeys(picked))

    def _phone(self, spec: FieldSpec, raw: object) -> str:
        number = to_e164(_string(raw), self._region)
        if number is None:
            raise ValueError(f"{raw!r} is not a phone number")
        return number

    def _email(self, spec: FieldSpec, raw: object) -> str:
        text = _string(raw).strip()
        if not _EMAIL.match(text):
            raise ValueError(f"{text!r} is not an e-mail address")
        return text

    def _category(self, spec: FieldSpec, raw: object) -> str:
        return self.categories.canonical(_string(raw))

    def _priority(self, spec: FieldSpec, raw: object) -> str:
        return self.priorities.code(_string(raw))


def _string(raw: object) -> str:
    if not isinstance(raw, str):
        raise TypeError(f"expected text, not {type(raw).__name__}")
    return raw


_CONVERTERS: dict[FieldType, Callable[[FieldSchema, FieldSpec, object], FieldValue]] = {
    FieldType.TEXT: FieldSchema._text,
    FieldType.LONG_TEXT: FieldSchema._long_text,
    FieldType.NUMBER: FieldSchema._number,
    FieldType.INTEGER: FieldSchema._integer,
    FieldType.BOOLEAN: FieldSchema._boolean,
    FieldType.DATE: FieldSchema._date,
    FieldType.CHOICE: FieldSchema._choice,
    FieldType.MULTI_CHOICE: FieldSchema._multi_choice,
    FieldType.PHONE: FieldSchema._phone,
    FieldType.EMAIL: FieldSchema._email,
    FieldType.CATEGORY: FieldSchema._category,
    FieldType.PRIORITY: FieldSchema._priority,
}
