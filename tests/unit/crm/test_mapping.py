"""The CRM's JSON answer through the field mapping: found, not found, wrong types, wrong shapes."""

import pytest

from cti_bridge.config.model import CrmConfig
from cti_bridge.crm.mapping import MAX_TEXT, CrmAnswerError, read_answer
from cti_bridge.tickets.crm import CrmOrder

PHONE = "+8613800138000"


def config(**overrides):
    return CrmConfig.model_validate(
        {
            "url": "https://crm.example/c?phone={e164}",
            "record": "data",
            "fields": {
                "name": "fullName",
                "company": "org.name",
                "email": "contact.email",
                "tier": "level",
                "vip": "isVip",
                "external_id": "id",
                "notes": "remark",
                "orders": {
                    "path": "orders",
                    "limit": 2,
                    "id": "no",
                    "total": "amount",
                    "summary": "items[0]",
                },
            },
            "vip_tiers": ["Gold"],
        }
        | overrides
    )


def read(answer, **overrides):
    return read_answer(config(**overrides), answer, phone=PHONE, fetched_at=5.0)


def test_a_full_record():
    mapped = read(
        {
            "data": [
                {
                    "id": 42017,
                    "fullName": " 王芳 ",
                    "org": {"name": "上海某某科技"},
                    "contact": {"email": "wf@example.cn"},
                    "level": "silver",
                    "isVip": "yes",
                    "remark": "prefers\\nmornings",
                    "orders": [
                        {"no": "SO-1", "amount": 199.5, "items": ["路由器"]},
                        {"no": "SO-2", "amount": 20},
                        {"no": "SO-3"},
                    ],
                },
                {"fullName": "second match, ignored"},
            ]
        }
    )
    assert mapped.problems == ()
    lookup = mapped.lookup
    assert lookup.found and lookup.phone == PHONE and lookup.fetched_at == 5.0
    profile = lookup.profile
    assert profile is not None
    assert (profile.name, profile.company, profile.email) == ("王芳", "上海某某科技", "wf@example.cn")
    assert (profile.tier, profile.vip, profile.external_id) == ("silver", True, "42017")
    assert profile.orders == (
        CrmOrder(id="SO-1", total="199.5", summary="路由器"),
        CrmOrder(id="SO-2", total="20"),
    )  # limit 2: the first two


@pytest.mark.parametrize("answer", [{}, {"data": None}, {"data": []}, {"data": {}}, {"other": 1}, [], None])
def test_not_found_shapes(answer):
    mapped = read(answer)
    assert not mapped.lookup.found and mapped.problems == ()


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("just text", "no record in the answer: at $: text where an object or a list was expected"),
        ({"data": "text"}, "the record at data is text, not an object"),
        ({"data": [3]}, "the record at data is a number, not an object"),
        ({"data": [[1]]}, "the record at data is a list, not an object"),
    ],
)
def test_unusable_shapes_raise(answer, why):
    with pytest.raises(CrmAnswerError) as caught:
        read(answer)
    assert str(caught.value) == why


def test_fields_of_the_wrong_type_are_left_out_and_named():
    mapped = read(
        {
            "data": {
                "fullName": {"first": "Fang"},
                "org": "not an object",
                "level": True,
                "isVip": "maybe",
                "id": "C-1",
                "orders": [{"no": ["x"], "amount": 3}, "junk"],
            }
        }
    )
    profile = mapped.lookup.profile
    assert profile is not None and profile.external_id == "C-1"
    assert (profile.name, profile.company, profile.tier, profile.vip) == (None, None, None, None)
    assert profile.orders == (CrmOrder(total="3"),)
    assert mapped.problems == (
        "name: an object at fullName, where text was expected",
        "company: at org: text where an object or a list was expected",
        "tier: true/false at level, where text was expected",
        "vip: text at isVip, where true or false was expected",
        "orders[0].id: a list at no, where text was expected",
        "orders[1]: text, where an object was expected",
    )


def test_orders_that_are_not_a_list():
    mapped = read({"data": {"fullName": "A", "orders": {"no": 1}}})
    assert mapped.lookup.profile.orders == ()
    assert mapped.problems == ("orders: an object at orders, where a list was expected",)


@pytest.mark.parametrize(
    ("value", "vip"), [(True, True), (0, False), (1, True), ("No", False), ("TRUE", True), (None, None)]
)
def test_vip_flags(value, vip):
    assert read({"data": {"isVip": value}}).lookup.profile.vip is vip


def test_a_vip_tier_makes_a_vip_whatever_the_flag_says():
    assert read({"data": {"level": "gold", "isVip": False}}).lookup.profile.vip is True


def test_text_is_cleaned_and_capped():
    mapped = read({"data": {"fullName": "A\x00B\x1b[31m\ud800", "remark": "x" * (MAX_TEXT + 50), "id": ""}})
    profile = mapped.lookup.profile
    assert profile.name == "AB[31m?"
    assert len(profile.notes) == MAX_TEXT and profile.notes.endswith("…")
    assert profile.external_id is None  # empty text is no value


def test_the_whole_answer_as_the_record_and_list_indexes():
    mapped = read([{"n": "first"}], record="", fields={"name": "0.n"})
    # The record is the list's first item, {"n": ...}: found, but the mapping reads nothing in it.
    assert mapped.lookup.found and mapped.lookup.profile.name is None
    assert mapped.problems == ("none of the mapped fields is in the record (its keys: n); check crm.fields",)
    mapped = read([{"n": "first"}], record="", fields={"name": "n"})
    assert mapped.lookup.profile.name == "first"
    mapped = read({"a": [{"b": "deep"}]}, record="", fields={"name": "a[0].b", "company": "a.5.b"})
    assert (mapped.lookup.profile.name, mapped.lookup.profile.company) == ("deep", None)
