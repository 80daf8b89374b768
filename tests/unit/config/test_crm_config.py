"""The `crm:` section: URL template, headers, JSON paths, located errors, secrets read late."""

from datetime import timedelta

import pytest

from cti_bridge.config import ConfigError, load_config
from cti_bridge.config.model import CrmConfig
from cti_bridge.crm.service import crm_headers

BASE = """\
pbxs:
  - name: main
    username: cti
    secret: {env: TEST_AMI_SECRET}
"""


def load(tmp_path, crm_yaml, **kwargs):
    path = tmp_path / "cti.yaml"
    path.write_text(BASE + crm_yaml, encoding="utf-8")
    return load_config(path, **kwargs), path


def crm(**fields):
    return CrmConfig.model_validate(
        {"url": "https://crm.example/c?phone={e164}", "fields": {"name": "name"}} | fields
    )


def test_a_full_section_loads_with_its_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    monkeypatch.setenv("CRM_TOKEN", "t0k3n")
    config, _ = load(
        tmp_path,
        """\
crm:
  url: https://crm.example/api/customers?phone={e164}&raw={digits}
  headers:
    Authorization: {env: CRM_TOKEN, prefix: "Bearer "}
    Accept: application/json
  record: data
  fields:
    name: fullName
    vip: flags.vip
    orders: {path: "orders", limit: 3, id: orderNo, total: "amount"}
""",
    )
    section = config.crm
    assert section is not None and section.enabled
    assert section.url_for("+8613800138000") == (
        "https://crm.example/api/customers?phone=%2B8613800138000&raw=8613800138000"
    )
    assert section.record == ("data",) and section.fields.vip == ("flags", "vip")
    assert section.fields.orders is not None and section.fields.orders.limit == 3
    assert section.timeout == timedelta(seconds=2) and section.not_found_status == [404]
    assert section.circuit_breaker.failures == 5
    assert crm_headers(section) == {"Authorization": "Bearer t0k3n", "Accept": "application/json"}


def test_no_section_means_no_crm(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    config, _ = load(tmp_path, "")
    assert config.crm is None


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("data.0.fullName", ("data", "0", "fullName")),
        ("data[0].fullName", ("data", "0", "fullName")),
        ("$.data[0][1].x", ("data", "0", "1", "x")),
        ("$", ()),
        ("", ()),
        ("full name", ("full name",)),
    ],
)
def test_json_paths(path, steps):
    assert crm(record=path).record == steps


@pytest.mark.parametrize("path", ["a..b", "a.", "a[x]", "a[0", ".a", "a]b"])
def test_bad_json_paths_are_refused(path):
    with pytest.raises(ValueError, match=r"JSON path|empty step|dot|bracket|unexpected"):
        crm(fields={"name": path})


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (
            "https://crm.example/c?phone={phone}",
            "unknown placeholder {phone}; the known ones are {e164}, {digits}",
        ),
        ("https://crm.example/c", "must hold the number"),
        ("https://{e164}.crm.example/", "not in the host"),
        ("https://crm.example:{digits}/", "not in the host"),
        ("ftp://crm.example/{e164}", "http:// or https://"),
        ("https://user:pw@crm.example/{e164}", "no credentials in the URL"),
        ("https://crm.example/{e164:>20}", "without a format"),
        ("https://crm.example/{e164!r}", "without a format"),
        ("https://crm.example/{e164", "not a URL template"),
    ],
)
def test_bad_url_templates_are_refused(url, why):
    with pytest.raises(ValueError, match="url") as caught:
        crm(url=url)
    assert why in str(caught.value)


