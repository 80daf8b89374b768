"""Hostile and broken YAML through the real `cti-bridge check-config`: one located line, fast.

Issue #12 item 6: each file gets a one-line `file:line: problem` error, exit code 2, no
traceback, and the command answers in well under a second (measured in the process; the
subprocess bound also counts the interpreter's start).
"""

import os
import subprocess
import sys
import time

import pytest

from cti_bridge.config import ConfigError, load_config
from cti_bridge.config.loader import (
    MAX_ALIASED_NODES,
    MAX_CONFIG_BYTES,
    MAX_NESTING,
    MAX_PROBLEMS,
    MAX_VALUES,
)

MINIMAL = """\
pbxs:
  - name: main
    username: cti
    secret: {env: TEST_AMI_SECRET}
"""
NEXT = len(MINIMAL.splitlines()) + 1  # the line right after MINIMAL


def _bomb() -> str:
    """The "billion laughs": 9 levels of 9 aliases, 9**9 values once expanded."""
    text = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
    for level in range(1, 10):
        text += f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n"
    return MINIMAL + text


# name -> (content, line of the error, words the message must hold)
HOSTILE: dict[str, tuple[str | bytes, int, str]] = {
    "include-tag": (MINIMAL + "agents: !include agents.yaml\n", NEXT, "the tag !include is not supported"),
    "python-apply": (
        MINIMAL + "x: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
        NEXT,
        "the tag !!python/object/apply:os.system is not supported",
    ),
    "python-name": (MINIMAL + "x: !!python/name:os.system\n", NEXT, "the tag !!python/name:os.system"),
    "tag-in-a-key": (MINIMAL + "!!python/name:os.system : 1\n", NEXT, "is not supported"),
    "recursive-anchor": (MINIMAL + "agents: &a [*a]\n", NEXT, "the alias *a is inside its own anchor &a"),
    "recursive-mapping": (
        MINIMAL + "mqtt: &m\n  reconnect: *m\n",
        NEXT + 1,
        "the alias *m is inside its own anchor &m",
    ),
    "alias-bomb": (_bomb(), NEXT + 4, f"aliases expand to more than {MAX_ALIASED_NODES} values"),
    "latin-1": ((MINIMAL + "# café\n").encode("latin-1"), NEXT, "not UTF-8 text: byte 0xe9"),
    "utf-16-bom": (MINIMAL.encode("utf-16"), 1, "the file is UTF-16 text: save it as UTF-8"),
    "binary": (bytes(range(256)) * 4, 1, "a NUL byte: this is a binary file"),
    "control-character": (MINIMAL + "x: \x07\n", NEXT, "the control character U+0007 is not allowed"),
    "empty": (b"", 1, "the file is empty"),
    "comments-only": ("# nothing here\n", 1, "the file is empty"),
    "a-list": ("- pbxs\n- agents\n", 1, "the top level must be a mapping of sections"),
    "a-scalar": ("hello\n", 1, "not a single value"),
    "two-documents": (MINIMAL + "---\n" + MINIMAL, NEXT, "a second document (after `---`)"),
    "deep-flow-nesting": (MINIMAL + "x: " + "[" * 10_000 + "]" * 10_000 + "\n", NEXT, "nest"),
    "deep-block-nesting": (
        MINIMAL + "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n",
        NEXT + MAX_NESTING - 1,
        f"nested more than {MAX_NESTING} levels deep",
    ),
    "huge-file": (MINIMAL + "# " + "x" * MAX_CONFIG_BYTES + "\n", 1, "the file is larger than 256 KiB"),
    "too-many-values": (
        MINIMAL + "x: [" + "1," * MAX_VALUES + "1]\n",
        NEXT,
        f"more than {MAX_VALUES} values",
    ),
    "very-long-key": (MINIMAL + "k" * 5000 + ": 1\n", NEXT, "invalid YAML"),
    "very-long-line": (MINIMAL + "agents: [" + "'x'," * 30_000 + "]\n", NEXT, "agents[0]"),
    "unreadable-int": (MINIMAL + "x: 0b_\n", NEXT, "'0b_' is not a valid !!int"),
    "unreadable-bool": (MINIMAL + "x: !!bool maybe\n", NEXT, "'maybe' is not a valid !!bool"),
    "empty-int": (MINIMAL + "x: !!int ''\n", NEXT, "'' is not a valid !!int"),
    "unreadable-timestamp": (MINIMAL + "x: !!timestamp soon\n", NEXT, "'soon' is not a valid !!timestamp"),
    "list-as-key": (MINIMAL + "? [a, b]\n: 1\n", NEXT, "a key must be a plain value"),
    "duplicate-key": (
        MINIMAL + "mqtt:\n  port: 1883\n  port: 1884\n",
        NEXT + 2,
        "mqtt.port: duplicate key 'port' (first at line 6)",
    ),
    "infinite-duration": (MINIMAL + "    ping_interval: .inf\n", NEXT, "pbxs[0].ping_interval"),
    "duration-past-timedelta": (MINIMAL + "    ping_interval: 9999999999d\n", NEXT, "at most 3650d"),
    "catastrophic-regex": (
        MINIMAL + "tickets:\n  rules:\n    - name: r\n      when: {regex: '(a+)+$'}\n      priority: P1\n",
        NEXT + 3,
        "backtracks catastrophically",
    ),
    "dotted-model-package": (
        MINIMAL + "transcription:\n  enabled: true\n  default_language: en\n  models:\n"
        "    en: {package: no_such_parent.model}\n",
        NEXT + 4,
        "package no_such_parent.model is not installed",
    ),
}


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    # One valid load first: validation imports some modules lazily, and the first timed
    # load should not pay for them.
    warm = tmp_path_factory.mktemp("warm") / "cti.yaml"
    warm.write_text(MINIMAL + "tickets: {rules: [{name: r, when: {regex: 'x'}, priority: P1}]}\n")
    load_config(warm, check_secrets=False)
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for name, (content, _, _) in HOSTILE.items():
        path = folder / f"{name}.yaml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        paths[name] = path
    return paths


