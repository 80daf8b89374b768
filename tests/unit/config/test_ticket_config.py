"""The ticket workflow sections: fields, categories, priority names, required fields."""

import typing

import pytest

from cti_bridge.config import ConfigError, load_config
from cti_bridge.config.model import TicketConfig, TicketStatusName
from cti_bridge.tickets.fields import FieldSchema
from cti_bridge.tickets.model import TicketStatus
from tests.unit.config.test_loader import EXAMPLE, MINIMAL, write


def problems(tmp_path, monkeypatch, text):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, MINIMAL + text))
    return {(p.line, p.key): p.message for p in caught.value.problems}


def test_example_config_has_a_tree_priority_names_custom_fields_and_required_fields(monkeypatch):
    monkeypatch.setenv("CTI_AMI_SECRET", "x")
    tickets = load_config(EXAMPLE).tickets
    assert [node.zh for node in tickets.categories.tree][:4] == [
        "技术故障",
        "账户问题",
        "账务问题",
        "售后服务",
    ]
    assert {n.zh: n.priority for n in tickets.priority_names} == {
        "加急": "P1",
        "紧急": "P2",
        "常规": "P3",
        "低": "P4",
    }
    schema = FieldSchema.from_config(tickets)
    assert schema.required_for(TicketStatus.RESOLVED) == ("category", "resolution")
    assert schema.validate(
        {"callback_time": "晚上", "category": "consult/product/price"[:0] or "咨询/产品咨询/价格"}
    )


def test_required_field_statuses_are_ticket_statuses():
    assert set(typing.get_args(TicketStatusName)) == {s.value for s in TicketStatus} - {"new"}


def test_defaults_keep_free_text_categories_and_require_a_resolution():
    config = TicketConfig.model_validate({"rules": [{"name": "r", "when": {}, "category": "任意/文字"}]})
    assert config.categories.tree == [] and config.required_fields["resolved"] == ["resolution"]
    assert [n.key for n in config.priority_names] == ["critical", "urgent", "regular"]


def test_cross_references_are_reported_at_their_line(tmp_path, monkeypatch):
    found = problems(
        tmp_path,
        monkeypatch,
        """\
tickets:
  default_category: technical/network/login
  categories:
    tree:
      - key: technical
        zh: 技术故障
        en: Technical
        children:
          - key: network
            zh: 网络问题
            en: Network
            children: [{key: login, zh: 登录异常, en: Login}]
  fields:
    - {name: description}
    - {name: colour, type: choice, choices: [red]}
    - {name: colour, type: text}
  priority_names:
    - {key: urgent, zh: 紧急, en: Urgent, priority: P2}
    - {key: rush, zh: 加急, en: Rush, priority: P2}
  required_fields:
    resolved: [resolution, solution]
  rules:
    - name: partial
      when: {queue: [q]}
      category: 技术故障/网络问题
    - name: unknown
      when: {queue: [q]}
      category: 账户问题/忘记密码
    - name: fine
      when: {queue: [q]}
      category: 技术故障/网络问题/登录异常
""",
    )
    assert set(found) == {
        (6, "tickets.default_category"),
        (18, "tickets.fields[0].name"),
        (20, "tickets.fields[2].name"),
        (23, "tickets.priority_names[1].priority"),
        (25, "tickets.required_fields.resolved[1]"),
        (29, "tickets.rules[0].category"),
        (32, "tickets.rules[1].category"),
    }
    assert found[(6, "tickets.default_category")] == "write the category as '技术故障/网络问题/登录异常'"
    assert found[(18, "tickets.fields[0].name")] == "'description' is a standard field"
    assert found[(20, "tickets.fields[2].name")] == "'colour' is listed twice"
    assert found[(25, "tickets.required_fields.resolved[1]")] == "no field named 'solution'"
    assert "incomplete" in found[(29, "tickets.rules[0].category")]
    assert "no category '账户问题' at the top level" in found[(32, "tickets.rules[1].category")]


BAD_TREE = """\
tickets:
  categories:
    min_depth: {min_depth}
    tree:
      - {{key: a, zh: 甲, en: A}}
      - {{key: a, zh: 乙, en: a}}
      - key: c
        zh: 丙
        en: C
        children:
          - key: d
            zh: 丁
            en: D
            children:
              - {{key: e, zh: 戊, en: E, children: [{{key: f, zh: 己, en: F}}]}}
"""


