"""What a new user meets first, through the real `cti-bridge` process: --version, --help,
check-config on the shipped example, a typo, a bad region, and a pipe closed early."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from cti_bridge.store import Store
from cti_bridge.tickets.model import TicketNumbering
from tests.support.helpers import inbound_call, new_ticket

EXAMPLE = Path(__file__).parents[2] / "config" / "cti-bridge.yaml"

MINIMAL = """\
pbxs:
  - name: main
    username: cti
    secret: {{env: FIRST_RUN_SECRET}}
    ping_interval: 10s
phone: {{default_region: CN}}
store: {{url: "sqlite:///{db}"}}
"""


# The user's environment, without what would change the answers (and without the test run's
# asyncio debug mode, whose slow-step warnings are not the command's output).
_NOT_INHERITED = ("CTI_AMI_SECRET", "CTI_BRIDGE_CONFIG", "CTI_BRIDGE_MODELS", "PYTHONASYNCIODEBUG")


def environment(**env: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}, **env}


def cti_bridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cti_bridge", *args],
        capture_output=True,
        text=True,
        env=environment(**(env or {})),
        timeout=60,
        check=False,
    )


def config_file(tmp_path: Path, text: str = MINIMAL) -> Path:
    path = tmp_path / "cti.yaml"
    path.write_text(text.format(db=tmp_path / "cti.db"), encoding="utf-8")
    return path


def test_version_and_the_default_config_path_in_help():
    done = cti_bridge("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"cti-bridge {metadata.version('cti-bridge')}")
    top = cti_bridge("--help")
    assert top.returncode == 0 and "/etc/cti-bridge/cti-bridge.yaml" in top.stdout
    assert "$CTI_BRIDGE_CONFIG" in top.stdout
    # Each command's -c says its default too, the environment's when set, never cut at a hyphen.
    listing = cti_bridge("tickets", "list", "--help", env={"CTI_BRIDGE_CONFIG": "/srv/cti-bridge/main.yaml"})
    assert listing.returncode == 0 and "(default: /srv/cti-bridge/main.yaml;" in listing.stdout


def test_check_config_on_the_shipped_example_says_what_to_do(tmp_path):
    done = cti_bridge("check-config", "-c", str(EXAMPLE), env={"CTI_BRIDGE_MODELS": str(tmp_path)})
    assert done.returncode == 2
    problems = [line.strip() for line in done.stderr.splitlines()[1:]]
    secret, english, chinese = problems
    assert secret.startswith(f"{EXAMPLE}:12: pbxs[0].secret: environment variable CTI_AMI_SECRET is not set")
    assert "export CTI_AMI_SECRET=" in secret and "point secret: at a file ({file: /path})" in secret
    # The example's folders are not $CTI_BRIDGE_MODELS here: the command says where to put them.
    assert english.endswith(
        "/var/lib/cti-bridge/models/vosk-model-small-en-us-0.15 is not a Vosk model (no such folder): "
        "fetch the model with `cti-bridge models fetch vosk-model-small-en-us-0.15 "
        "--dest /var/lib/cti-bridge/models`, or fix transcription.models.en.path (see models/README.md)"
    )
    # No checksum for it in the manifest: fetch would ask for one, so the hint does.
    assert (
        "`cti-bridge models fetch vosk-model-small-cn-0.22 --dest /var/lib/cti-bridge/models --sha256 HEX`"
        in (chinese)
    )
    ok = cti_bridge("check-config", "-c", str(EXAMPLE), env={"CTI_AMI_SECRET": "s3cret"})
    assert ok.returncode == 2 and "pbxs[0].secret" not in ok.stderr  # the models are still missing


def test_a_typo_gets_the_key_it_meant_at_its_line(tmp_path):
    path = config_file(
        tmp_path, MINIMAL.replace("ping_interval", "ping_intervall") + "mqtt: {{qos: 1, prot: 1883}}\n"
    )
    done = cti_bridge("check-config", "-c", str(path), env={"FIRST_RUN_SECRET": "x"})
    assert done.returncode == 2
    assert (
        f"{path}:5: pbxs[0].ping_intervall: unknown key 'ping_intervall'; did you mean 'ping_interval'?"
    ) in done.stderr
    assert f"{path}:8: mqtt.prot: unknown key 'prot'; did you mean 'port'?" in done.stderr
    assert "Extra inputs are not permitted" not in done.stderr


def test_a_key_like_none_here_lists_the_keys_there(tmp_path):
    path = config_file(tmp_path, MINIMAL + "logging: {{colour: blue}}\n")
    done = cti_bridge("check-config", "-c", str(path), env={"FIRST_RUN_SECRET": "x"})
    assert (
        f"{path}:8: logging.colour: unknown key 'colour'; the keys here are: format, level, mask_numbers"
    ) in done.stderr


def test_an_unknown_phone_region_is_refused_at_its_line(tmp_path):
    path = config_file(tmp_path, MINIMAL.replace("default_region: CN", "default_region: XX"))
    done = cti_bridge("check-config", "-c", str(path), env={"FIRST_RUN_SECRET": "x"})
    assert done.returncode == 2
    assert f"{path}:6: phone.default_region: Value error, 'XX' is not a country" in done.stderr
    assert "ISO 3166 code, e.g. CN, US, GB" in done.stderr
    lower = config_file(tmp_path, MINIMAL.replace("default_region: CN", "default_region: us"))
    assert cti_bridge("check-config", "-c", str(lower), env={"FIRST_RUN_SECRET": "x"}).returncode == 0


def test_a_missing_config_file_says_how_to_give_one(tmp_path):
    done = cti_bridge("tickets", "list", env={"CTI_BRIDGE_CONFIG": str(tmp_path / "none.yaml")})
    assert done.returncode == 2
    assert f"{tmp_path / 'none.yaml'}: <top>: cannot read: No such file or directory" in done.stderr
    assert "give the config file with -c FILE or $CTI_BRIDGE_CONFIG" in done.stderr


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    path = config_file(tmp_path)

    async def many_tickets() -> None:
        store = await Store.open(f"sqlite:///{tmp_path}/cti.db", TicketNumbering())
        try:
            for n in range(400):  # far more JSON than a pipe holds (64 KiB)
                await store.create_ticket_for_call(new_ticket(), inbound_call(f"9.{n}"), None, 1.8e9 + n)
        finally:
            await store.close()

    asyncio.run(many_tickets())
    # As `cti-bridge tickets list --json | head -1` does: read one line, close the pipe.
    with subprocess.Popen(
        [sys.executable, "-m", "cti_bridge", "tickets", "list", "--json", "--limit", "400", "-c", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().strip() == b"["
        process.stdout.close()
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert err == ""
    assert code == 141  # 128 + SIGPIPE, as a shell reports `yes | head`
    # The whole list, read to its end, is unchanged.
    full = cti_bridge("tickets", "list", "--json", "--limit", "400", "-c", str(path))
    assert full.returncode == 0 and len(json.loads(full.stdout)) == 400
