"""The CRM's JSON answer -> CrmProfile, through the field mapping of `crm.fields`.

Pure: no I/O. A field of the wrong type is left out and named in `problems` (the rest of the
record still counts); an answer whose record is not an object at all cannot be used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cti_bridge.config.model import CRM_ORDER_FIELDS, CRM_TEXT_FIELDS, CrmConfig, json_path_text
from cti_bridge.tickets.crm import CrmLookup, CrmOrder, CrmProfile

MAX_TEXT = 2000  # characters kept of one text value: the pop and the ticket are not an archive
_TRUE = frozenset({"true", "yes", "y", "1", "vip"})
_FALSE = frozenset({"false", "no", "n", "0", ""})


class CrmAnswerError(ValueError):
    """The answer has no usable record (e.g. text where an object was expected)."""


@dataclass(frozen=True, slots=True)
class MappedAnswer:
    lookup: CrmLookup
    problems: tuple[str, ...]  # fields left out, each with why


class _Missing:
    """A path that leads nowhere in the answer (a key or an index it does not have)."""


_MISSING = _Missing()


class _Mismatch(Exception):
    def __init__(self, at: tuple[str, ...], found: object) -> None:
        super().__init__(f"at {json_path_text(at)}: {_kind(found)} where an object or a list was expected")


def read_answer(config: CrmConfig, answer: Any, *, phone: str, fetched_at: float) -> MappedAnswer:
    """Map a decoded JSON answer to the caller's profile, or to "not known" (`profile` None).

    Raises:
        CrmAnswerError: the record at `crm.record` is neither an object, nor a list of them,
            nor missing/null/empty (which mean the CRM does not know the caller).
    """
    try:
        record = _walk(answer, config.record)
    except _Mismatch as exc:
        raise CrmAnswerError(f"no record in the answer: {exc}") from None
    if isinstance(record, list):
        record = record[0] if record else None
    if record is _MISSING or record is None or record == {}:
        return MappedAnswer(CrmLookup(phone=phone, profile=None, fetched_at=fetched_at), ())
    if not isinstance(record, dict):
        where = json_path_text(config.record)
        raise CrmAnswerError(f"the record at {where} is {_kind(record)}, not an object")
    problems: list[str] = []
    fields = config.fields
    texts = {name: _text(record, getattr(fields, name), name, problems) for name in CRM_TEXT_FIELDS}
    vip = _flag(record, fields.vip, problems)
    tier = texts["tier"]
    if tier is not None and tier.casefold() in {t.casefold() for t in config.vip_tiers}:
        vip = True
    orders: tuple[CrmOrder, ...] = ()
    if fields.orders is not None:
        orders = _orders(record, fields.orders, problems)
    profile = CrmProfile(**texts, vip=vip, orders=orders)
    if profile == CrmProfile() and not problems:
        keys = ", ".join(sorted(map(str, record))[:10]) or "none"
        problems.append(f"none of the mapped fields is in the record (its keys: {keys}); check crm.fields")
    return MappedAnswer(CrmLookup(phone=phone, profile=profile, fetched_at=fetched_at), tuple(problems))


def _walk(value: Any, path: tuple[str, ...]) -> Any:
    for index, step in enumerate(path):
        if isinstance(value, dict):
            value = value.get(step, _MISSING)
        elif isinstance(value, list):
            if not value:  # an empty list: nothing there, whatever the step
                return _MISSING
            if not step.isdigit():
                raise _Mismatch(path[:index], value)
            position = int(step)
            value = value[position] if position < len(value) else _MISSING
        elif value is None or value is _MISSING:
            return _MISSING
        else:
            raise _Mismatch(path[:index], value)
        if value is _MISSING:
            return value
    return value


def _get(record: dict[str, Any], path: tuple[str, ...], name: str, problems: list[str]) -> Any:
    try:
        return _walk(record, path)
    except _Mismatch as exc:
        problems.append(f"{name}: {exc}")
        return _MISSING


def _text(record: dict[str, Any], path: tuple[str, ...] | None, name: str, problems: list[str]) -> str | None:
    if path is None:
        return None
    value = _get(record, path, name, problems)
    if value is _MISSING or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        problems.append(f"{name}: {_kind(value)} at {json_path_text(path)}, where text was expected")
        return None
    return _clean(str(value))


def _flag(record: dict[str, Any], path: tuple[str, ...] | None, problems: list[str]) -> bool | None:
    if path is None:
        return None
    value = _get(record, path, "vip", problems)
    if value is _MISSING or value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().casefold() in _TRUE | _FALSE:
        return value.strip().casefold() in _TRUE
    problems.append(f"vip: {_kind(value)} at {json_path_text(path)}, where true or false was expected")
    return None


def _orders(record: dict[str, Any], spec: Any, problems: list[str]) -> tuple[CrmOrder, ...]:
    value = _get(record, spec.path, "orders", problems)
    if value is _MISSING or value is None:
        return ()
    if not isinstance(value, list):
        problems.append(f"orders: {_kind(value)} at {json_path_text(spec.path)}, where a list was expected")
        return ()
    orders = []
    for index, item in enumerate(value[: spec.limit]):
        if not isinstance(item, dict):
            problems.append(f"orders[{index}]: {_kind(item)}, where an object was expected")
            continue
        found = {
            name: _text(item, getattr(spec, name), f"orders[{index}].{name}", problems)
            for name in CRM_ORDER_FIELDS
        }
        if any(v is not None for v in found.values()):
            orders.append(CrmOrder(**found))
    return tuple(orders)


def _clean(text: str) -> str | None:
    """Text fit to store and show: no control characters or lone surrogates, not endless."""
    text = text.encode("utf-8", "replace").decode("utf-8")  # a JSON "\ud800" has no UTF-8 form
    text = "".join(ch for ch in text if ch >= " " or ch in "\n\t").strip()
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "…"
    return text or None


def _kind(value: object) -> str:
    match value:
        case bool():
            return "true/false"
        case int() | float():
            return "a number"
        case str():
            return "text"
        case list():
            return "a list"
        case dict():
            return "an object"
        case None:
            return "null"
    return type(value).__name__
