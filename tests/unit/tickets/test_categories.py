"""The category tree: paths in any spelling, one canonical form, labels, partial paths."""

import pytest

from cti_bridge.config import load_config
from cti_bridge.config.model import CategoriesConfig
from cti_bridge.tickets.categories import CategoryTree
from cti_bridge.tickets.errors import CategoryError
from tests.unit.config.test_loader import EXAMPLE

TREE = {
    "tree": [
        {
            "key": "technical",
            "zh": "技术故障",
            "en": "Technical fault",
            "children": [
                {
                    "key": "network",
                    "zh": "网络问题",
                    "en": "Network",
                    "children": [
                        {"key": "login", "zh": "登录异常", "en": "Login failure"},
                        {"key": "slow", "zh": "网速慢", "en": "Slow connection"},
                    ],
                },
                {"key": "other", "zh": "其他", "en": "Other"},
            ],
        },
        {"key": "inquiry", "zh": "咨询", "en": "Enquiry"},
    ]
}


def tree(min_depth=3):
    return CategoryTree.from_config(CategoriesConfig.model_validate({**TREE, "min_depth": min_depth}))


@pytest.mark.parametrize(
    "text",
    [
        "技术故障/网络问题/登录异常",
        " 技术故障 / 网络问题 / 登录异常 ",
        "Technical fault/Network/Login failure",
        "technical fault/NETWORK/login  failure",
        "technical/network/login",
        "技术故障/network/Login failure",
    ],
)
def test_every_spelling_reads_to_the_canonical_chinese_path(text):
    path = tree().parse(text)
    assert path.canonical == str(path) == "技术故障/网络问题/登录异常"
    assert path.code == "technical/network/login" and path.keys == ("technical", "network", "login")
    assert path.label("en") == "Technical fault/Network/Login failure"
    assert tree().canonical(text) == "技术故障/网络问题/登录异常"


def test_label_in_a_language():
    assert tree().label("technical/network/slow", "en") == "Technical fault/Network/Slow connection"
    assert tree().label("Enquiry", "zh") == "咨询"


def test_unknown_segment_names_it_and_the_known_ones():
    with pytest.raises(CategoryError, match=r"no category '网络' under 技术故障 \(known: 网络问题, 其他\)"):
        tree().parse("技术故障/网络/登录异常")
    with pytest.raises(CategoryError, match="at the top level"):
        tree().parse("账户问题")


@pytest.mark.parametrize("text", ["", "/", "技术故障//登录异常", "咨询/", "技术故障/其他/更多"])
def test_malformed_or_too_deep_paths_are_refused(text):
    with pytest.raises(CategoryError):
        tree().parse(text)


def test_a_path_must_reach_a_leaf_unless_min_depth_allows_stopping():
    with pytest.raises(CategoryError, match=r"incomplete.*登录异常, 网速慢"):
        tree().parse("技术故障/网络问题")
    with pytest.raises(CategoryError, match="incomplete"):
        tree(min_depth=2).parse("技术故障")
    assert tree(min_depth=2).parse("技术故障/网络问题").depth == 2
    assert tree(min_depth=1).parse("technical").canonical == "技术故障"
    # Shallow leaves are complete whatever min_depth says.
    assert tree().parse("技术故障/其他").is_leaf and tree().parse("咨询").depth == 1


def test_paths_lists_every_complete_path():
    assert [p.canonical for p in tree().paths()] == [
        "技术故障/网络问题/登录异常",
        "技术故障/网络问题/网速慢",
        "技术故障/其他",
        "咨询",
    ]
    assert len(list(tree(min_depth=1).paths())) == 6  # every node
    for path in tree(min_depth=2).paths():
        assert tree(min_depth=2).parse(path.code) == path


def test_without_a_tree_categories_are_free_text():
    empty = CategoryTree()
    assert empty.is_empty and empty.canonical(" 业务咨询/产品咨询/价格 ") == "业务咨询/产品咨询/价格"
    assert empty.label("a/b", "en") == "a/b"
    with pytest.raises(CategoryError):
        empty.canonical("  ")
    with pytest.raises(CategoryError, match="no category tree"):
        empty.parse("a/b")


def test_the_example_config_tree_holds_the_rule_categories(monkeypatch):
    monkeypatch.setenv("CTI_AMI_SECRET", "x")
    tickets = load_config(EXAMPLE).tickets
    example = CategoryTree.from_config(tickets.categories)
    assert example.parse("technical/network/login").canonical == "技术故障/网络问题/登录异常"
    for rule in tickets.rules:
        assert rule.category is None or example.canonical(rule.category) == rule.category
