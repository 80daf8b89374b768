"""The ticket field schema: typed values, errors naming every bad field, required fields per status."""

import time
from datetime import date, datetime

import pytest

from cti_bridge.config.model import TicketConfig
from cti_bridge.tickets.errors import FieldValidationError, MissingFieldsError
from cti_bridge.tickets.fields import (
    PATTERN_TIME_LIMIT,
    STANDARD_FIELD_NAMES,
    FieldSchema,
    FieldType,
    is_empty,
)
from cti_bridge.tickets.model import TicketStatus
from tests.unit.tickets.test_categories import TREE

CONFIG = TicketConfig.model_validate(
    {
        "categories": TREE,
        "fields": [
            {"name": "serial_number", "pattern": "[A-Z0-9]{8,20}", "zh": "序列号", "en": "Serial number"},
            {"name": "notes", "type": "long_text", "max_length": 10},
            {"name": "weight_kg", "type": "number", "min": 0},
            {"name": "affected_users", "type": "integer", "min": 1, "max": 1000},
            {"name": "vip_line", "type": "boolean"},
            {"name": "warranty_until", "type": "date"},
            {"name": "callback_time", "type": "choice", "choices": ["上午", "下午"]},
            {"name": "channels", "type": "multi_choice", "choices": ["app", "web", "门店"]},
            {"name": "alt_phone", "type": "phone"},
            {"name": "alt_email", "type": "email"},
        ],
        "required_fields": {
            "in_progress": ["category"],
            "resolved": ["category", "resolution"],
        },
    }
)
SCHEMA = FieldSchema.from_config(CONFIG)


def test_standard_fields_are_built_in():
    assert {
        "customer_name",
        "contact_phone",
        "problem_type",
        "description",
        "urgency",
        "product_model",
        "order_number",
        "resolution",
        "category",
    } <= STANDARD_FIELD_NAMES
    assert SCHEMA.specs["serial_number"].zh == "序列号" and not SCHEMA.specs["serial_number"].standard
    assert SCHEMA.specs["category"].type is FieldType.CATEGORY and SCHEMA.specs["category"].standard


def test_values_come_back_typed_and_canonical():
    typed = SCHEMA.validate(
        {
            "customer_name": "  张三 ",
            "contact_phone": "138 0013 8000",
            "category": "technical/network/login",
            "urgency": "紧急",
            "serial_number": "SN12345678",
            "weight_kg": "2.5",
            "affected_users": "12",
            "vip_line": "是",
            "warranty_until": "2026-03-31",
            "callback_time": "下午",
            "channels": ["web", "app", "web"],
            "alt_phone": "+86 10 1234 5678",
            "alt_email": "zhang@example.cn",
            "notes": "",
        }
    )
    assert typed == {
        "customer_name": "张三",
        "contact_phone": "+8613800138000",
        "category": "技术故障/网络问题/登录异常",
        "urgency": "P2",
        "serial_number": "SN12345678",
        "weight_kg": 2.5,
        "affected_users": 12,
        "vip_line": True,
        "warranty_until": date(2026, 3, 31),
        "callback_time": "下午",
        "channels": ("web", "app"),
        "alt_phone": "+861012345678",
        "alt_email": "zhang@example.cn",
        "notes": None,  # blank clears
    }
    assert SCHEMA.validate(
        {"affected_users": 3.0, "vip_line": False, "warranty_until": date(2026, 1, 1)}
    ) == {
        "affected_users": 3,
        "vip_line": False,
        "warranty_until": date(2026, 1, 1),
    }


def test_the_error_names_every_bad_field():
    with pytest.raises(FieldValidationError) as caught:
        SCHEMA.validate(
            {
                "colour": "red",
                "category": "技术故障/网络",
                "urgency": "asap",
                "serial_number": "sn-1",
                "notes": "x" * 11,
                "weight_kg": "heavy",
                "affected_users": 0,
                "vip_line": "maybe",
                "warranty_until": datetime(2026, 1, 1, 12),
                "callback_time": "晚上",
                "channels": "web",
                "alt_phone": "12",
                "alt_email": "nobody",
                "customer_name": 42,
                "customer_name_ok": None,
            }
        )
    problems = caught.value.problems
    assert set(problems) == {
        "colour",
        "category",
        "urgency",
        "serial_number",
        "notes",
        "weight_kg",
        "affected_users",
        "vip_line",
        "warranty_until",
        "callback_time",
        "channels",
        "alt_phone",
        "alt_email",
        "customer_name",
        "customer_name_ok",
    }
    assert problems["colour"] == "no such field"
    assert "'晚上' is not one of: 上午, 下午" in problems["callback_time"]
    assert "less than the minimum 1" in problems["affected_users"]
    assert "longer than 10" in problems["notes"]
    assert "does not match" in problems["serial_number"]
    message = str(caught.value)
    assert message.startswith("invalid ticket field(s) colour, category, urgency,")


def test_numbers_refuse_booleans_and_infinity():
    for field, value in [
        ("weight_kg", True),
        ("weight_kg", "inf"),
        ("affected_users", "1.5"),
        ("affected_users", 1.5),
    ]:
        with pytest.raises(FieldValidationError):
            SCHEMA.validate({field: value})


def test_required_fields_per_status_are_named_when_missing():
    assert SCHEMA.required_for(TicketStatus.RESOLVED) == ("category", "resolution")
    assert SCHEMA.required_for(TicketStatus.NEW) == ()
    assert SCHEMA.missing(TicketStatus.RESOLVED, {"category": "咨询", "resolution": ""}) == ("resolution",)
    with pytest.raises(MissingFieldsError) as caught:
        SCHEMA.check_required(TicketStatus.RESOLVED, {})
    assert caught.value.fields == ("category", "resolution") and caught.value.status == "resolved"
    assert "a ticket that is resolved needs these fields filled in: category, resolution" in str(caught.value)
    SCHEMA.check_required(TicketStatus.RESOLVED, {"category": "咨询", "resolution": "重置密码"})


def test_empty_means_unset_blank_or_no_choice():
    assert is_empty(None) and is_empty("") and is_empty(())
    assert not is_empty(False) and not is_empty(0) and not is_empty(("app",))


def test_schema_refuses_clashing_or_undefined_names():
    with pytest.raises(ValueError, match="defined twice"):
        FieldSchema([SCHEMA.specs["description"]])
    with pytest.raises(ValueError, match="not defined: solution"):
        FieldSchema(required={TicketStatus.RESOLVED: ["solution"]})


def test_default_config_requires_a_resolution_and_has_no_tree():
    schema = FieldSchema.from_config(TicketConfig())
    assert schema.required_for(TicketStatus.RESOLVED) == ("resolution",)
    assert schema.validate({"category": "业务咨询/产品咨询/价格"}) == {"category": "业务咨询/产品咨询/价格"}


def test_a_value_a_field_pattern_cannot_check_in_time_is_refused_without_stalling():
    # 订单(a+)+ passes the load-time probe; on this value it backtracks catastrophically.
    schema = FieldSchema.from_config(
        TicketConfig.model_validate({"fields": [{"name": "order_ref", "pattern": "订单(a+)+"}]})
    )
    assert schema.validate({"order_ref": "订单aaa"}) == {"order_ref": "订单aaa"}
    started = time.perf_counter()
    with pytest.raises(FieldValidationError) as caught:
        schema.validate({"order_ref": "订单" + "a" * 5000 + "!"})
    assert "could not be checked against the pattern" in caught.value.problems["order_ref"]
    assert time.perf_counter() - started < PATTERN_TIME_LIMIT * 10
