"""Configuration: schema, loading with located errors, and secret references."""

from cti_bridge.config.loader import ConfigError, ConfigProblem, load_config, reveal
from cti_bridge.config.model import (
    AgentConfig,
    Config,
    LoggingConfig,
    MqttConfig,
    PbxConfig,
    RuleMatch,
    TicketConfig,
    TranscriptionConfig,
    WebConfig,
)

__all__ = [
    "AgentConfig",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "LoggingConfig",
    "MqttConfig",
    "PbxConfig",
    "RuleMatch",
    "TicketConfig",
    "TranscriptionConfig",
    "WebConfig",
    "load_config",
    "reveal",
]
