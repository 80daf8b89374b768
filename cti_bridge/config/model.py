"""The configuration schema: one pydantic model per section, unknown keys refused."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def _parse_duration(value: object) -> object:
    """Accept `90`, `90s`, `15m`, `24h`, `2d`, `250ms` as well as timedelta."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 15m, 24h or 2d")
        number, unit = match.groups()
        return timedelta(seconds=float(number) * _UNIT_SECONDS[unit])
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


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
    initial_delay: Duration = Field(timedelta(seconds=1), description="First retry delay.")
    max_delay: Duration = Field(timedelta(seconds=30), description="Backoff ceiling.")


class PathMapping(_Section):
    """The PBX writes recordings under `pbx`; this host sees the same files under `local`."""

    pbx: str = Field(description="Directory as the PBX names it, e.g. /var/spool/asterisk/monitor")
    local: Path = Field(description="Same directory as mounted on this host.")


class PbxConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Short unique name of this PBX.")
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str
    secret: SecretSource
    ping_interval: Duration = Field(
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


class TicketRule(_Section):
    name: str = Field(description="Shown in the ticket history as the rule that fired.")
    when: RuleMatch
    category: str | None = Field(None, description="Category path, e.g. 技术故障/网络问题")
    priority: Priority | None = None


class TicketConfig(_Section):
    number_prefix: str = Field("T-", max_length=10)
    number_width: int = Field(6, ge=3, le=12)
    reuse_open_ticket_within: Duration = Field(
        timedelta(hours=24),
        description="A repeat caller's call joins their open ticket updated within this window.",
    )
    default_priority: Priority = "P3"
    vip_priority: Priority = "P2"
    default_category: str | None = None
    history_size: int = Field(5, ge=0, le=100, description="Last N tickets shown in a pop.")
    rules: list[TicketRule] = Field(default_factory=list, description="First match wins.")


class MqttConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
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


class StoreConfig(_Section):
    url: str = Field(
        "sqlite:///var/lib/cti-bridge/cti-bridge.db",
        description="sqlite:///absolute/path or sqlite://relative/path",
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
    lease: Duration = Field(
        timedelta(minutes=30), description="A running job not finished by then is retried."
    )
    recording_wait: Duration = Field(
        timedelta(seconds=30), description="How long to wait for a recording to be complete."
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
    default_region: str = Field("CN", pattern=r"^[A-Z]{2}$", description="ISO country for numbers without +.")


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

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        _require_unique("pbxs", [pbx.name for pbx in self.pbxs])
        _require_unique("agents", [agent.id for agent in self.agents])
        return self


def _require_unique(section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{section}: {name!r} is listed twice")
        seen.add(name)


__all__ = [
    "AgentConfig",
    "Config",
    "Duration",
    "LanguageRule",
    "LoggingConfig",
    "ModelConfig",
    "MqttConfig",
    "PathMapping",
    "PbxConfig",
    "Priority",
    "RuleMatch",
    "SecretRef",
    "SecretStr",
    "StoreConfig",
    "TicketConfig",
    "TicketRule",
    "TranscriptionConfig",
]