def test_a_malformed_tree_is_reported_node_by_node(tmp_path, monkeypatch):
    # Field errors come first: the tree is checked once its nodes are well formed.
    found = problems(tmp_path, monkeypatch, BAD_TREE.format(min_depth=4))
    assert set(found) == {(7, "tickets.categories.min_depth")}
    found = problems(tmp_path, monkeypatch, BAD_TREE.format(min_depth=3))
    assert set(found) == {
        (10, "tickets.categories.tree[1].key"),
        (10, "tickets.categories.tree[1].en"),
        (19, "tickets.categories.tree[2].children[0].children[0].children"),
    }
    assert found[(10, "tickets.categories.tree[1].key")] == "'a' is used by a sibling already"


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("{name: c, type: choice}", "a choice field needs at least one choice"),
        ("{name: c, type: multi_choice, choices: []}", "a multi_choice field needs at least one choice"),
        ("{name: c, type: text, choices: [a]}", "only choice and multi_choice fields have choices, not text"),
        ("{name: c, type: text, pattern: '[a'}", "not a valid regular expression"),
        ("{name: c, type: date, pattern: 'a'}", "only text fields have a pattern"),
        ("{name: c, type: integer, min: 5, max: 1}", "min 5 is more than max 1"),
        ("{name: c, type: text, max: 1}", "only numbers have min and max"),
        ("{name: c, type: colour}", "Input should be 'text'"),
        ("{name: Bad-Name}", "String should match pattern"),
    ],
)
def test_custom_field_mistakes(tmp_path, monkeypatch, field, message):
    found = problems(tmp_path, monkeypatch, f"tickets:\n  fields:\n    - {field}\n")
    assert len(found) == 1
    [(line, key)] = found
    assert line == 7 and key.startswith("tickets.fields[0]")
    assert message in found[(line, key)]


def test_labels_cannot_hold_the_path_separator(tmp_path, monkeypatch):
    found = problems(
        tmp_path, monkeypatch, "tickets:\n  categories:\n    tree: [{key: a, zh: 甲/乙, en: A}]\n"
    )
    assert list(found) == [(7, "tickets.categories.tree[0].zh")]
    assert "cannot contain `/`" in found[(7, "tickets.categories.tree[0].zh")]


def test_rule_patterns_and_extract_fields_are_checked_at_their_line(tmp_path, monkeypatch):
    found = problems(
        tmp_path,
        monkeypatch,
        """\
tickets:
  rules:
    - name: order
      when:
        keywords: [退款, " "]
        regex: '订单号(\\d{8,}'
        in: [transcript, notes]
      extract:
        order_number: '订单号?[:：\\s]*\\d{8,}'
        product_model: '(型号)[:：\\s]*([A-Z0-9-]+)'
    - name: idle
      when: {queue: [support]}
""",
    )
    assert set(found) == {
        (9, "tickets.rules[0].when.keywords[1]"),
        (10, "tickets.rules[0].when.regex"),
        (11, "tickets.rules[0].when.in[1]"),
        (13, "tickets.rules[0].extract.order_number"),
        (14, "tickets.rules[0].extract.product_model"),
        (15, "tickets.rules[1]"),
    }
    assert found[(10, "tickets.rules[0].when.regex")].endswith(
        "is not a valid regular expression: missing ), unterminated subpattern at position 3"
    )
    assert (
        "needs one capture group around the value (it has 0)"
        in found[(13, "tickets.rules[0].extract.order_number")]
    )
    assert "(?P<product_model>...)" in found[(14, "tickets.rules[0].extract.product_model")]
    assert "does nothing" in found[(15, "tickets.rules[1]")]


def test_extract_names_a_field_a_rule_may_fill(tmp_path, monkeypatch):
    found = problems(
        tmp_path,
        monkeypatch,
        """\
tickets:
  rules:
    - name: order
      when: {}
      extract:
        warranty: '保修(\\d+)'
        urgency: '(加急)'
""",
    )
    assert found == {
        (10, "tickets.rules[0].extract.warranty"): "no field named 'warranty'",
        (
            11,
            "tickets.rules[0].extract.urgency",
        ): "set 'urgency' with the rule's own key, not by extracting it",
    }


def test_the_ivr_condition_takes_keypresses_written_as_numbers():
    config = TicketConfig.model_validate(
        {"rules": [{"name": "r", "when": {"ivr": {"main": [2, "3"]}}, "priority": "P2"}]}
    )
    assert config.rules[0].when.ivr == {"main": ["2", "3"]}
    assert config.rules[0].when.sources == ["description", "transcript"]


def test_a_bad_regex_is_reported_with_file_line_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "x")
    path = write(tmp_path, MINIMAL + "tickets:\n  rules:\n    - name: r\n      when: {regex: '[0-9'}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}:8: tickets.rules[0].when.regex: "
        "Value error, '[0-9' is not a valid regular expression: unterminated character set at position 0"
    )
