"""The layout is the architecture: the core (calls/, tickets/) imports no I/O library and no edge."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "cti_bridge"
CORE = ["calls", "tickets"]
FORBIDDEN = {"panoramisk", "aiomqtt", "aiosqlite", "vosk", "asyncio", "sqlite3", "socket", "subprocess"}
EDGES = {
    "cti_bridge.ami",
    "cti_bridge.screenpop",
    "cti_bridge.store",
    "cti_bridge.transcribe",
    "cti_bridge.app",
    "cti_bridge.pipeline",
    "cti_bridge.recordings",
    "cti_bridge.sla_scheduler",
    "cti_bridge.notifier",
    "cti_bridge.callback_queue",
    "cti_bridge.cli",
    "cti_bridge.crm",
}


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "module",
    sorted(p for package in CORE for p in (PACKAGE / package).glob("*.py")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_core_modules_import_no_io_library_and_no_edge(module):
    for name in imports_of(module):
        assert name.split(".")[0] not in FORBIDDEN, f"{module.name} imports {name}"
        assert not any(name == edge or name.startswith(edge + ".") for edge in EDGES), (
            f"{module.name} imports the edge {name}"
        )
