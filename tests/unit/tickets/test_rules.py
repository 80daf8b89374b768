import time

from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from cti_bridge.calls.model import Call, CallKey, Direction
from cti_bridge.config.model import TicketConfig
from cti_bridge.tickets.model import PRIORITIES
from cti_bridge.tickets.prefill import prefill
from cti_bridge.tickets.rules import RULES_TIME_LIMIT, CallFacts, Extracted, TicketSoFar, decide, revise

ORDER = r"订单号?[:：\s]*(\d{8,})"
MODEL = r"型号[:：\s]*([A-Z0-9-]+)"


def config(*rules, **settings):
    return TicketConfig.model_validate({"rules": list(rules), **settings})


def rules(*specs):
    return config(*specs).rules


def facts(queue="support", did="4001", ivr=None, pbx="main"):
    return CallFacts(pbx=pbx, queue=queue, did=did, ivr=ivr or {})


ROUTING = rules(
    {"name": "vip", "when": {"did": ["4008001000"]}, "category": "售后/VIP", "priority": "P1"},
    {"name": "support", "when": {"queue": ["support"], "pbx": ["main"]}, "category": "技术/登录"},
    {"name": "hotline", "when": {"did": ["4001"]}, "priority": "P2"},
)


def test_routing_conditions_all_hold_and_say_so():
    decision = decide(ROUTING, facts(queue="support", did="4002"))
    assert (decision.category, decision.priority) == ("技术/登录", None)
    assert decision.rule == "support"
    assert decision.reason == 'rule "support": PBX=main and queue=support'
    assert decide(ROUTING, facts(queue="support", did="4002", pbx="branch")).is_empty


def test_a_rule_that_sets_both_is_first_match_wins():
    decision = decide(ROUTING, facts(queue="support", did="4008001000"))
    assert (decision.category, decision.priority, decision.rule) == ("售后/VIP", "P1", "vip")
    assert decision.reason == 'rule "vip": DID=4008001000'


def test_each_action_comes_from_the_first_matching_rule_that_has_it():
    # support names a category only: the priority comes from the next rule that names one.
    decision = decide(ROUTING, facts(queue="support", did="4001"))
    assert (decision.category, decision.priority) == ("技术/登录", "P2")
    assert decision.rule == "support, hotline"
    assert decision.reason == 'rule "support": PBX=main and queue=support; rule "hotline": DID=4001'


def test_ivr_choice_matches_the_last_choice_in_the_menu():
    ivr_rules = rules(
        {"name": "ivr-billing", "when": {"ivr": {"main": [2, "3"]}}, "category": "账务/退款"},
    )
    decision = decide(ivr_rules, facts(ivr={"main": "2"}))
    assert decision.category == "账务/退款"
    assert decision.reason == 'rule "ivr-billing": IVR main=2'
    assert decide(ivr_rules, facts(ivr={"main": "1"})).is_empty
    assert decide(ivr_rules, facts(ivr={"lang": "2"})).is_empty
    # Pressed 2, went back, pressed 1: the 1 counts.
    call = Call(
        key=CallKey("main", "1.1"),
        direction=Direction.INBOUND,
        caller_number="13800138000",
        caller_name=None,
        did="4001",
        queue="support",
        started_at=0.0,
        ivr_choices=(("main", "2"), ("lang", "zh"), ("main", "1")),
    )
    assert CallFacts.of(call).ivr == {"main": "1", "lang": "zh"}
    assert decide(ivr_rules, CallFacts.of(call)).is_empty


KEYWORDS = rules(
    {"name": "refund", "when": {"keywords": ["退款", "Refund"]}, "category": "账务/退款"},
    {"name": "login", "when": {"keywords": ["无法登录"], "in": ["transcript"]}, "category": "技术/登录"},
    {"name": "complaint", "when": {"keywords": ["投诉"]}, "priority": "P2"},
)


def test_chinese_keywords_in_the_transcript():
    decision = decide(KEYWORDS, facts(), transcript="你好，我要投诉，上个月的钱一直没有退款")
    assert (decision.category, decision.priority) == ("账务/退款", "P2")
    assert decision.reason == (
        'rule "refund": transcript contains "退款"; rule "complaint": transcript contains "投诉"'
    )


def test_keywords_ignore_case_and_name_the_text_they_were_found_in():
    decision = decide(KEYWORDS, facts(), description="Customer wants a REFUND", transcript="")
    assert decision.reason == 'rule "refund": description contains "Refund"'


def test_keywords_are_only_looked_for_in_the_chosen_texts():
    assert decide(KEYWORDS, facts(), description="客户说无法登录").is_empty
    assert decide(KEYWORDS, facts(), transcript="客户说无法登录").category == "技术/登录"


