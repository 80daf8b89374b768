"""Priority names: 常规/紧急/加急 <-> P1..P4, both ways."""

import pytest

from cti_bridge.config.model import TicketConfig
from cti_bridge.tickets.errors import PriorityError
from cti_bridge.tickets.priorities import PriorityName, PriorityNames


@pytest.mark.parametrize(
    ("text", "code"),
    [("加急", "P1"), ("critical", "P1"), ("Urgent", "P2"), ("紧急", "P2"), ("常规", "P3"), ("p4", "P4")],
)
def test_name_to_code(text, code):
    assert PriorityNames().code(text) == code


def test_code_to_name_and_label():
    names = PriorityNames()
    assert names.name("P2") == PriorityName("urgent", "紧急", "Urgent", "P2")
    assert names.label("P1", "zh") == "加急" and names.label("P3", "en") == "Regular"
    assert names.name("P4") is None and names.label("P4", "zh") == "P4"


def test_unknown_names_and_codes_are_refused_with_the_accepted_spellings():
    with pytest.raises(PriorityError, match=r"P1, P2, P3, P4 or a name .*紧急/urgent"):
        PriorityNames().code("very urgent")
    with pytest.raises(PriorityError):
        PriorityNames().name("P5")


def test_from_config():
    config = TicketConfig.model_validate(
        {"priority_names": [{"key": "low", "zh": "低", "en": "Low", "priority": "P4"}]}
    )
    names = PriorityNames.from_config(config.priority_names)
    assert names.code("低") == "P4" and names.name("P1") is None
    assert [n.zh for n in PriorityNames.from_config(TicketConfig().priority_names).names] == [
        "加急",
        "紧急",
        "常规",
    ]


def test_a_code_has_at_most_one_name():
    with pytest.raises(ValueError, match="its own code"):
        PriorityNames([PriorityName("a", "甲", "A", "P1"), PriorityName("b", "乙", "B", "P1")])
