"""Configs that were accepted although they cannot work (issue #12 item 7), each a located error."""

from datetime import timedelta

import pytest

from cti_bridge.config import ConfigError, load_config
from cti_bridge.config.model import Config, WebConfig

MINIMAL = """\
pbxs:
  - name: main
    username: cti
    secret: {env: TEST_AMI_SECRET}
"""


def problems(tmp_path, monkeypatch, text):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    path = tmp_path / "cti.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return {(p.line, p.key): p.message for p in caught.value.problems}, str(caught.value), path


def test_duplicate_keys_at_every_level_are_reported_with_the_first_line(tmp_path, monkeypatch):
    found, text, path = problems(
        tmp_path,
        monkeypatch,
        MINIMAL
        + """\
    username: other
mqtt:
  port: 1883
  reconnect: {initial_delay: 1s, initial_delay: 2s}
  port: 1884
web: {}
web: {port: 8081}
""",
    )
    assert found == {
        (5, "pbxs[0].username"): "duplicate key 'username' (first at line 3)",
        (9, "mqtt.port"): "duplicate key 'port' (first at line 7)",
        (8, "mqtt.reconnect.initial_delay"): "duplicate key 'initial_delay' (first at line 8)",
        (11, "web"): "duplicate key 'web' (first at line 10)",
    }
    assert f"{path}:9: mqtt.port: duplicate key 'port' (first at line 7)" in text.splitlines()


def test_a_duplicate_in_an_anchored_mapping_is_reported_once(tmp_path, monkeypatch):
    found, _, _ = problems(
        tmp_path,
        monkeypatch,
        MINIMAL.replace("  - name: main\n", "  - &pbx\n    name: main\n    host: a\n    host: b\n")
        + "  - <<: *pbx\n    name: second\n",
    )
    assert found == {(5, "pbxs[0].host"): "duplicate key 'host' (first at line 4)"}


def test_a_merged_key_may_be_overridden(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    path = tmp_path / "cti.yaml"
    path.write_text(
        MINIMAL.replace("  - name: main\n", "  - &pbx\n    name: main\n")
        + "  - <<: *pbx\n    name: second\n",
        encoding="utf-8",
    )
    assert [pbx.name for pbx in load_config(path).pbxs] == ["main", "second"]


# Every period whose 0 would spin, time out at once or divide by zero: (YAML under MINIMAL, key).
ZERO_REFUSED = [
    ("    ping_interval: 0s\n", "pbxs[0].ping_interval"),
    ("    reconnect: {initial_delay: 0s}\n", "pbxs[0].reconnect.initial_delay"),
    ("    reconnect: {max_delay: 0}\n", "pbxs[0].reconnect.max_delay"),
    ("    originate: {username: d, secret: {env: X}, ring_timeout: 0s}\n", "pbxs[0].originate.ring_timeout"),
    ("mqtt: {reconnect: {initial_delay: 0ms}}\n", "mqtt.reconnect.initial_delay"),
    ("transcription: {enabled: false, lease: 0s}\n", "transcription.lease"),
    ("sla: {recheck_every: 0s}\n", "sla.recheck_every"),
    ("dispatch: {response_reference: 0s}\n", "dispatch.response_reference"),
    ("dispatch: {response_window: 0s}\n", "dispatch.response_window"),
    ("dispatch: {requeue_every: 0s}\n", "dispatch.requeue_every"),
    ("web: {session_lifetime: 0s}\n", "web.session_lifetime"),
    (
        "crm: {url: 'https://crm.example/{e164}', fields: {name: n}, circuit_breaker: {open_for: 0s}}\n",
        "crm.circuit_breaker.open_for",
    ),
]


@pytest.mark.parametrize(("yaml_text", "key"), ZERO_REFUSED)
def test_a_zero_period_is_refused_at_its_key(tmp_path, monkeypatch, yaml_text, key):
    found, _, _ = problems(tmp_path, monkeypatch, MINIMAL + yaml_text)
    assert list(found) == [(5, key)]
    assert "must be longer than zero" in found[(5, key)]


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("tickets: {reuse_open_ticket_within: -60}\n", "tickets.reuse_open_ticket_within"),
        ("transcription: {enabled: false, recording_wait: -1}\n", "transcription.recording_wait"),
        ("crm: {url: 'https://crm.example/{e164}', fields: {name: n}, cache_ttl: -5}\n", "crm.cache_ttl"),
    ],
)
def test_a_negative_duration_is_refused_where_zero_means_never(tmp_path, monkeypatch, yaml_text, key):
    found, _, _ = problems(tmp_path, monkeypatch, MINIMAL + yaml_text)
    assert found == {(5, key): "Value error, a duration cannot be negative"}