def test_no_text_no_text_rule():
    assert decide(KEYWORDS, facts()).is_empty


def test_regex_condition_quotes_what_it_matched():
    regex_rules = rules({"name": "error-code", "when": {"regex": r"错误码\s*E\d{3}"}, "priority": "P2"})
    decision = decide(regex_rules, facts(), transcript="屏幕上显示 错误码 E042 然后就断了")
    assert decision.priority == "P2"
    assert decision.reason == 'rule "error-code": transcript matches "错误码 E042"'
    assert decide(regex_rules, facts(), transcript="错误码 E4").is_empty


def test_all_given_conditions_must_hold():
    both = rules(
        {
            "name": "billing-refund",
            "when": {"queue": ["billing"], "ivr": {"main": ["2"]}, "keywords": ["退款"]},
            "category": "账务/退款",
        }
    )
    text = "我要退款"
    assert decide(both, facts(queue="support", ivr={"main": "2"}), transcript=text).is_empty
    assert decide(both, facts(queue="billing", ivr={"main": "1"}), transcript=text).is_empty
    assert decide(both, facts(queue="billing", ivr={"main": "2"}), transcript="查账单").is_empty
    decision = decide(both, facts(queue="billing", ivr={"main": "2"}), transcript=text)
    assert (
        decision.reason
        == 'rule "billing-refund": queue=billing and IVR main=2 and transcript contains "退款"'
    )


EXTRACTORS = rules(
    {"name": "order-and-model", "when": {}, "extract": {"order_number": ORDER, "product_model": MODEL}},
    {
        "name": "any-long-number",
        "when": {"in": ["description"]},
        "extract": {"order_number": r"(?P<digits>\d{6,})"},
    },
)


def test_extraction_finds_order_numbers_and_models_with_the_rule_and_source():
    decision = decide(
        EXTRACTORS,
        facts(),
        description="回电 13800138000",
        transcript="我的订单号：20240518001，路由器型号 AX-3000 连不上",
    )
    assert decision.fields == {
        "order_number": Extracted("20240518001", "order-and-model", "transcript"),
        "product_model": Extracted("AX-3000", "order-and-model", "transcript"),
    }
    # Extraction alone decides neither category nor priority.
    assert decision.rule is None and decision.reason is None


def test_the_first_rule_to_find_a_field_wins_and_later_rules_fill_what_is_left():
    decision = decide(EXTRACTORS, facts(), description="客户号 123456789", transcript="没说型号")
    assert decision.fields == {"order_number": Extracted("123456789", "any-long-number", "description")}


def test_a_named_group_is_the_value():
    named = rules(
        {
            "name": "serial",
            "when": {},
            "extract": {"order_number": r"(单号|订单)[:：\s]*(?P<order_number>\d+)"},
        }
    )
    assert decide(named, facts(), transcript="单号 998877").fields["order_number"].value == "998877"


def test_prefill_uses_the_ivr_choice_and_leaves_text_rules_for_later():
    ticket_config = config(
        {"name": "complaint", "when": {"keywords": ["Customer"]}, "priority": "P1"},
        {"name": "ivr-refund", "when": {"ivr": {"main": ["2"]}}, "category": "账务/退款"},
    )
    call = Call(
        key=CallKey("main", "1.1"),
        direction=Direction.INBOUND,
        caller_number="13800138000",
        caller_name="Customer Zhang",
        did="4008003000",
        queue="billing",
        started_at=0.0,
        ivr_choices=(("main", "2"),),
    )
    new = prefill(call, "+8613800138000", None, ticket_config)
    # "Customer" is in the prefilled subject, yet the text rule did not fire: nobody spoke yet.
    assert (new.category, new.priority, new.rule) == ("账务/退款", "P3", "ivr-refund")
    assert new.rule_reason == 'rule "ivr-refund": IVR main=2'
    # What the call itself tells (the IVR path is a field, searchable); no rule extracted anything.
    assert new.fields == {
        "customer_name": "Customer Zhang",
        "contact_phone": "+8613800138000",
        "ivr_path": "main: 2",
    }


REVISION_RULES = rules(
    {"name": "refund", "when": {"keywords": ["退款"]}, "category": "账务/退款", "priority": "P2"},
    {"name": "support", "when": {"queue": ["support"]}, "category": "技术/登录"},
    {"name": "order", "when": {}, "extract": {"order_number": ORDER}},
)
TRANSCRIPT = "我要退款，订单号 12345678"


