"""Phone numbers: normalisation to E.164 and masking for logs."""

from __future__ import annotations

import functools

import phonenumbers


@functools.lru_cache(maxsize=65536)
def to_e164(number: str | None, default_region: str) -> str | None:
    """Normalise a caller number to E.164, or None when it is not a dialable number.

    Args:
        number: as the PBX gave it (`+8613800138000`, `013800138000`, `1001`, ...).
        default_region: ISO country assumed for numbers without a leading +.
    """
    if not number:
        return None
    candidate = number.strip()
    if candidate.startswith("00"):
        candidate = "+" + candidate[2:]
    try:
        parsed = phonenumbers.parse(candidate, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def dialable(e164: str, number_format: str) -> str:
    """An E.164 number as a PBX's outbound dialplan expects it.

    Args:
        e164: e.g. +8613800138000.
        number_format: digits (8613800138000), e164 (+8613800138000) or national (013800138000).

    Raises:
        ValueError: the number cannot be read.
    """
    if number_format == "e164":
        return e164
    if number_format == "digits":
        return e164.lstrip("+")
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from None
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(ch for ch in national if ch.isdigit())


def mask(number: str) -> str:
    """Keep the country prefix and last three digits: +86138*****000."""
    digits = sum(ch.isdigit() for ch in number)
    if digits <= 4:
        return number
    keep_head = 4 if number.startswith("+") else 3
    head, tail = number[:keep_head], number[-3:]
    return head + "*" * (len(number) - keep_head - 3) + tail
