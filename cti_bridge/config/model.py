"""The configuration schema: one pydantic model per section, unknown keys refused."""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
import string
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import regex
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

# The validation context key load_config sets: the config comes from a file an admin wrote
# (some values make sense only to a program building a config, e.g. web.port 0 in tests).
FROM_FILE = "from_file"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
# Ten years: a longer wait is a typo; and timedelta itself overflows (OverflowError, not a
# validation error) near 2.7 million years.
_LONGEST = timedelta(days=3650)


def _parse_duration(value: object) -> object:
    """Accept `90`, `90s`, `15m`, `24h`, `2d`, `250ms` as well as timedelta."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 15m, 24h or 2d")
        number, unit = match.groups()
        seconds = float(number) * _UNIT_SECONDS[unit]
    else:
        return value
    if not math.isfinite(seconds) or abs(seconds) > _LONGEST.total_seconds():
        raise ValueError(f"{value!r} is not a duration of at most {_LONGEST.days}d")
    return timedelta(seconds=seconds)


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("a duration cannot be negative")
    if value > _LONGEST:
        raise ValueError(f"at most {_LONGEST.days}d")
    return value


def _longer_than_zero(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return _not_negative(value)


# Every duration is at least 0; those where 0 has a meaning say it in their description
# (`0 = never`). The others are PositiveDuration: a 0s period would spin or time out at once.
Duration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_not_negative)]
PositiveDuration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_longer_than_zero)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Section):
    """Where a secret comes from: an environment variable or a file, never the YAML itself."""

    env: str | None = Field(None, description="Name of the environment variable holding it.")
    file: Path | None = Field(None, description="File holding it (trailing newline stripped).")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of `env: VARIABLE` or `file: /path/to/secret`")
        return self


def _no_clear_secret(value: object) -> object:
    if isinstance(value, str):
        raise ValueError(
            "secrets are never written in the YAML in clear; "
            "use `{env: VARIABLE}` or `{file: /path/to/secret}`"
        )
    return value


SecretSource = Annotated[SecretRef, BeforeValidator(_no_clear_secret)]


class ReconnectConfig(_Section):
    initial_delay: PositiveDuration = Field(timedelta(seconds=1), description="First retry delay.")
    max_delay: PositiveDuration = Field(timedelta(seconds=30), description="Backoff ceiling.")

    @model_validator(mode="after")
    def _ceiling_above_start(self) -> ReconnectConfig:
        if self.max_delay < self.initial_delay:
            _raise_located(
                "ReconnectConfig",
                [(("max_delay",), f"the ceiling is below initial_delay ({self.initial_delay})")],
            )
        return self


class PathMapping(_Section):
    """The PBX writes recordings under `pbx`; this host sees the same files under `local`."""

    pbx: str = Field(description="Directory as the PBX names it, e.g. /var/spool/asterisk/monitor")
    local: Path = Field(description="Same directory as mounted on this host.")


class OriginateConfig(_Section):
    """Click-to-dial: the daemon rings the agent's phone, then dials the customer from it.

    A separate AMI account with `write = originate` (asterisk/manager.conf, [cti-bridge-dial]):
    the daemon's own account stays read-only.
    """

    username: str = Field(description="The AMI account allowed to Originate.")
    secret: SecretSource
    context: str = Field("from-internal", description="Dialplan context the customer's number is dialled in.")
    dial_prefix: str = Field(
        "", pattern=r"^[0-9*#]*$", description="Digits put before the number, e.g. 9 for an outside line."
    )
    number_format: Literal["digits", "e164", "national"] = Field(
        "digits",
        description="How the number is dialled: digits (E.164 without +, e.g. 8613800138000), e164 "
        "(+8613800138000) or national (013800138000).",
    )
    ring_timeout: PositiveDuration = Field(
        timedelta(seconds=30), description="How long the agent's phone rings before the attempt is dropped."
    )


class TlsClientConfig(_Section):
    """TLS to the broker (`mqtt.tls`) or a PBX (`pbxs[].tls`): whom to trust as the server, and the
    bridge's own certificate where the server asks for one (mosquitto `require_certificate true`;
    Asterisk's AMI never does, a TLS terminator in front of it may)."""

    ca: Path | None = Field(
        None,
        description="PEM file of the CA (or the self-signed certificate) the server's certificate is "
        "checked against; default: the system's trust store.",
    )
    verify_hostname: bool = Field(
        True, description="The certificate must name `host` (DNS name or IP address); false: any name."
    )
    certificate: Path | None = Field(
        None, description="PEM file of the bridge's client certificate (with its chain, if any)."
    )
    key: Path | None = Field(
        None, description="PEM file of the client certificate's private key; default: in `certificate`."
    )
    key_password: SecretSource | None = Field(None, description="Passphrase of an encrypted key.")

    @model_validator(mode="after")
    def _key_needs_certificate(self) -> TlsClientConfig:
        if self.certificate is None and (self.key is not None or self.key_password is not None):
            raise ValueError("`key` and `key_password` go with `certificate`: give the client certificate")
        return self


def _tls_port(data: object, tls_port: int) -> object:
    """With `tls` given and no `port`, the protocol's TLS port: a TLS client on the plain port
    only times out in its handshake, which tells the reader less than the default port would."""
    if isinstance(data, dict) and data.get("tls") is not None and "port" not in data:
        return {**data, "port": tls_port}
    return data


class PbxConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Short unique name of this PBX.")
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535, description="AMI port; 5039 when `tls` is given.")
    tls: TlsClientConfig | None = Field(
        None, description="Connect over TLS (manager.conf tlsenable); plain TCP when absent."
    )
    username: str
    secret: SecretSource
    ping_interval: PositiveDuration = Field(
        timedelta(seconds=10), description="Keep-alive Ping period; no answer in one period = dead."
    )
    reconnect: ReconnectConfig = ReconnectConfig()
    inbound_contexts: list[str] = Field(
        default_factory=lambda: ["from-pstn"],
        description="Dialplan contexts where calls from outside enter: these calls get tickets.",
    )
    outbound_contexts: list[str] = Field(default_factory=list, description="Contexts agents dial out from.")
    inbound_dids: list[str] = Field(
        default_factory=list,
        description="Extensions that are always inbound DIDs, whatever context they arrive in.",
    )
    recording_paths: list[PathMapping] = Field(
        default_factory=list, description="PBX recording directory -> local directory."
    )
    ivr_variables: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list,
        description="Channel variables the dialplan sets to the caller's IVR choice, e.g. IVR_CHOICE; "
        "ticket rules match them by name under `when.ivr`.",
    )
    originate: OriginateConfig | None = Field(None, description="Click-to-dial; off when absent.")
    ticket_variable: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = Field(
        "CTI_TICKET",
        description="Channel variable naming the ticket a call belongs to (set by click-to-dial, or "
        "by the dialplan); null: none.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_tls_port(cls, data: object) -> object:
        return _tls_port(data, 5039)


class AgentConfig(_Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.@-]+$", description="Agent id used in MQTT topics.")
    name: str = ""
    interfaces: list[str] = Field(
        default_factory=list,
        description="Device interfaces that ring this agent, e.g. PJSIP/1001 or Local/1001@agents.",
    )
    extension: str | None = Field(
        None, description="Shortcut: any TECH/<extension> interface belongs to this agent."
    )
    pbx: str | None = Field(None, description="Restrict the mapping to one PBX by name.")
    phone: str | None = Field(
        None,
        description="The device click-to-dial rings first, e.g. PJSIP/1001 (default: the first interface, "
        "else PJSIP/<extension>).",
    )
    skills: list[str] = Field(default_factory=list)
    team: str | None = None

    @model_validator(mode="after")
    def _has_a_device(self) -> AgentConfig:
        if not self.interfaces and not self.extension:
            raise ValueError("an agent needs `interfaces` or `extension` to be recognised")
        return self


Priority = Literal["P1", "P2", "P3", "P4"]


class RuleMatch(_Section):
    """All given conditions must hold; each list matches any of its values."""

    pbx: list[str] | None = None
    queue: list[str] | None = None
    did: list[str] | None = None


# Patterns from the config run on texts callers and agents supply (transcripts, descriptions,
# typed values), so they run with the `regex` package's time limit: a pattern that backtracks
# catastrophically on some text stops there instead of stalling the daemon. A pattern that
# does so on a simple probe text is refused at load: it would time out on real texts too.
_PROBE_LENGTH = 1000
PROBE_TIMEOUT = 0.05  # seconds; a sound pattern reads 1,000 characters in well under 1 ms
_REPRESENTATIVES = "a1 中-_.@"  # letters, digits, spaces, CJK and punctuation, for \w \d \s . and classes
_MAX_PROBE_CHARACTERS = 16


def _probes(text: str) -> list[str]:
    """Texts long enough to make a catastrophic pattern backtrack, then fail at their end."""
    characters = dict.fromkeys(ch for ch in text + _REPRESENTATIVES if ch not in "\\()[]{}|?*+^$")
    chosen = "".join(list(characters)[:_MAX_PROBE_CHARACTERS])
    # NUL ends each probe: almost no pattern wants it, so the matcher backtracks all it can.
    probes = [ch * _PROBE_LENGTH + "\0" for ch in chosen]
    probes.append(chosen * (_PROBE_LENGTH // len(chosen)) + "\0")
    return probes


def catastrophic_on(pattern: regex.Pattern[str], *, full: bool = False) -> str | None:
    """A probe text on which the pattern runs out of time, or None when it reads them all quickly.

    Args:
        pattern: the compiled pattern.
        full: probe as `fullmatch` does (a text field's pattern); else as `search` does.
    """
    run = pattern.fullmatch if full else pattern.search
    for probe in _probes(pattern.pattern):
        try:
            run(probe, timeout=PROBE_TIMEOUT)
        except TimeoutError:
            return probe
    return None


def _catastrophe(value: str, probe: str) -> str:
    shown = f"{probe[0]!r} x {_PROBE_LENGTH}" if len(set(probe[:-1])) == 1 else f"{len(probe) - 1} characters"
    return (
        f"{value!r} takes more than {PROBE_TIMEOUT * 1000:g} ms on a probe text ({shown}): it backtracks "
        "catastrophically (a repeated group whose content can match the same text in several ways, "
        "e.g. (a+)+ or (a|aa)*); rewrite it without the nested repetition"
    )


def compile_pattern(value: str, *, full: bool = False) -> regex.Pattern[str]:
    """Compile a pattern from the config, refusing one that is invalid or catastrophic.

    Raises:
        ValueError: saying what is wrong with the pattern.
    """
    try:
        pattern = regex.compile(value)
    except regex.error as exc:
        msg, pos = exc.msg, exc.pos
        try:
            # Python's own messages say more (where a group or set starts, not where it ends).
            re.compile(value)
        except re.error as re_exc:
            msg, pos = re_exc.msg, re_exc.pos
        where = f" at position {pos}" if pos is not None else ""
        raise ValueError(f"{value!r} is not a valid regular expression: {msg}{where}") from None
    if (probe := catastrophic_on(pattern, full=full)) is not None:
        raise ValueError(_catastrophe(value, probe))
    return pattern


def _compile_regex(value: object) -> object:
    """Compile at load time, so a bad pattern is reported at its key and never at call time."""
    if isinstance(value, str):
        return compile_pattern(value)
    if isinstance(value, regex.Pattern):
        return value
    raise ValueError("a regular expression is text, e.g. '订单号[:：]?(\\w+)'")


Regex = Annotated[
    regex.Pattern,
    PlainValidator(_compile_regex),
    PlainSerializer(lambda pattern: pattern.pattern, return_type=str),
]
TextSource = Literal["description", "transcript"]
TEXT_SOURCES: tuple[TextSource, ...] = ("description", "transcript")


def _digits_as_text(value: object) -> object:
    # `ivr: {main: [2]}` reads the keypress as a YAML number; the PBX sends it as text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


IvrChoice = Annotated[str, BeforeValidator(_digits_as_text), Field(min_length=1)]


def _not_blank(keyword: str) -> str:
    if not keyword.strip():
        raise ValueError("a keyword cannot be blank: it would be found in any text")
    return keyword


Keyword = Annotated[str, AfterValidator(_not_blank)]


class TicketRuleMatch(RuleMatch):
    """A ticket rule's conditions: the call's routing, the caller's IVR choices and the ticket's texts."""

    ivr: dict[str, list[IvrChoice]] | None = Field(
        None, description="IVR menu (or variable) -> accepted choices: the caller's last choice in each."
    )
    keywords: list[Keyword] | None = Field(
        None, min_length=1, description="Any of these words in the texts, ignoring case."
    )
    regex: Regex | None = Field(None, description="A Python regular expression searched in the texts.")
    sources: list[TextSource] = Field(
        default_factory=lambda: list(TEXT_SOURCES),
        alias="in",
        min_length=1,
        description="The texts that keywords, regex and the rule's extract read.",
    )


class TicketRule(_Section):
    name: str = Field(description="Shown in the ticket history as the rule that fired.")
    when: TicketRuleMatch
    category: str | None = Field(None, description="Category path, e.g. 技术故障/网络问题")
    priority: Priority | None = None
    extract: dict[str, Regex] = Field(
        default_factory=dict,
        description="Ticket field -> regex: its capture group, or the group named after the field.",
    )

    @model_validator(mode="after")
    def _does_something(self) -> TicketRule:
        if self.category is None and self.priority is None and not self.extract:
            raise ValueError("a rule needs a category, a priority or extract: this one does nothing")
        return self

    @field_validator("extract")
    @classmethod
    def _one_value_per_pattern(cls, extract: dict[str, regex.Pattern[str]]) -> dict[str, regex.Pattern[str]]:
        _raise_located(
            "extract",
            [
                (
                    (name,),
                    f"needs one capture group around the value (it has {pattern.groups}), "
                    f"or a group named (?P<{name}>...)",
                )
                for name, pattern in extract.items()
                if pattern.groups != 1 and name not in pattern.groupindex
            ],
        )
        return extract


TicketStatusName = Literal["assigned", "in_progress", "waiting", "resolved", "closed"]
FieldTypeName = Literal[
    "text", "long_text", "number", "integer", "boolean", "date", "choice", "multi_choice", "phone", "email"
]
_KEY = r"^[a-z0-9][a-z0-9_-]*$"


def _no_slash(label: str) -> str:
    if "/" in label:
        raise ValueError("a label cannot contain `/`: it separates the levels of a path")
    if label != label.strip() or not label:
        raise ValueError("a label cannot be blank or start or end with spaces")
    return label


Label = Annotated[str, AfterValidator(_no_slash)]


class CategoryNodeConfig(_Section):
    """One node of the category tree: 大类, 子类 or 场景."""

    key: str = Field(pattern=_KEY, description="Stable code, e.g. network; unique among its siblings.")
    zh: Label = Field(description="Chinese label, e.g. 网络问题; paths are stored with these.")
    en: Label = Field(description="English label, e.g. Network.")
    children: list[CategoryNodeConfig] = Field(default_factory=list, description="The next level down.")


class CategoriesConfig(_Section):
    """The three-level tree (大类 → 子类 → 场景); empty = categories are free text."""

    min_depth: int = Field(
        3,
        ge=1,
        le=3,
        description="Levels a path needs unless it ends at a node without children (3 = down to a 场景).",
    )
    tree: list[CategoryNodeConfig] = Field(default_factory=list, description="The 大类, in display order.")

    @model_validator(mode="after")
    def _well_formed(self) -> CategoriesConfig:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        _check_level(self.tree, ("tree",), 1, problems)
        _raise_located("CategoriesConfig", problems)
        return self


def _check_level(
    nodes: list[CategoryNodeConfig],
    loc: tuple[str | int, ...],
    depth: int,
    problems: list[tuple[tuple[str | int, ...], str]],
) -> None:
    seen: dict[str, set[str]] = {"key": set(), "zh": set(), "en": set()}
    for index, node in enumerate(nodes):
        for attr, folded in (("key", node.key), ("zh", node.zh), ("en", node.en.casefold())):
            if folded in seen[attr]:
                problems.append(
                    ((*loc, index, attr), f"{getattr(node, attr)!r} is used by a sibling already")
                )
            seen[attr].add(folded)
        if node.children and depth == 3:
            problems.append(((*loc, index, "children"), "the tree has three levels: a 场景 has no children"))
        _check_level(node.children, (*loc, index, "children"), depth + 1, problems)


class PriorityNameConfig(_Section):
    """A name for a priority code, e.g. 紧急 (urgent) = P2."""

    key: str = Field(pattern=_KEY, description="Stable code, e.g. urgent.")
    zh: Label = Field(description="Chinese name, e.g. 紧急.")
    en: Label = Field(description="English name, e.g. Urgent.")
    priority: Priority = Field(description="The code it stands for; one name per code.")


class TicketFieldConfig(_Section):
    """A custom ticket field (the standard ones are built in)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Field name, e.g. warranty_until.")
    type: FieldTypeName = "text"
    zh: str | None = Field(None, description="Chinese label (defaults to the name).")
    en: str | None = Field(None, description="English label (defaults to the name).")
    choices: list[str] | None = Field(None, description="The values of a choice or multi_choice field.")
    pattern: str | None = Field(None, description="Regular expression a text value must match in full.")
    max_length: int | None = Field(None, ge=1, description="Longest text accepted.")
    min: float | None = Field(None, description="Smallest number accepted.")
    max: float | None = Field(None, description="Largest number accepted.")

    @model_validator(mode="after")
    def _consistent(self) -> TicketFieldConfig:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.type in ("choice", "multi_choice"):
            if not self.choices:
                problems.append((("choices",), f"a {self.type} field needs at least one choice"))
            else:
                for index, choice in enumerate(self.choices):
                    if not choice.strip() or choice != choice.strip():
                        problems.append(
                            (("choices", index), "a choice cannot be blank or padded with spaces")
                        )
                    elif self.choices.index(choice) != index:
                        problems.append((("choices", index), f"{choice!r} is listed twice"))
        elif self.choices is not None:
            problems.append(
                (("choices",), f"only choice and multi_choice fields have choices, not {self.type}")
            )
        if self.pattern is not None:
            if self.type != "text":
                problems.append((("pattern",), f"only text fields have a pattern, not {self.type}"))
            else:
                try:
                    # Run with fullmatch on what people type (tickets/fields.py).
                    compile_pattern(self.pattern, full=True)
                except ValueError as exc:
                    problems.append((("pattern",), str(exc)))
        if (self.min is not None or self.max is not None) and self.type not in ("number", "integer"):
            problems.append((("min" if self.min is not None else "max",), "only numbers have min and max"))
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append((("min",), f"min {self.min:g} is more than max {self.max:g}"))
        _raise_located("TicketFieldConfig", problems)
        return self


def _default_priority_names() -> list[PriorityNameConfig]:
    return [
        PriorityNameConfig(key="critical", zh="加急", en="Critical", priority="P1"),
        PriorityNameConfig(key="urgent", zh="紧急", en="Urgent", priority="P2"),
        PriorityNameConfig(key="regular", zh="常规", en="Regular", priority="P3"),
    ]


def _raise_located(title: str, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
    """Raise one error per problem at its own key path (pydantic prefixes the parents' path)."""
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [
                InitErrorDetails(
                    type=PydanticCustomError("invalid_reference", "{reason}", {"reason": reason}),
                    loc=loc,
                    input=None,
                )
                for loc, reason in problems
            ],
        )


TicketPolicy = Literal["attach_or_create", "create", "none"]


class TicketConfig(_Section):
    number_prefix: str = Field("T-", max_length=10)
    number_width: int = Field(6, ge=3, le=12)
    reuse_open_ticket_within: Duration = Field(
        timedelta(hours=24),
        description="A repeat caller's call joins their open ticket updated within this window; "
        "0 = never: every call gets a ticket of its own.",
    )
    default_priority: Priority = "P3"
    vip_priority: Priority = "P2"
    default_category: str | None = None
    history_size: int = Field(5, ge=0, le=100, description="Last N tickets shown in a pop.")
    fields: list[TicketFieldConfig] = Field(
        default_factory=list, description="Custom fields, besides the standard ones."
    )
    categories: CategoriesConfig = Field(
        default_factory=CategoriesConfig, description="Category tree; rules must name paths in it."
    )
    priority_names: list[PriorityNameConfig] = Field(
        default_factory=_default_priority_names, description="常规/紧急/加急 and the codes they stand for."
    )
    required_fields: dict[TicketStatusName, list[str]] = Field(
        default_factory=lambda: {"resolved": ["resolution"], "closed": ["resolution"]},
        description="Fields that must be filled in for a ticket to enter (and stay in) each status.",
    )
    rules: list[TicketRule] = Field(default_factory=list, description="First match wins.")
    outbound: TicketPolicy = Field(
        "attach_or_create",
        description="An agent's call to a customer: attach it to the customer's open ticket (a callback "
        "ticket first, whatever its age) or open an outbound ticket; `create`: always a new ticket; "
        "`none`: no ticket (the call is not tracked).",
    )
    on_transfer: Literal["reassign", "keep"] = Field(
        "reassign",
        description="A transferred call's ticket moves to the agent who takes the caller (`reassign`), "
        "if it was the transferring agent's, or stays with its owner (`keep`).",
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> TicketConfig:
        # Imported here: the ticket core imports this module, so it cannot be imported at the top.
        from cti_bridge.tickets.categories import CategoryTree
        from cti_bridge.tickets.errors import CategoryError
        from cti_bridge.tickets.fields import STANDARD_FIELD_NAMES, STANDARD_FIELDS, FieldType

        problems: list[tuple[tuple[str | int, ...], str]] = []
        names = set(STANDARD_FIELD_NAMES)
        for index, field in enumerate(self.fields):
            if field.name in names:
                what = "a standard field" if field.name in STANDARD_FIELD_NAMES else "listed twice"
                problems.append((("fields", index, "name"), f"{field.name!r} is {what}"))
            names.add(field.name)
        for status, required in self.required_fields.items():
            for index, name in enumerate(required):
                if name not in names:
                    problems.append((("required_fields", status, index), f"no field named {name!r}"))
        for attr in ("key", "zh", "en", "priority"):
            seen: set[str] = set()
            for index, entry in enumerate(self.priority_names):
                value = getattr(entry, attr).casefold()
                if value in seen:
                    problems.append(
                        (("priority_names", index, attr), f"{getattr(entry, attr)!r} is used twice")
                    )
                seen.add(value)
        # The category and urgency fields are what a rule's own `category:` and `priority:` set.
        by_actions = {s.name for s in STANDARD_FIELDS if s.type in (FieldType.CATEGORY, FieldType.PRIORITY)}
        for index, rule in enumerate(self.rules):
            for name in rule.extract:
                if name not in names:
                    problems.append((("rules", index, "extract", name), f"no field named {name!r}"))
                elif name in by_actions:
                    problems.append(
                        (
                            ("rules", index, "extract", name),
                            f"set {name!r} with the rule's own key, not by extracting it",
                        )
                    )
        tree = CategoryTree.from_config(self.categories)
        if not tree.is_empty:
            named = [(("rules", i, "category"), rule.category) for i, rule in enumerate(self.rules)]
            for loc, category in [*named, (("default_category",), self.default_category)]:
                if category is None:
                    continue
                # One spelling everywhere (stored tickets, reports): the Chinese labels.
                try:
                    canonical = tree.canonical(category)
                except CategoryError as exc:
                    problems.append((loc, str(exc)))
                    continue
                if canonical != category:
                    problems.append((loc, f"write the category as {canonical!r}"))
        _raise_located("TicketConfig", problems)
        return self


_NAME = r"^[A-Za-z0-9_.-]+$"  # a UserEvent or header name as the dialplan writes it


class SurveyEventConfig(_Section):
    """A post-call survey's UserEvent: `UserEvent(SurveyResult,Score: 4,CallLinkedid: ...)`."""

    event: str = Field(pattern=_NAME, description="The UserEvent's name (matched without case).")
    score: str = Field("Score", pattern=_NAME, description="Header with the 1-5 score.")
    call: str | None = Field(
        "CallLinkedid",
        pattern=_NAME,
        description="Header with the scored call's Linkedid; without it, the channel's own Linkedid.",
    )


class IvrEventConfig(_Section):
    """An IVR's UserEvent: `UserEvent(IvrChoice,Menu: main,Choice: 2)`."""

    event: str = Field(pattern=_NAME, description="The UserEvent's name (matched without case).")
    choice: str = Field("Choice", pattern=_NAME, description="Header with the key or option chosen.")
    menu: str | None = Field("Menu", pattern=_NAME, description="Header naming the menu.")
    menu_name: str | None = Field(
        None, min_length=1, description="The menu's name, for an event that names none in a header."
    )

    @model_validator(mode="after")
    def _names_a_menu(self) -> IvrEventConfig:
        if self.menu is None and self.menu_name is None:
            raise ValueError("give `menu` (the header naming the menu) or `menu_name` (a fixed name)")
        return self


class FieldEventConfig(_Section):
    """A UserEvent carrying ticket field values: `UserEvent(OrderInfo,OrderNo: A-1)`."""

    event: str = Field(pattern=_NAME, description="The UserEvent's name (matched without case).")
    fields: dict[str, Annotated[str, Field(pattern=_NAME)]] = Field(
        min_length=1, description="Ticket field -> the header holding its value."
    )


class UserEventsConfig(_Section):
    """What the site's dialplan says in UserEvents; several mappings of each kind may be given."""

    survey: list[SurveyEventConfig] = Field(
        default_factory=lambda: [SurveyEventConfig(event="SurveyResult")],
        description="Post-call survey scores (CSAT).",
    )
    ivr: list[IvrEventConfig] = Field(
        default_factory=lambda: [IvrEventConfig(event="IvrChoice")], description="IVR choices."
    )
    fields: list[FieldEventConfig] = Field(default_factory=list, description="Ticket field values.")


class MqttConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535, description="Broker port; 8883 when `tls` is given.")
    tls: TlsClientConfig | None = Field(None, description="Connect over TLS; plain TCP when absent.")
    username: str | None = None
    password: SecretSource | None = None
    client_id: str | None = Field(None, description="Defaults to cti-bridge-<hostname>.")
    topic_prefix: str = Field("cti", pattern=r"^[^#+]+$")
    qos: Literal[0, 1, 2] = 1
    keepalive: int = Field(30, ge=5)
    reconnect: ReconnectConfig = ReconnectConfig()
    max_pending: int = Field(
        10_000, ge=10, description="Messages kept while the broker is away (oldest dropped first)."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_tls_port(cls, data: object) -> object:
        return _tls_port(data, 8883)


class StoreConfig(_Section):
    url: str = Field(
        "sqlite:///var/lib/cti-bridge/cti-bridge.db",
        description="sqlite:///absolute/path or sqlite://relative/path",
    )
    attachments: Path | None = Field(
        None, description="Folder for ticket attachments (default: attachments/ beside the database)."
    )
    backlog_limit: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Call updates kept in memory at most while the store refuses writes (full disk, "
        "locked); past it updates are dropped with an error log.",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith("sqlite://"):
            raise ValueError("only sqlite:// URLs are supported by this version")
        return url


class ModelConfig(_Section):
    path: Path | None = Field(None, description="Directory of an unpacked Vosk model.")
    package: str | None = Field(None, description="Python package that ships a model in its `model` folder.")

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if (self.path is None) == (self.package is None):
            raise ValueError("give exactly one of `path` or `package`")
        return self


class LanguageRule(_Section):
    when: RuleMatch
    language: str


class TranscriptionConfig(_Section):
    enabled: bool = True
    workers: int = Field(1, ge=0, le=64, description="Worker processes; each loads its models once.")
    models: dict[str, ModelConfig] = Field(default_factory=dict, description="Language code -> Vosk model.")
    default_language: str = "en"
    language_rules: list[LanguageRule] = Field(default_factory=list)
    max_attempts: int = Field(3, ge=1, le=20)
    lease: PositiveDuration = Field(
        timedelta(minutes=30), description="A running job not finished by then is retried."
    )
    recording_wait: Duration = Field(
        timedelta(seconds=30),
        description="How long to wait for a recording to be complete; 0 = look once, do not wait.",
    )

    @model_validator(mode="after")
    def _languages_have_models(self) -> TranscriptionConfig:
        if not self.enabled:
            return self
        wanted = {self.default_language} | {rule.language for rule in self.language_rules}
        missing = sorted(wanted - set(self.models))
        if missing:
            raise ValueError(f"no model configured for language(s): {', '.join(missing)}")
        return self


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto = console on a terminal, JSON otherwise."
    )
    mask_numbers: bool = Field(True, description="Mask phone numbers in logs.")


class PhoneConfig(_Section):
    default_region: str = Field(
        "CN", description="ISO 3166 country (CN, US, GB...) of the numbers written without +."
    )

    @field_validator("default_region", mode="before")
    @classmethod
    def _known_region(cls, value: object) -> object:
        # A region phonenumbers does not know would make every national number unreadable,
        # each call then a caller without a number: refuse it here, where it is written.
        if not isinstance(value, str):
            return value
        code = value.strip().upper()
        if code in phonenumbers.SUPPORTED_REGIONS:
            return code
        if code == "UK":
            raise ValueError("'UK' is not an ISO 3166 code: the United Kingdom is GB")
        raise ValueError(
            f"{value!r} is not a country the phone number library knows; write its ISO 3166 code, "
            "e.g. CN, US, GB, DE, HK"
        )


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_DAY_SPAN_SEPARATOR = ".."


def _parse_clock_time(value: object) -> object:
    """`09:00` -> seconds after local midnight; `24:00` is the end of the day."""
    if isinstance(value, str):
        match = _CLOCK_TIME.match(value.strip())
        if not match or int(match[1]) > 24 or int(match[2]) > 59 or (int(match[1]) == 24 and int(match[2])):
            raise ValueError(f"{value!r} is not a time of day; write HH:MM, e.g. 09:00 or 24:00")
        return int(match[1]) * 3600 + int(match[2]) * 60
    return value


def _format_clock_time(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


ClockTime = Annotated[int, BeforeValidator(_parse_clock_time), Field(ge=0, le=86400)]


def _parse_time_range(value: object) -> object:
    if isinstance(value, str):
        start, sep, end = value.partition("-")
        if not sep:
            raise ValueError(f"{value!r} is not a time range; write e.g. 09:00-12:00")
        return {"start": _parse_clock_time(start), "end": _parse_clock_time(end)}
    return value


class _TimeRange(_Section):
    """Working hours within one day, e.g. `09:00-12:00` (local time; `24:00` ends the day)."""

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ends_after_start(self) -> _TimeRange:
        if self.end <= self.start:
            end, start = _format_clock_time(self.end), _format_clock_time(self.start)
            raise ValueError(f"ends at {end}, not after its start {start}")
        return self

    def __str__(self) -> str:
        return f"{_format_clock_time(self.start)}-{_format_clock_time(self.end)}"


TimeRange = Annotated[_TimeRange, BeforeValidator(_parse_time_range)]


def _parse_day(value: object) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"{value} has a time; give the day only, YYYY-MM-DD")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a date; write YYYY-MM-DD") from None


def _parse_day_span(value: object) -> object:
    """`2026-10-01` or `2026-10-01..2026-10-07` (both days included)."""
    if isinstance(value, str) and _DAY_SPAN_SEPARATOR in value:
        first, _, last = value.partition(_DAY_SPAN_SEPARATOR)
        return {"first": _parse_day(first), "last": _parse_day(last)}
    if isinstance(value, dict):
        return value
    day = _parse_day(value)
    return {"first": day, "last": day}


class _DaySpan(_Section):
    first: date
    last: date

    @model_validator(mode="after")
    def _in_order(self) -> _DaySpan:
        if self.last < self.first:
            raise ValueError(f"{self.last} is before {self.first}")
        return self

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


DaySpan = Annotated[_DaySpan, BeforeValidator(_parse_day_span)]
Day = Annotated[date, BeforeValidator(_parse_day)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _weekday_keys(key: str) -> list[int]:
    """`mon` -> [0]; `mon-fri` -> [0..4]; `sat-sun` -> [5, 6]."""
    first, sep, last = key.strip().lower().partition("-")
    if first not in _WEEKDAYS or (sep and last not in _WEEKDAYS):
        raise ValueError(f"{key!r} is not a weekday or weekday range; write e.g. mon, sat or mon-fri")
    start = _WEEKDAYS.index(first)
    end = _WEEKDAYS.index(last) if sep else start
    if end < start:
        raise ValueError(f"{key!r} runs backwards; write the earlier day first, e.g. mon-fri")
    return list(range(start, end + 1))


class CalendarConfig(_Section):
    """When the business clock runs: working hours per weekday, holidays and make-up workdays."""

    timezone: str = Field("Asia/Shanghai", description="IANA time zone of the working hours.")
    hours: dict[str, list[TimeRange]] = Field(
        description="Weekday or weekday range (mon, mon-fri) -> working hours; a day not listed is closed."
    )
    holidays: list[DaySpan] = Field(
        default_factory=list, description="Closed days: 2026-10-01 or 2026-10-01..2026-10-07."
    )
    workdays: list[Day] = Field(
        default_factory=list,
        description="Extra working days (调休 make-up days) with the hours of `workdays_like`.",
    )
    workdays_like: Weekday = Field("mon", description="Whose hours the extra working days keep.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known time zone; write e.g. Asia/Shanghai") from None
        return value

    @field_validator("hours")
    @classmethod
    def _valid_week(cls, hours: dict[str, list[_TimeRange]]) -> dict[str, list[_TimeRange]]:
        errors: list[tuple[tuple[str | int, ...], str]] = []
        owner: dict[int, str] = {}
        for key, ranges in hours.items():
            try:
                days = _weekday_keys(key)
            except ValueError as exc:
                errors.append(((key,), str(exc)))
                continue
            twice = [day for day in days if day in owner]
            if twice:
                names = ", ".join(_WEEKDAYS[day] for day in twice)
                errors.append(((key,), f"{names} already given by {owner[twice[0]]!r}"))
            owner.update(dict.fromkeys(days, key))
            ordered = sorted(ranges, key=lambda r: r.start)
            for before, after in itertools.pairwise(ordered):
                if after.start < before.end:
                    errors.append(((key,), f"{before} and {after} overlap"))
        _raise_located("hours", errors)
        if not any(hours.values()):
            raise ValueError("no working hours at all; give e.g. `mon-fri: [09:00-18:00]`")
        return hours

    @model_validator(mode="after")
    def _days_consistent(self) -> CalendarConfig:
        holidays = {day for span in self.holidays for day in span.days()}
        errors = [
            (("workdays", index), f"{day} is also listed as a holiday")
            for index, day in enumerate(self.workdays)
            if day in holidays
        ]
        if self.workdays and not self.weekday_hours().get(_WEEKDAYS.index(self.workdays_like)):
            errors.append((("workdays_like",), f"{self.workdays_like} has no working hours"))
        _raise_located("CalendarConfig", errors)
        return self

    def weekday_hours(self) -> dict[int, tuple[_TimeRange, ...]]:
        """Weekday (0 = Monday) -> its working hours in order."""
        week: dict[int, tuple[_TimeRange, ...]] = {}
        for key, ranges in self.hours.items():
            for day in _weekday_keys(key):
                week[day] = tuple(sorted(ranges, key=lambda r: r.start))
        return week


SlaClock = Literal["business", "always"]


def _target_shorthand(value: object) -> object:
    """`30m` is short for `{within: 30m}`."""
    return value if isinstance(value, dict) else {"within": value}


class _SlaTargetConfig(_Section):
    within: Duration = Field(description="Allowed time, counted on the clock below.")
    clock: SlaClock | None = Field(None, description="business or always (24x7); default sla.clock.")

    @field_validator("within")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


SlaTargetConfig = Annotated[_SlaTargetConfig, BeforeValidator(_target_shorthand)]


class PriorityTargets(_Section):
    first_response: SlaTargetConfig | None = Field(None, description="From creation to first agent response.")
    resolution: SlaTargetConfig | None = Field(None, description="From creation to resolved.")


_ROLES = ("assignee", "supervisor", "team")


def _known_recipient(value: str) -> str:
    if value in _ROLES or (value.startswith("user:") and len(value) > len("user:")):
        return value
    raise ValueError(f"{value!r} is not a recipient; write assignee, supervisor, team or user:<id>")


Recipient = Annotated[str, AfterValidator(_known_recipient)]


class SlaWarningConfig(_Section):
    at: float | None = Field(
        0.8, gt=0, lt=1, description="Warn when this fraction of the allowed time is used; null = never."
    )
    notify: list[Recipient] = Field(default_factory=lambda: ["assignee"])


class EscalationConfig(_Section):
    """What happens when a target is breached (once per ticket and target)."""

    raise_priority: bool = Field(True, description="Raise the priority one level (P3 -> P2); P1 stays.")
    notify: list[Recipient] = Field(default_factory=lambda: ["assignee", "supervisor"])
    reassign_to_supervisor: bool = Field(False, description="Hand the ticket to its team's supervisor.")


class EscalationPolicies(_Section):
    first_response: EscalationConfig = EscalationConfig()
    resolution: EscalationConfig = EscalationConfig()


class SlaConfig(_Section):
    """Per-priority targets, the business calendar they may count on, warning and escalation."""

    calendar: CalendarConfig | None = Field(None, description="Needed by targets on the business clock.")
    clock: SlaClock = Field("business", description="Targets' default clock: business or always (24x7).")
    targets: dict[Priority, PriorityTargets] = Field(default_factory=dict)
    warning: SlaWarningConfig = SlaWarningConfig()
    escalation: EscalationPolicies = EscalationPolicies()
    recheck_every: PositiveDuration = Field(
        timedelta(seconds=60),
        description="The daemon's SLA scheduler looks at the open tickets at least this often, so "
        "changes made by other processes (the CLI) are seen.",
    )

    @field_validator("recheck_every")
    @classmethod
    def _recheck_positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @model_validator(mode="after")
    def _business_needs_a_calendar(self) -> SlaConfig:
        if self.calendar is not None:
            return self
        errors = [
            (("targets", priority, name), "counts on the business clock, but sla.calendar is not set")
            for priority, targets in self.targets.items()
            for name in ("first_response", "resolution")
            if (target := getattr(targets, name)) is not None and (target.clock or self.clock) == "business"
        ]
        _raise_located("SlaConfig", errors)
        return self


class TeamConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]+$", description="Named by agents[].team.")
    label: str = ""
    supervisor: str | None = Field(
        None, description="User id of the supervisor: receives escalations and tickets nobody can take."
    )


class DispatchSkills(_Section):
    by_category: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Category path or prefix -> skills an agent needs; the longest matching prefix wins.",
    )
    by_queue: dict[str, list[str]] = Field(default_factory=dict, description="Queue -> skills needed.")


class DispatchWeights(_Section):
    load: float = Field(1.0, ge=0, description="Weight of open tickets / load cap.")
    response: float = Field(0.5, ge=0, description="Weight of median first response / response_reference.")


class DispatchConfig(_Section):
    """How a callback ticket (missed, abandoned, after-hours call) picks its agent."""

    skills: DispatchSkills = DispatchSkills()
    load_cap: int = Field(10, ge=1, description="An agent with this many open tickets gets no more.")
    load_caps: dict[str, int] = Field(default_factory=dict, description="Agent id -> own load cap.")
    vip_team: str | None = Field(None, description="Team that alone takes VIP customers' tickets.")
    default_team: str | None = Field(None, description="Team whose queue holds tickets nobody can take.")
    when_nobody: Literal["queue", "supervisor"] = Field(
        "queue", description="Nobody qualifies: leave it in the team queue, or give it to the supervisor."
    )
    urgent_queues: list[str] = Field(default_factory=list, description="Queues always dispatched first.")
    weights: DispatchWeights = DispatchWeights()
    response_reference: PositiveDuration = Field(
        timedelta(minutes=30), description="A median first response this slow or slower scores as slowest."
    )
    response_window: PositiveDuration = Field(
        timedelta(days=7),
        description="An agent's median first response is over the tickets created this recently.",
    )
    requeue_every: PositiveDuration = Field(
        timedelta(minutes=1),
        description="How often callback tickets left in a team queue are offered to the agents again.",
    )

    @field_validator("load_caps")
    @classmethod
    def _caps_positive(cls, caps: dict[str, int]) -> dict[str, int]:
        errors = [((agent,), "a load cap is at least 1") for agent, cap in caps.items() if cap < 1]
        _raise_located("load_caps", errors)
        return caps


def _workflow_references(config: Config) -> list[tuple[tuple[str | int, ...], str]]:
    """Names that must point at something defined elsewhere in the file."""
    from cti_bridge.tickets.fields import STANDARD_FIELD_NAMES

    teams = {team.name for team in config.teams}
    agents = {agent.id for agent in config.agents}
    errors: list[tuple[tuple[str | int, ...], str]] = []
    fields = set(STANDARD_FIELD_NAMES) | {f.name for f in config.tickets.fields}
    errors += [
        (("user_events", "fields", index, "fields", name), f"no ticket field named {name!r}")
        for index, mapping in enumerate(config.user_events.fields)
        for name in mapping.fields
        if name not in fields
    ]
    if config.teams:
        errors += [
            (("agents", index, "team"), f"unknown team {agent.team!r}; teams are {sorted(teams)}")
            for index, agent in enumerate(config.agents)
            if agent.team is not None and agent.team not in teams
        ]
    for key in ("vip_team", "default_team"):
        name = getattr(config.dispatch, key)
        if name is not None and name not in teams:
            errors.append((("dispatch", key), f"unknown team {name!r}; define it under teams:"))
    errors += [
        (("dispatch", "load_caps", agent), f"unknown agent {agent!r}")
        for agent in config.dispatch.load_caps
        if agent not in agents
    ]
    skills = {skill for agent in config.agents for skill in agent.skills}
    for section, mapping in (
        ("by_category", config.dispatch.skills.by_category),
        ("by_queue", config.dispatch.skills.by_queue),
    ):
        for key, needed in mapping.items():
            errors += [
                (("dispatch", "skills", section, key, index), f"no agent has the skill {skill!r}")
                for index, skill in enumerate(needed)
                if skill not in skills
            ]
    return errors


def _key_file(value: object) -> object:
    # A key is a path the TLS library opens itself: `key: /path` is as good as `{file: /path}`.
    if isinstance(value, (str, Path)):
        return {"file": value}
    return value


def _file_only(ref: SecretRef) -> SecretRef:
    if ref.file is None:
        raise ValueError("a TLS key is read from a file: give `key: /path/to/key.pem` or `{file: /path}`")
    return ref


KeyFile = Annotated[SecretRef, BeforeValidator(_key_file), AfterValidator(_file_only)]


class WebTlsConfig(_Section):
    """HTTPS served by the daemon itself (without a reverse proxy in front)."""

    certificate: Path = Field(description="PEM file: the server's certificate, then its chain.")
    key: KeyFile = Field(description="PEM file of the private key (readable by the daemon's user only).")
    password: SecretSource | None = Field(
        None, description="The key's passphrase, if it is encrypted: `{env: VAR}` or `{file: /path}`."
    )


def _proxy_address(value: str) -> str:
    if value == "*":
        return value
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)") from None
    return value


def _public_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL (e.g. https://cti.example.com)")
    return value.rstrip("/")


class WebConfig(_Section):
    """The HTTP API and the agents' and supervisors' browser pages, served by the daemon."""

    enabled: bool = True
    host: str = Field("127.0.0.1", description="Address to listen on; put a TLS proxy in front for others.")
    port: int = Field(
        8080, ge=0, le=65535, description="1-65535; 0 (a free port) only for a config built by a test."
    )
    session_lifetime: PositiveDuration = Field(
        timedelta(hours=12), description="A login lasts this long (a shift)."
    )
    secure_cookies: bool = Field(
        False,
        description="Mark the session cookie Secure. It is anyway when served over HTTPS (web.tls, or a "
        "trusted proxy's X-Forwarded-Proto) or when public_url is https.",
    )
    tls: WebTlsConfig | None = Field(None, description="Serve HTTPS with this certificate; absent: HTTP.")
    public_url: Annotated[str, AfterValidator(_public_url)] | None = Field(
        None, description="Where browsers reach the pages, e.g. https://cti.example.com behind a proxy."
    )
    forwarded_allow_ips: list[Annotated[str, AfterValidator(_proxy_address)]] = Field(
        default_factory=list,
        description="Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (addresses "
        "or networks, * for any); empty: none, the connection's own address is the client's.",
    )

    @field_validator("port")
    @classmethod
    def _no_free_port_in_a_file(cls, port: int, info: ValidationInfo) -> int:
        # Port 0 lets the OS pick: right for a test that reads the port back, wrong for a
        # daemon whose agents' browsers must know where to go.
        if port == 0 and (info.context or {}).get(FROM_FILE):
            raise ValueError("port 0 would listen on a random port nobody can find; give a port 1-65535")
        return port


# -- crm: caller lookup in the site's CRM (issue #11, item 9) --------------------------------

CRM_URL_PLACEHOLDERS = {
    "e164": "the caller's number in E.164, URL-encoded (+ as %2B)",
    "digits": "the same number without its +",
}
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers that carry a credential: their value never stands in the YAML in clear.
_CREDENTIAL_HEADER = re.compile(r"auth|token|key|secret|passw|cookie|session|signature", re.IGNORECASE)
_JSON_KEY = re.compile(r"[^.\[\]]+")
_JSON_INDEX = re.compile(r"\[(\d+)\]")


def _parse_json_path(value: object) -> object:
    """`data.0.fullName`, `data[0].fullName` or `$.data[0].fullName` -> ("data", "0", "fullName").

    A step that is a number indexes a list (or names a key of an object); "" or "$" is the
    whole answer. Parsed at load, so a mistyped path is reported at its key.
    """
    if isinstance(value, tuple):
        return value
    if isinstance(value, bool):  # `id: no` in YAML is false, not the key "no"
        raise ValueError('YAML read this as true/false: quote the key, e.g. "no" or "on"')
    if isinstance(value, int):
        return (str(value),)
    if not isinstance(value, str):
        raise ValueError("a JSON path is text, e.g. data.0.fullName or data[0].fullName")
    text = value.strip()
    if text.startswith("$"):
        text = text[1:].removeprefix(".")
    steps: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "[":
            match = _JSON_INDEX.match(text, pos)
            if match is None:
                raise ValueError(f"{value!r}: only a list index stands in brackets, e.g. data[0].name")
            steps.append(match.group(1))
        else:
            match = _JSON_KEY.match(text, pos)
            if match is None:
                raise ValueError(f"{value!r} has an empty step at position {pos}; write e.g. data.0.fullName")
            steps.append(match.group())
        pos = match.end()
        if pos < len(text) and text[pos] == ".":
            pos += 1
            if pos == len(text):
                raise ValueError(f"{value!r} ends with a dot")
        elif pos < len(text) and text[pos] != "[":
            raise ValueError(f"{value!r}: unexpected {text[pos]!r} at position {pos}")
    return tuple(steps)


JsonPath = Annotated[tuple[str, ...], BeforeValidator(_parse_json_path)]


def json_path_text(path: tuple[str, ...]) -> str:
    """A parsed path as the YAML would write it (for messages)."""
    return ".".join(path) or "$"


CRM_ORDER_FIELDS = ("id", "date", "total", "status", "summary")
CRM_TEXT_FIELDS = ("name", "company", "email", "tier", "external_id", "notes")


class CrmOrderFields(_Section):
    """Where the caller's recent orders are in the CRM's answer, and what to read from each."""

    path: JsonPath = Field(description="The list of orders, from the caller's record, e.g. orders.")
    limit: int = Field(5, ge=1, le=50, description="Orders kept: the first ones of the list.")
    id: JsonPath | None = Field(None, description="Within one order, e.g. orderNo.")
    date: JsonPath | None = Field(None, description="Within one order, e.g. createdAt.")
    total: JsonPath | None = Field(None, description="Within one order, e.g. amount.")
    status: JsonPath | None = Field(None, description="Within one order, e.g. state.")
    summary: JsonPath | None = Field(None, description="What was bought, e.g. items.0.title.")

    @model_validator(mode="after")
    def _reads_something(self) -> CrmOrderFields:
        if all(getattr(self, name) is None for name in CRM_ORDER_FIELDS):
            raise ValueError(f"name at least one of {', '.join(CRM_ORDER_FIELDS)} to read from each order")
        return self


class CrmFields(_Section):
    """Our field -> JSON path in the caller's record (see `crm.record`); unnamed ones are not read."""

    name: JsonPath | None = Field(None, description="e.g. fullName")
    company: JsonPath | None = None
    email: JsonPath | None = None
    tier: JsonPath | None = Field(None, description="Customer level, e.g. level; see crm.vip_tiers.")
    vip: JsonPath | None = Field(None, description="A true/false value (also 1/0, yes/no).")
    external_id: JsonPath | None = Field(None, description="The caller's id in the CRM.")
    notes: JsonPath | None = None
    orders: CrmOrderFields | None = Field(None, description="Recent orders or purchases.")

    @model_validator(mode="after")
    def _reads_something(self) -> CrmFields:
        if all(getattr(self, name) is None for name in (*CRM_TEXT_FIELDS, "vip", "orders")):
            raise ValueError("name at least one field to read, e.g. `name: data.0.fullName`")
        return self


def _header_shorthand(value: object) -> object:
    """`Accept: application/json` is short for `{value: application/json}`."""
    if isinstance(value, str):
        return {"value": value}
    if not isinstance(value, dict):
        raise ValueError("a header is text, or `{env: VARIABLE}` / `{file: /path}` for a credential")
    return value


class _CrmHeader(_Section):
    """A request header: plain text, or a secret read from the environment or a file."""

    value: str | None = Field(None, description="Plain text; refused for a header carrying a credential.")
    env: str | None = Field(None, description="Environment variable holding the value.")
    file: Path | None = Field(None, description="File holding the value (trailing newline stripped).")
    prefix: str = Field("", description="Text before the secret, e.g. 'Bearer '.")

    @model_validator(mode="after")
    def _one_source(self) -> _CrmHeader:
        if sum(x is not None for x in (self.value, self.env, self.file)) != 1:
            raise ValueError("give the header as text, or exactly one of `env: VARIABLE`, `file: /path`")
        if self.value is not None and self.prefix:
            raise ValueError("`prefix` goes with `env` or `file`; write the whole text instead")
        for text in (self.value or "", self.prefix):
            if any(ch in text for ch in "\r\n\0"):
                raise ValueError("a header value cannot hold a line break")
        return self

    def secret(self) -> SecretRef | None:
        """Where the value is kept, if it is a secret."""
        if self.value is not None:
            return None
        return SecretRef(env=self.env, file=self.file)


CrmHeader = Annotated[_CrmHeader, BeforeValidator(_header_shorthand)]


class CircuitBreakerConfig(_Section):
    """After `failures` failed lookups in a row no request goes to the CRM for `open_for`; then one
    probe does: an answer closes the circuit again, a failure opens it for another `open_for`."""

    failures: int = Field(5, ge=1, le=1000, description="Failed lookups in a row that open the circuit.")
    open_for: PositiveDuration = Field(timedelta(seconds=30), description="How long no request is sent.")

    @field_validator("open_for")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class CrmConfig(_Section):
    """Optional lookup of the caller in the site's CRM over HTTP: the pop never waits for it."""

    enabled: bool = True
    url: str = Field(
        description="GET URL template: {e164} (URL-encoded) or {digits} stand for the caller's number, "
        "e.g. https://crm.example/api/customers?phone={e164}",
    )
    headers: dict[str, CrmHeader] = Field(
        default_factory=dict, description="Request headers; credentials as {env: VAR} or {file: path}."
    )
    timeout: Duration = Field(timedelta(seconds=2), description="The whole request, answer included.")
    cache_ttl: Duration = Field(
        timedelta(minutes=10), description="A found caller is kept this long; 0 = never."
    )
    not_found_ttl: Duration = Field(
        timedelta(minutes=1), description="A number the CRM does not know is kept this long; 0 = never."
    )
    cache_size: int = Field(10_000, ge=1, le=10_000_000, description="Numbers kept (least recent dropped).")
    max_concurrent: int = Field(4, ge=1, le=100, description="Requests in flight at once.")
    max_waiting: int = Field(
        100, ge=1, le=100_000, description="Lookups waiting or in flight; beyond it a call is not looked up."
    )
    max_response_bytes: int = Field(
        1_048_576, ge=1024, le=64 * 1_048_576, description="A longer answer is refused."
    )
    not_found_status: list[int] = Field(
        default_factory=lambda: [404], description="HTTP statuses that mean: no such caller."
    )
    record: JsonPath = Field(
        (),
        description="Where the caller's record is in the answer, e.g. data (a list: its first item); "
        "missing, null or empty means the CRM does not know the caller. Default: the whole answer.",
    )
    fields: CrmFields
    vip_tiers: list[str] = Field(
        default_factory=list, description="Tiers (case ignored) that make the caller a VIP, e.g. [gold]."
    )
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()

    @field_validator("url")
    @classmethod
    def _valid_template(cls, url: str) -> str:
        try:
            parsed = list(string.Formatter().parse(url))
        except ValueError as exc:
            raise ValueError(f"not a URL template ({exc}); write {{{{ for a literal {{") from None
        names = [name for _, name, _, _ in parsed if name is not None]
        known = ", ".join(f"{{{name}}}" for name in CRM_URL_PLACEHOLDERS)
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in CRM_URL_PLACEHOLDERS:
                raise ValueError(f"unknown placeholder {{{name}}}; the known ones are {known}")
            if spec or conversion:
                raise ValueError(f"write the placeholder as {{{name}}}, without a format")
        if not names:
            raise ValueError(f"the URL must hold the number to look up: {known}")
        one, other = _fill_url(url, "+861", "861"), _fill_url(url, "+449", "449")
        parts = urlsplit(one)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("no credentials in the URL (they would be in clear); use `headers`")
        if urlsplit(other).netloc != parts.netloc:
            raise ValueError("the number may stand in the path or the query, not in the host")
        return url

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, headers: dict[str, _CrmHeader]) -> dict[str, _CrmHeader]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name, header in headers.items():
            if not _HEADER_NAME.match(name):
                problems.append(((name,), "not a header name (letters, digits and - only)"))
            elif header.value is not None and _CREDENTIAL_HEADER.search(name):
                problems.append(
                    (
                        (name,),
                        "this header carries a credential: never in the YAML in clear; write "
                        "`{env: VARIABLE}` or `{file: /path}` (with `prefix: 'Bearer '` for a scheme)",
                    )
                )
        _raise_located("headers", problems)
        return headers

    @field_validator("not_found_status")
    @classmethod
    def _statuses(cls, statuses: list[int]) -> list[int]:
        problems: list[tuple[tuple[str | int, ...], str]] = [
            ((index,), "not an HTTP status other than 200 (100-599)")
            for index, status in enumerate(statuses)
            if not 100 <= status <= 599 or status == 200
        ]
        _raise_located("not_found_status", problems)
        return statuses

    @field_validator("timeout")
    @classmethod
    def _timeout_range(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(seconds=60):
            raise ValueError("must be longer than zero and at most 60s: the pop never waits for it anyway")
        return value

    def url_for(self, e164: str) -> str:
        """The lookup URL for a caller's number in E.164."""
        return _fill_url(self.url, e164, e164.removeprefix("+"))


def _fill_url(template: str, e164: str, digits: str) -> str:
    return template.format(e164=quote(e164, safe=""), digits=quote(digits, safe=""))


class Config(_Section):
    """The whole daemon configuration."""

    pbxs: list[PbxConfig] = Field(min_length=1)
    agents: list[AgentConfig] = Field(default_factory=list)
    phone: PhoneConfig = PhoneConfig()
    tickets: TicketConfig = TicketConfig()
    mqtt: MqttConfig = MqttConfig()
    store: StoreConfig = StoreConfig()
    transcription: TranscriptionConfig = TranscriptionConfig(enabled=False)
    logging: LoggingConfig = LoggingConfig()
    teams: list[TeamConfig] = Field(default_factory=list, description="Teams named by agents[].team.")
    sla: SlaConfig = SlaConfig()
    dispatch: DispatchConfig = DispatchConfig()
    web: WebConfig = WebConfig()
    user_events: UserEventsConfig = Field(
        default_factory=UserEventsConfig, description="The dialplan's UserEvents: survey, IVR, fields."
    )
    crm: CrmConfig | None = Field(None, description="Caller lookup in the site's CRM; off when absent.")

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        _require_unique("pbxs", [pbx.name for pbx in self.pbxs])
        _require_unique("agents", [agent.id for agent in self.agents])
        return self

    @model_validator(mode="after")
    def _workflow_names_resolve(self) -> Config:
        _require_unique("teams", [team.name for team in self.teams])
        _raise_located("Config", _workflow_references(self))
        return self


def _require_unique(section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{section}: {name!r} is listed twice")
        seen.add(name)


__all__ = [
    "AgentConfig",
    "CalendarConfig",
    "CategoriesConfig",
    "CategoryNodeConfig",
    "CircuitBreakerConfig",
    "Config",
    "CrmConfig",
    "CrmFields",
    "CrmOrderFields",
    "DispatchConfig",
    "Duration",
    "EscalationConfig",
    "LanguageRule",
    "LoggingConfig",
    "ModelConfig",
    "MqttConfig",
    "PathMapping",
    "PbxConfig",
    "Priority",
    "PriorityNameConfig",
    "RuleMatch",
    "SecretRef",
    "SecretStr",
    "SlaConfig",
    "StoreConfig",
    "TeamConfig",
    "TextSource",
    "TicketConfig",
    "TicketFieldConfig",
    "TicketRule",
    "TicketRuleMatch",
    "TlsClientConfig",
    "TranscriptionConfig",
    "UserEventsConfig",
    "WebConfig",
    "WebTlsConfig",
]