def test_a_transcript_recategorises_a_ticket_nobody_touched():
    ticket = TicketSoFar(category="技术/登录", priority="P3")
    change = revise(REVISION_RULES, facts(), ticket, transcript=TRANSCRIPT)
    assert (change.category, change.priority) == ("账务/退款", "P2")
    assert change.reason == 'rule "refund": transcript contains "退款"'
    assert change.fields == {"order_number": Extracted("12345678", "order", "transcript")}


def test_revise_keeps_what_people_set_and_fields_already_filled():
    ticket = TicketSoFar(
        category="技术/登录",
        priority="P3",
        fields={"order_number": "87654321"},
        set_by_people=frozenset({"category"}),
    )
    change = revise(REVISION_RULES, facts(), ticket, transcript=TRANSCRIPT)
    assert change.category is None and change.priority == "P2" and change.fields == {}
    assert change.rule == "refund"


def test_revise_never_lowers_a_priority():
    ticket = TicketSoFar(category="技术/登录", priority="P1")  # raised by an SLA escalation, say
    change = revise(REVISION_RULES, facts(), ticket, transcript=TRANSCRIPT)
    assert change.priority is None and change.category == "账务/退款"


def test_revise_with_nothing_new_changes_nothing():
    ticket = TicketSoFar(category="技术/登录", priority="P3")
    assert revise(REVISION_RULES, facts(), ticket, transcript="网络连不上").is_empty


@given(
    before=st.text(max_size=30),
    after=st.text(max_size=30),
    keyword=st.sampled_from(["退款", "Refund", "无法登录", "VIP客户", "can't log in"]),
    shout=st.booleans(),
)
def test_a_keyword_is_found_anywhere_in_any_case(before, after, keyword, shout):
    found = rules({"name": "k", "when": {"keywords": [keyword]}, "priority": "P2"})
    said = keyword.upper() if shout else keyword.lower()
    decision = decide(found, facts(), transcript=before + said + after)
    assert decision.priority == "P2"
    assert decision.reason is not None and f'contains "{keyword}"' in decision.reason


@given(
    current=st.sampled_from(PRIORITIES),
    people=st.sets(st.sampled_from(["category", "priority", "order_number"])),
    filled=st.booleans(),
    transcript=st.sampled_from([TRANSCRIPT, "网络连不上", "订单号 11112222", ""]),
)
def test_revise_never_overrides_people_never_lowers_never_overwrites(current, people, filled, transcript):
    ticket = TicketSoFar(
        category="技术/登录",
        priority=current,
        fields={"order_number": "87654321"} if filled else {},
        set_by_people=frozenset(people),
    )
    change = revise(REVISION_RULES, facts(), ticket, transcript=transcript)
    assert "category" not in people or change.category is None
    assert "priority" not in people or change.priority is None
    if change.priority is not None:
        assert PRIORITIES.index(change.priority) < PRIORITIES.index(current)
    assert not (filled or "order_number" in people) or not change.fields


# 订单(a+)+$ passes the load-time probe (no probe text starts with 订单) but backtracks
# catastrophically on 订单aaaa...!: the run-time limit is what stops it.
SLOW = r"订单(a+)+$"
SLOW_TEXT = "订单" + "a" * 5000 + "!"


def test_a_rule_pattern_that_runs_out_of_time_is_no_match_and_the_rules_go_on():
    found = rules(
        {"name": "slow", "when": {"regex": SLOW}, "category": "慢/规则"},
        {"name": "slow-extract", "when": {}, "extract": {"order_number": r"订单((?:a+)+)$"}},
        {"name": "refund", "when": {"keywords": ["退款"]}, "category": "售后/退款", "priority": "P2"},
    )
    started = time.perf_counter()
    with capture_logs() as logs:
        decision = decide(found, facts(), transcript=SLOW_TEXT + " 退款")
    elapsed = time.perf_counter() - started
    assert (decision.category, decision.priority) == ("售后/退款", "P2")
    assert decision.timed_out == ("slow", "slow-extract")
    assert "order_number" not in decision.fields
    assert [entry["rule"] for entry in logs if entry["event"] == "rule_pattern_timed_out"] == [
        "slow",
        "slow-extract",
    ]
    assert all(SLOW_TEXT not in str(entry) for entry in logs)  # the caller's words stay out of logs
    # One limit for all of a decision's patterns (the regex package counts CPU time; a loaded
    # machine stretches the wall clock).
    assert elapsed < RULES_TIME_LIMIT * 10, f"{elapsed:.2f}s"


def test_revise_reports_the_rules_that_ran_out_of_time():
    found = rules({"name": "slow", "when": {"regex": SLOW}, "priority": "P1"})
    ticket = TicketSoFar(category=None, priority="P3")
    decision = revise(found, facts(), ticket, transcript=SLOW_TEXT)
    assert decision.is_empty and decision.timed_out == ("slow",)
