"""The three-level category tree (大类 → 子类 → 场景) and the paths a ticket's category may take."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cti_bridge.tickets.errors import CategoryError

if TYPE_CHECKING:
    from cti_bridge.config.model import CategoriesConfig, CategoryNodeConfig

Language = Literal["zh", "en"]
SEPARATOR = "/"
MAX_DEPTH = 3


@dataclass(frozen=True, slots=True)
class CategoryNode:
    key: str  # stable code, e.g. "network"; survives a relabelling
    zh: str
    en: str
    children: tuple[CategoryNode, ...] = ()

    def label(self, language: Language) -> str:
        return self.zh if language == "zh" else self.en

    def _matches(self, segment: str) -> bool:
        folded = _fold(segment)
        return segment == self.zh or folded == self.key.casefold() or folded == _fold(self.en)


@dataclass(frozen=True, slots=True)
class CategoryPath:
    """A validated path from a root; its canonical text is the Chinese labels joined by `/`."""

    nodes: tuple[CategoryNode, ...]

    @property
    def depth(self) -> int:
        return len(self.nodes)

    @property
    def canonical(self) -> str:
        return self.label("zh")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(node.key for node in self.nodes)

    @property
    def code(self) -> str:
        """The keys joined by `/`, e.g. `technical/network/login`: stable across relabelling."""
        return SEPARATOR.join(self.keys)

    @property
    def is_leaf(self) -> bool:
        return not self.nodes[-1].children

    def label(self, language: Language) -> str:
        return SEPARATOR.join(node.label(language) for node in self.nodes)

    def __str__(self) -> str:
        return self.canonical


class CategoryTree:
    """The configured tree; an empty tree accepts any category text (no tree configured).

    A path is complete when it ends at a leaf or has at least `min_depth` levels: with the
    default `min_depth=3` every path must go down to a leaf (a 场景, or a shallower node
    that has no children); `min_depth=1` or `2` lets a path stop at a 大类 or 子类.
    """

    def __init__(self, roots: Iterable[CategoryNode] = (), *, min_depth: int = MAX_DEPTH) -> None:
        self.roots = tuple(roots)
        if not 1 <= min_depth <= MAX_DEPTH:
            raise ValueError(f"min_depth must be 1..{MAX_DEPTH}, not {min_depth}")
        self.min_depth = min_depth

    @classmethod
    def from_config(cls, config: CategoriesConfig) -> CategoryTree:
        return cls((_node(item) for item in config.tree), min_depth=config.min_depth)

    @property
    def is_empty(self) -> bool:
        return not self.roots

    def parse(self, text: str) -> CategoryPath:
        """Read a path written with Chinese labels, English labels or keys (mixed is fine).

        Args:
            text: e.g. `技术故障/网络问题/登录异常`, `Technical fault/Network/Login failure`
                or `technical/network/login`.

        Returns:
            The path, whatever spelling it was given in.

        Raises:
            CategoryError: an unknown segment (naming it and what exists at that level), a
                path too deep, or one that stops before `min_depth` at a node with children.
        """
        if self.is_empty:
            raise CategoryError("no category tree is configured")
        segments = [part.strip() for part in text.split(SEPARATOR)]
        if not text.strip() or any(not part for part in segments):
            raise CategoryError(f"{text!r} is not a category path; write e.g. 大类/子类/场景")
        level: tuple[CategoryNode, ...] = self.roots
        nodes: list[CategoryNode] = []
        for segment in segments:
            if not level:
                raise CategoryError(f"{text!r}: {SEPARATOR.join(n.zh for n in nodes)} has no sub-categories")
            node = next((n for n in level if n._matches(segment)), None)
            if node is None:
                where = f"under {SEPARATOR.join(n.zh for n in nodes)}" if nodes else "at the top level"
                known = ", ".join(n.zh for n in level)
                raise CategoryError(f"{text!r}: no category {segment!r} {where} (known: {known})")
            nodes.append(node)
            level = node.children
        path = CategoryPath(tuple(nodes))
        if not path.is_leaf and path.depth < self.min_depth:
            known = ", ".join(n.zh for n in nodes[-1].children)
            raise CategoryError(
                f"{text!r} is incomplete: choose a sub-category of {path.canonical} (one of: {known})"
            )
        return path

    def canonical(self, text: str) -> str:
        """The canonical spelling of a path; with no tree configured, the text itself, stripped.

        Raises:
            CategoryError: as `parse`.
        """
        if self.is_empty:
            stripped = text.strip()
            if not stripped:
                raise CategoryError("a category cannot be blank")
            return stripped
        return self.parse(text).canonical

    def label(self, text: str, language: Language) -> str:
        """The path in one language; free text is returned as is when no tree is configured."""
        return text if self.is_empty else self.parse(text).label(language)

    def paths(self) -> Iterator[CategoryPath]:
        """Every complete path, depth first in configuration order."""
        yield from self._walk((), self.roots)

    def _walk(
        self, above: tuple[CategoryNode, ...], level: tuple[CategoryNode, ...]
    ) -> Iterator[CategoryPath]:
        for node in level:
            path = CategoryPath((*above, node))
            if path.is_leaf or path.depth >= self.min_depth:
                yield path
            yield from self._walk(path.nodes, node.children)


def _node(config: CategoryNodeConfig) -> CategoryNode:
    return CategoryNode(config.key, config.zh, config.en, tuple(_node(c) for c in config.children))


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()