@pytest.mark.parametrize("name", list(HOSTILE))
def test_check_config_answers_a_hostile_file_with_one_located_line(name, hostile_files):
    path = hostile_files[name]
    _, line, words = HOSTILE[name]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cti_bridge", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "TEST_AMI_SECRET": "x"},
        timeout=60,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    header, *problems = done.stderr.splitlines()
    assert header.startswith("cti-bridge: invalid configuration")
    # One line, save for 30,000 bad agents: the first 100 and a count of the rest.
    assert len(problems) == (MAX_PROBLEMS + 1 if name == "very-long-line" else 1), problems
    assert problems[0].startswith(f"  {path}:{line}: "), problems
    assert words in problems[0]
    # The interpreter's start is most of it; the generous bound is for a loaded CI machine.
    assert elapsed < 5, f"{elapsed:.2f}s"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_the_loader_refuses_a_hostile_file_in_well_under_a_second(name, hostile_files, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    # CPU time (the regex package's limits count it too): a loaded machine stretches the wall.
    started = time.process_time()
    with pytest.raises(ConfigError) as caught:
        load_config(hostile_files[name], check_paths=True)
    elapsed = time.process_time() - started
    assert all(problem.line is not None for problem in caught.value.problems)
    assert elapsed < 1, f"{elapsed:.2f}s of CPU"


def test_a_tag_is_refused_even_where_the_value_is_never_used(tmp_path, monkeypatch):
    # Refused while composing, before any constructor could run: nothing of it is executed.
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    marker = tmp_path / "pwned"
    path = tmp_path / "cti.yaml"
    path.write_text(
        MINIMAL + f"logging:\n  level: info\n  x: !!python/object/apply:os.system ['touch {marker}']\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [p.line for p in caught.value.problems] == [NEXT + 2]
    assert not marker.exists()


def test_include_tag_points_to_the_planned_include_key(hostile_files, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    with pytest.raises(ConfigError) as caught:
        load_config(hostile_files["include-tag"])
    assert "planned as an `include:` key (issue #15)" in caught.value.problems[0].message


def test_merge_keys_and_a_few_aliases_still_work(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    path = tmp_path / "cti.yaml"
    agents = "".join(f"  - <<: *agent\n    id: a{i}\n    extension: '{1000 + i}'\n" for i in range(50))
    path.write_text(
        MINIMAL.replace("  - name: main\n", "  - &pbx\n    name: main\n")
        + "  - <<: *pbx\n    name: second\n    port: 5039\n"
        + "agents:\n  - &agent\n    id: lead\n    extension: '999'\n    skills: [billing, support]\n"
        + agents,
        encoding="utf-8",
    )
    config = load_config(path)
    assert [pbx.name for pbx in config.pbxs] == ["main", "second"]
    assert config.pbxs[1].port == 5039 and config.pbxs[1].username == "cti"
    assert len(config.agents) == 51 and config.agents[50].skills == ["billing", "support"]


def test_a_utf8_byte_order_mark_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    path = tmp_path / "cti.yaml"
    path.write_bytes(MINIMAL.encode("utf-8-sig"))
    assert load_config(path).pbxs[0].name == "main"


def test_a_device_file_is_not_read_for_ever(monkeypatch):
    # /dev/zero never ends: only one byte past the limit is read.
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_config("/dev/zero")
    assert "larger than" in caught.value.problems[0].message
    assert time.perf_counter() - started < 1


def test_a_mistake_repeated_thousands_of_times_is_reported_a_hundred_times(hostile_files, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    with pytest.raises(ConfigError) as caught:
        load_config(hostile_files["very-long-line"])
    *shown, rest = caught.value.problems
    assert len(shown) == MAX_PROBLEMS
    assert rest.message == f"and {30_000 - MAX_PROBLEMS} more problems from here on"
