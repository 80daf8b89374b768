"""The `tls` sections of mqtt and pbxs[]: check-config loads every file with ssl, as the daemon
would, and says which key is wrong, on which line."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import pytest
import yaml

from cti_bridge.cli import main
from cti_bridge.config import ConfigError, load_config
from cti_bridge.config.model import TlsClientConfig, WebTlsConfig
from cti_bridge.config.tls import client_context
from tests.support.tls import CLIENT_KEY_PASSPHRASE, Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("other"), "other")


def write(tmp_path: Path, mqtt_tls: str, pbx_tls: str = "") -> Path:
    path = tmp_path / "cti.yaml"
    path.write_text(
        "pbxs:\n"
        "  - name: main\n"
        "    username: cti\n"
        "    secret: {env: TEST_AMI_SECRET}\n"
        f"{pbx_tls}"
        "mqtt:\n"
        "  tls:\n"
        f"{mqtt_tls}",
        encoding="utf-8",
    )
    return path


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AMI_SECRET", "s3cret")
    monkeypatch.setenv("TEST_KEY_PASSPHRASE", CLIENT_KEY_PASSPHRASE)


def problems(path: Path) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [(p.line, p.key, p.message) for p in caught.value.problems]


def test_a_complete_tls_setup_loads_and_takes_the_tls_ports(tmp_path, pki):
    path = write(
        tmp_path,
        f"    ca: {pki.ca}\n"
        f"    certificate: {pki.client_certificate}\n"
        f"    key: {pki.client_key_encrypted}\n"
        "    key_password: {env: TEST_KEY_PASSPHRASE}\n",
        pbx_tls=f"    tls: {{ca: {pki.ca}, verify_hostname: false}}\n",
    )
    config = load_config(path)
    assert config.mqtt.port == 8883 and config.pbxs[0].port == 5039
    assert config.mqtt.tls is not None and config.mqtt.tls.verify_hostname
    assert config.pbxs[0].tls is not None and not config.pbxs[0].tls.verify_hostname


def test_an_explicit_port_is_kept_with_tls(tmp_path, pki):
    path = write(tmp_path, f"    ca: {pki.ca}\n")
    path.write_text(path.read_text() + "  port: 18883\n")
    assert load_config(path).mqtt.port == 18883


def test_a_missing_ca_is_reported_at_its_line(tmp_path):
    path = write(tmp_path, f"    ca: {tmp_path}/nope.pem\n")
    assert problems(path) == [
        (7, "mqtt.tls.ca", f"cannot read {tmp_path}/nope.pem: No such file or directory")
    ]


def test_a_ca_file_without_a_certificate(tmp_path):
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    [(line, key, message)] = problems(write(tmp_path, f"    ca: {tmp_path}/junk.pem\n"))
    assert (line, key) == (7, "mqtt.tls.ca") and "holds no PEM certificate" in message


def test_a_key_of_another_certificate(tmp_path, pki, other):
    path = write(
        tmp_path,
        f"    ca: {pki.ca}\n    certificate: {pki.client_certificate}\n    key: {other.client_key}\n",
    )
    [(line, key, message)] = problems(path)
    assert (line, key) == (9, "mqtt.tls.key")
    assert (
        message
        == f"the key in {other.client_key} does not belong to the certificate in {pki.client_certificate}"
    )


def test_an_encrypted_key_needs_its_passphrase(tmp_path, pki, monkeypatch):
    base = (
        f"    ca: {pki.ca}\n    certificate: {pki.client_certificate}\n    key: {pki.client_key_encrypted}\n"
    )
    [(line, key, message)] = problems(write(tmp_path, base))
    assert (line, key) == (6, "mqtt.tls.key_password")  # not in the file: its section's line
    assert "is encrypted and the passphrase is needed" in message
    monkeypatch.setenv("TEST_KEY_PASSPHRASE", "wrong")
    path = write(tmp_path, base + "    key_password: {env: TEST_KEY_PASSPHRASE}\n")
    assert problems(path) == [
        (10, "mqtt.tls.key_password", f"{pki.client_key_encrypted} is encrypted and the passphrase is wrong")
    ]
    monkeypatch.delenv("TEST_KEY_PASSPHRASE")
    assert problems(path) == [
        (10, "mqtt.tls.key_password", "environment variable TEST_KEY_PASSPHRASE is not set")
    ]


def test_a_certificate_without_its_key(tmp_path, pki):
    [(_, key, message)] = problems(write(tmp_path, f"    certificate: {pki.client_certificate}\n"))
    assert key == "mqtt.tls.key" and "holds no PEM private key: name the key's file in `key`" in message


def test_a_key_without_a_certificate_is_refused(tmp_path, pki):
    [(line, key, message)] = problems(write(tmp_path, f"    key: {pki.client_key}\n"))
    assert (line, key) == (6, "mqtt.tls") and "go with `certificate`" in message


def test_an_unreadable_pbx_ca_is_reported_at_its_pbx(tmp_path, pki):
    path = write(tmp_path, f"    ca: {pki.ca}\n", pbx_tls=f"    tls:\n      ca: {tmp_path}/gone.pem\n")
    [(line, key, _)] = problems(path)
    assert (line, key) == (6, "pbxs[0].tls.ca")


def test_a_pbx_client_certificate_is_checked_too(tmp_path, pki, other):
    pbx_tls = f"    tls:\n      certificate: {pki.client_certificate}\n      key: {other.client_key}\n"
    [(line, key, message)] = problems(write(tmp_path, f"    ca: {pki.ca}\n", pbx_tls=pbx_tls))
    assert (line, key) == (7, "pbxs[0].tls.key") and "does not belong to the certificate" in message


def test_check_config_answers_fast_with_a_located_line(tmp_path, pki, other, capsys):
    path = write(
        tmp_path,
        f"    ca: {pki.ca}\n    certificate: {pki.client_certificate}\n    key: {other.client_key}\n",
    )
    started = time.monotonic()
    assert main(["check-config", "--config", str(path)]) != 0
    assert time.monotonic() - started < 1
    assert f"{path}:9: mqtt.tls.key: the key in" in capsys.readouterr().err


def test_the_context_checks_the_server_and_its_name(pki):
    context = client_context(TlsClientConfig(ca=pki.ca))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    relaxed = client_context(TlsClientConfig(ca=pki.ca, verify_hostname=False))
    assert relaxed.verify_mode == ssl.CERT_REQUIRED and not relaxed.check_hostname


def test_the_example_configs_commented_tls_sections_are_valid():
    example = (Path(__file__).parents[3] / "config" / "cti-bridge.yaml").read_text(encoding="utf-8")
    lines = example.splitlines()
    sections = []
    for index, line in enumerate(lines):
        indent, marker, rest = line.partition("# tls:")
        if not marker or indent.strip():
            continue
        # The section the example sits in: the pages' `web.tls` has a model of its own.
        top_level = next(above for above in reversed(lines[:index]) if above[:1].isalpha())
        model = WebTlsConfig if top_level.startswith("web:") else TlsClientConfig
        if rest.strip():  # inline: `# tls: {ca: ..., verify_hostname: true}`
            sections.append(model.model_validate(yaml.safe_load(rest)))
            continue
        block = []
        for following in lines[index + 1 :]:
            if not following.startswith(indent + "#   "):
                break
            block.append(following.removeprefix(indent + "#").split("  #")[0])
        sections.append(model.model_validate(yaml.safe_load("\n".join(block))))
    clients = [section for section in sections if isinstance(section, TlsClientConfig)]
    assert len(clients) == 2 and clients[1].certificate is not None and clients[1].key_password is not None
    assert [type(section) for section in sections].count(WebTlsConfig) == 1
