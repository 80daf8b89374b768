import pytest

from cti_bridge.logs import mask_phone_numbers
from cti_bridge.phone import mask, to_e164


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("13800138000", "CN", "+8613800138000"),
        ("+86 138 0013 8000", "US", "+8613800138000"),
        ("008613800138000", "US", "+8613800138000"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("1001", "CN", None),
        ("<unknown>", "CN", None),
        ("", "CN", None),
        (None, "CN", None),
    ],
)
def test_to_e164(raw, region, expected):
    assert to_e164(raw, region) == expected


def test_mask_keeps_prefix_and_last_digits():
    assert mask("+8613800138000") == "+861*******000"
    assert mask("13800138000") == "138*****000"
    assert mask("1001") == "1001"


def test_log_processor_masks_phone_keys_and_e164_anywhere():
    event = mask_phone_numbers(
        None,
        "info",
        {
            "event": "call from +8613800138000 queued",
            "caller": "13800138000",
            "linkedid": "1795358836.6",
            "count": 3,
        },
    )
    assert event == {
        "event": "call from +861*******000 queued",
        "caller": "138*****000",
        "linkedid": "1795358836.6",
        "count": 3,
    }


def test_dialable_forms_of_a_number():
    from cti_bridge.phone import dialable

    assert dialable("+8613800138000", "digits") == "8613800138000"
    assert dialable("+8613800138000", "e164") == "+8613800138000"
    assert dialable("+8613800138000", "national") == "13800138000"
    assert dialable("+8602161234567", "national") == "02161234567"  # Shanghai, with its trunk 0
    assert dialable("+14155550123", "national") == "4155550123"