def test_errors_name_file_line_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            """\
crm:
  url: https://crm.example/c?phone={number}
  headers:
    X-Api-Key: in-clear-key
    Bad Name: x
  timeout: 0s
  not_found_status: [200, 404]
  fields:
    name: data..name
    orders: {path: orders}
  colour: red
""",
        )
    problems = {(p.line, p.key) for p in caught.value.problems}
    assert problems == {
        (6, "crm.url"),
        (8, "crm.headers.X-Api-Key"),
        (9, "crm.headers.Bad Name"),
        (10, "crm.timeout"),
        (11, "crm.not_found_status[0]"),
        (13, "crm.fields.name"),
        (14, "crm.fields.orders"),
        (15, "crm.colour"),
    }
    text = str(caught.value)
    assert "cti.yaml:8: crm.headers.X-Api-Key: " in text and "in clear" in text
    assert "in-clear-key" not in text  # the refused secret is not repeated either


def test_header_secrets_are_checked_at_load_and_read_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    monkeypatch.delenv("CRM_MISSING", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    section = f"""\
crm:
  url: https://crm.example/c/{{digits}}
  headers:
    Authorization: {{env: CRM_MISSING}}
    X-Token: {{file: {token_file}}}
  fields: {{name: name}}
"""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, section)
    [problem] = caught.value.problems
    assert (problem.line, problem.key) == (8, "crm.headers.Authorization")
    assert "CRM_MISSING is not set" in problem.message
    config, _ = load(tmp_path, section, check_secrets=False)  # check-config --no-secrets, the CLI
    assert config.crm is not None
    monkeypatch.setenv("CRM_MISSING", "now set")
    assert crm_headers(config.crm) == {"Authorization": "now set", "X-Token": "from-a-file"}


def test_a_secret_with_a_line_break_is_refused_when_read(monkeypatch):
    monkeypatch.setenv("CRM_TOKEN", "abc\r\nX-Evil: 1")
    section = crm(headers={"Authorization": {"env": "CRM_TOKEN"}})
    with pytest.raises(ValueError, match=r"crm\.headers\.Authorization: the secret holds a line break"):
        crm_headers(section)


def test_a_section_switched_off_needs_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    monkeypatch.delenv("CRM_MISSING", raising=False)
    config, _ = load(
        tmp_path,
        """\
crm:
  enabled: false
  url: https://crm.example/c/{digits}
  headers: {Authorization: {env: CRM_MISSING}}
  fields: {name: name}
""",
    )
    assert config.crm is not None and not config.crm.enabled


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Authorization": {"env": "A", "file": "/b"}}, "exactly one of"),
        ({"Accept": {"value": "a", "prefix": "b"}}, "prefix"),
        ({"Accept": "two\nlines"}, "line break"),
        ({"Accept": 3}, "a header is text"),
        ({"Cookie": "session=1"}, "carries a credential"),
    ],
)
def test_bad_headers(headers, why):
    with pytest.raises(ValueError, match=why):
        crm(headers=headers)


def test_a_key_yaml_reads_as_a_boolean_gets_told_to_quote_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            "crm:\n  url: https://c.example/{e164}\n  fields: {name: name, orders: {path: o, id: no}}\n",
        )
    [problem] = caught.value.problems
    assert problem.key == "crm.fields.orders.id" and "quote the key" in problem.message
    assert crm(fields={"name": 0}).fields.name == ("0",)  # a bare index is a path too


def test_fields_must_read_something():
    with pytest.raises(ValueError, match="at least one field"):
        crm(fields={})
    with pytest.raises(ValueError, match="at least one of id, date"):
        crm(fields={"orders": {"path": "orders"}})


def test_the_example_configs_commented_crm_section_is_valid(monkeypatch):
    from pathlib import Path

    import yaml

    example = (Path(__file__).parents[3] / "config" / "cti-bridge.yaml").read_text(encoding="utf-8")
    lines = example.splitlines()
    start = lines.index("# crm:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line.removeprefix("#").removeprefix(" "))
    section = CrmConfig.model_validate(yaml.safe_load("\n".join(block))["crm"])
    assert section.url_for("+8613800138000").endswith("phone=%2B8613800138000")
    assert section.fields.orders is not None and section.fields.orders.summary == ("items", "0", "title")
    monkeypatch.setenv("CTI_CRM_TOKEN", "abc")
    assert crm_headers(section)["Authorization"] == "Bearer abc"
