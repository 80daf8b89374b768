"""Load the YAML config, validate it, and report every error with file, line and key path."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError

from cti_bridge.config.model import Config, SecretRef

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: Path
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.key or '<top>'}: {self.message}"


class ConfigError(Exception):
    """The config cannot be used; `problems` lists every reason found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_config(
    path: str | os.PathLike[str], *, check_secrets: bool = True, check_paths: bool = False
) -> Config:
    """Read and validate a config file.

    Args:
        path: the YAML file.
        check_secrets: also check that every referenced secret can be read now.
        check_paths: also check that model directories and packages exist on this host.

    Returns:
        The validated, immutable config.

    Raises:
        ConfigError: listing every problem, each with file, line and key path.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"cannot read: {exc.strerror}")]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(file, line, "", f"invalid YAML: {problem}")]) from exc
    if node is None:
        raise ConfigError([ConfigProblem(file, 1, "", "the file is empty")])
    lines: dict[KeyPath, int] = {}
    _index_lines(node, (), lines)
    data = _Loader(text).get_single_data()
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file, 1, "", "the top level must be a mapping")])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [
                ConfigProblem(file, _line_for(err["loc"], lines), _dotted(err["loc"]), err["msg"])
                for err in exc.errors()
            ]
        ) from None
    found = _unreadable_secrets(config) if check_secrets else []
    if check_paths:
        found += _missing_models(config)
    if found:
        raise ConfigError(
            [ConfigProblem(file, _line_for(loc, lines), _dotted(loc), reason) for loc, reason in found]
        )
    return config


def reveal(secret: SecretRef) -> SecretStr:
    """Read a secret from its environment variable or file, at the moment it is needed.

    Raises:
        LookupError: the variable is unset or the file cannot be read.
    """
    if secret.env is not None:
        value = os.environ.get(secret.env)
        if value is None:
            raise LookupError(f"environment variable {secret.env} is not set")
        return SecretStr(value)
    assert secret.file is not None
    try:
        return SecretStr(secret.file.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise LookupError(f"cannot read secret file {secret.file}: {exc.strerror}") from exc


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps an impossible date (2026-02-30) as text for pydantic to report at its key."""


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def _unreadable_secrets(config: Config) -> list[tuple[KeyPath, str]]:
    refs: list[tuple[KeyPath, SecretRef]] = [
        (("pbxs", i, "secret"), pbx.secret) for i, pbx in enumerate(config.pbxs)
    ]
    refs += [
        (("pbxs", i, "originate", "secret"), pbx.originate.secret)
        for i, pbx in enumerate(config.pbxs)
        if pbx.originate is not None
    ]
    if config.mqtt.password is not None:
        refs.append((("mqtt", "password"), config.mqtt.password))
    if config.crm is not None and config.crm.enabled:
        for name, header in config.crm.headers.items():
            if (ref := header.secret()) is not None:
                refs.append((("crm", "headers", name), ref))
    problems = []
    for loc, ref in refs:
        try:
            reveal(ref)
        except LookupError as exc:
            problems.append((loc, str(exc)))
    return problems


def _missing_models(config: Config) -> list[tuple[KeyPath, str]]:
    if not config.transcription.enabled:
        return []
    problems: list[tuple[KeyPath, str]] = []
    for language, model in config.transcription.models.items():
        if model.path is not None:
            if not (model.path / "am").is_dir() or not (model.path / "conf").is_dir():
                problems.append(
                    (
                        ("transcription", "models", language, "path"),
                        f"{model.path} is not a Vosk model (no am/ and conf/); see models/README.md",
                    )
                )
        elif importlib.util.find_spec(model.package or "") is None:
            problems.append(
                (
                    ("transcription", "models", language, "package"),
                    f"package {model.package} is not installed",
                )
            )
    return problems


def _index_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*path, key), lines)
            # A key's own line beats its value's (a nested mapping starts on the next line).
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines)


def _line_for(loc: tuple[Any, ...], lines: dict[KeyPath, int]) -> int | None:
    # pydantic adds the validator or union branch name to loc; the longest known prefix wins.
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