def test_zero_means_never_where_the_field_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    path = tmp_path / "cti.yaml"
    path.write_text(
        MINIMAL
        + "tickets: {reuse_open_ticket_within: 0s}\n"
        + "transcription: {enabled: false, recording_wait: 0}\n"
        + "crm: {url: 'https://crm.example/{e164}', fields: {name: n}, cache_ttl: 0, not_found_ttl: 0s}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.tickets.reuse_open_ticket_within == timedelta(0)
    assert config.transcription.recording_wait == timedelta(0)
    assert config.crm is not None and config.crm.cache_ttl == timedelta(0)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e400", "99999999999d", "3651d"])
def test_a_duration_out_of_range_is_a_located_error(tmp_path, monkeypatch, value):
    found, _, _ = problems(tmp_path, monkeypatch, MINIMAL + f"    ping_interval: {value}\n")
    assert list(found) == [(5, "pbxs[0].ping_interval")]


def test_a_reconnect_ceiling_below_its_first_delay_is_refused(tmp_path, monkeypatch):
    found, _, _ = problems(
        tmp_path, monkeypatch, MINIMAL + "    reconnect: {initial_delay: 30s, max_delay: 5s}\n"
    )
    assert list(found) == [(5, "pbxs[0].reconnect.max_delay")]


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("    port: 0\n", "pbxs[0].port"),
        ("    port: 65536\n", "pbxs[0].port"),
        ("mqtt: {port: 0}\n", "mqtt.port"),
        ("mqtt: {port: 70000}\n", "mqtt.port"),
        ("web: {port: 0}\n", "web.port"),
        ("web: {port: 65536}\n", "web.port"),
        ("web: {port: -1}\n", "web.port"),
    ],
)
def test_a_port_out_of_1_to_65535_is_refused(tmp_path, monkeypatch, yaml_text, key):
    found, _, _ = problems(tmp_path, monkeypatch, MINIMAL + yaml_text)
    assert list(found) == [(5, key)]


def test_web_port_0_stays_for_a_config_a_test_builds():
    assert WebConfig(port=0).port == 0
    data = {"pbxs": [{"name": "m", "username": "u", "secret": {"env": "X"}}], "web": {"port": 0}}
    assert Config.model_validate(data).web.port == 0


@pytest.mark.parametrize(
    ("rule_text", "key"),
    [
        ("when: {regex: '(a+)+$'}\n      priority: P1", "tickets.rules[0].when.regex"),
        ("when: {regex: '(x+x+)+y'}\n      priority: P1", "tickets.rules[0].when.regex"),
        ("when: {regex: '(\\w+\\s?)+$'}\n      priority: P1", "tickets.rules[0].when.regex"),
        ("when: {}\n      extract: {product: '((a|aa)+)$'}", "tickets.rules[0].extract.product"),
    ],
)
def test_a_catastrophic_rule_pattern_is_refused_at_its_line(tmp_path, monkeypatch, rule_text, key):
    found, _, _ = problems(
        tmp_path,
        monkeypatch,
        MINIMAL + "tickets:\n  fields: [{name: product}]\n  rules:\n    - name: r\n      " + rule_text + "\n",
    )
    [(line, where)] = found
    assert where == key and line in (9, 10)
    assert "backtracks catastrophically" in found[(line, where)]


def test_a_catastrophic_field_pattern_is_refused_at_its_line(tmp_path, monkeypatch):
    found, _, _ = problems(
        tmp_path,
        monkeypatch,
        MINIMAL + "tickets:\n  fields:\n    - {name: serial, pattern: '([A-Z]|[A-Z0-9])+'}\n",
    )
    [(line, key)] = found
    assert (line, key) == (7, "tickets.fields[0].pattern")
    assert "backtracks catastrophically" in found[(line, key)]


def test_sound_patterns_are_accepted_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    path = tmp_path / "cti.yaml"
    path.write_text(
        MINIMAL
        + "tickets:\n  fields: [{name: order_no, pattern: '[A-Z]{2}\\d{6,10}'}]\n  rules:\n"
        + "    - name: refund\n      when: {regex: '(退款|refund)\\s*(\\d+-)+'}\n      priority: P2\n"
        + "      extract: {order_no: '订单号?[:：\\s]*(\\d{8,})'}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.tickets.rules[0].when.regex is not None
