from datetime import date, timedelta
from pathlib import Path

import pytest

from cti_bridge.config import ConfigError, load_config
from cti_bridge.tickets.dispatch import Dispatcher
from cti_bridge.tickets.sla import BusinessCalendar, SlaPolicy, SlaTarget

EXAMPLE = Path(__file__).parents[3] / "config" / "cti-bridge.yaml"

HEAD = """\
pbxs:
  - name: main
    username: cti
    secret: {env: TEST_AMI_SECRET}
agents:
  - {id: alice, extension: "1001", skills: [网络], team: tier1}
teams:
  - {name: tier1, supervisor: carol}
"""


def problems(tmp_path, text):
    path = tmp_path / "cti.yaml"
    path.write_text(HEAD + text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, check_secrets=False)
    return {(p.line, p.key): p.message for p in caught.value.problems}


def test_example_has_a_chinese_calendar_targets_and_dispatch(monkeypatch):
    monkeypatch.setenv("CTI_AMI_SECRET", "s3cret")
    config = load_config(EXAMPLE)
    calendar = config.sla.calendar
    assert calendar is not None and calendar.timezone == "Asia/Shanghai"
    assert date(2026, 2, 14) in calendar.workdays
    assert config.sla.targets["P3"].resolution is not None
    assert config.sla.targets["P3"].resolution.within == timedelta(hours=24)
    business = BusinessCalendar.from_config(calendar)
    assert business.hours_on(date(2026, 10, 1)) == ()  # 国庆
    assert business.hours_on(date(2026, 2, 28))  # a Saturday worked (调休)
    policy = SlaPolicy.from_config(config)
    assert policy.rule("P1", SlaTarget.FIRST_RESPONSE) is not None
    dispatcher = Dispatcher.from_config(config)
    assert dispatcher.config.urgent_queues == ["urgent"]


def test_calendar_problems_have_line_and_key(tmp_path):
    found = problems(
        tmp_path,
        """\
sla:
  calendar:
    timezone: Asia/Shangai
    hours:
      mon-fry: ["09:00-12:00"]
      sat: ["12:00-09:00", "13:00-14:00", "13:30-15:00"]
      sun: ["9am-5pm"]
    holidays: [2026-01-01, 2026-02-30, "2026-10-07..2026-10-01", soon]
    workdays: [2026-01-01]
""",
    )
    # The weekday names are checked once the hours themselves are valid (pydantic's order).
    assert set(found) == {
        (11, "sla.calendar.timezone"),
        (14, "sla.calendar.hours.sat[0]"),
        (15, "sla.calendar.hours.sun[0]"),
        (16, "sla.calendar.holidays[1]"),
        (16, "sla.calendar.holidays[2]"),
        (16, "sla.calendar.holidays[3]"),
    }
    assert "not a known time zone" in found[(11, "sla.calendar.timezone")]
    assert "ends at 09:00, not after its start 12:00" in found[(14, "sla.calendar.hours.sat[0]")]
    assert "'9am' is not a time of day" in found[(15, "sla.calendar.hours.sun[0]")]
    assert "'2026-02-30' is not a date" in found[(16, "sla.calendar.holidays[1]")]
    assert "2026-10-01 is before 2026-10-07" in found[(16, "sla.calendar.holidays[2]")]


def test_weekdays_overlaps_and_days_given_twice(tmp_path):
    found = problems(
        tmp_path,
        """\
sla:
  calendar:
    hours:
      mon-fri: ["09:00-12:00", "11:00-18:00"]
      fri: ["09:00-12:00"]
      mon-fry: ["09:00-12:00"]
""",
    )
    assert found == {
        (12, "sla.calendar.hours.mon-fri"): "09:00-12:00 and 11:00-18:00 overlap",
        (13, "sla.calendar.hours.fri"): "fri already given by 'mon-fri'",
        (14, "sla.calendar.hours.mon-fry"): (
            "'mon-fry' is not a weekday or weekday range; write e.g. mon, sat or mon-fri"
        ),
    }


def test_make_up_days_on_holidays_and_hours_of_a_closed_day(tmp_path):
    found = problems(
        tmp_path,
        """\
sla:
  calendar:
    hours: {mon-fri: ["09:00-18:00"]}
    holidays: [2026-10-01..2026-10-07]
    workdays: [2026-10-10, 2026-10-03]
    workdays_like: sun
""",
    )
    assert found == {
        (13, "sla.calendar.workdays[1]"): "2026-10-03 is also listed as a holiday",
        (14, "sla.calendar.workdays_like"): "sun has no working hours",
    }


def test_targets_escalation_and_warning_problems(tmp_path):
    found = problems(
        tmp_path,
        """\
sla:
  targets:
    P1: {first_response: 30m}
    P2: {resolution: {within: 0s, clock: always}}
    P5: {resolution: 1h}
  warning: {at: 1.5, notify: [assignee, boss]}
""",
    )
    assert set(found) == {
        (12, "sla.targets.P2.resolution.within"),
        (13, "sla.targets.P5.[key]"),
        (14, "sla.warning.at"),
        (14, "sla.warning.notify[1]"),
    }
    assert "write assignee, supervisor, team or user:<id>" in found[(14, "sla.warning.notify[1]")]


def test_cross_references_are_checked_at_load(tmp_path):
    found = problems(
        tmp_path,
        """\
dispatch:
  vip_team: gold
  default_team: tier1
  load_caps: {bob: 3}
  skills:
    by_category: {技术故障/网络问题: [网络, 路由]}
    by_queue: {billing: [账务]}
""",
    )
    assert found == {
        (10, "dispatch.vip_team"): "unknown team 'gold'; define it under teams:",
        (12, "dispatch.load_caps.bob"): "unknown agent 'bob'",
        (14, "dispatch.skills.by_category.技术故障/网络问题[1]"): "no agent has the skill '路由'",
        (15, "dispatch.skills.by_queue.billing[0]"): "no agent has the skill '账务'",
    }


def test_agents_must_name_a_listed_team_and_teams_are_unique(tmp_path):
    path = tmp_path / "teams.yaml"
    path.write_text(HEAD.replace("team: tier1}", "team: tier9}"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, check_secrets=False)
    (problem,) = caught.value.problems
    assert (problem.line, problem.key) == (6, "agents[0].team")
    assert problem.message == "unknown team 'tier9'; teams are ['tier1']"
    assert "'tier1' is listed twice" in str(problems(tmp_path, "  - {name: tier1}\n"))


def test_no_teams_section_leaves_agent_teams_free(tmp_path):
    path = tmp_path / "free.yaml"
    path.write_text(HEAD.split("teams:")[0], encoding="utf-8")
    assert load_config(path, check_secrets=False).agents[0].team == "tier1"


def test_business_targets_need_a_calendar_and_caps_are_positive(tmp_path):
    found = problems(
        tmp_path,
        """\
sla:
  clock: business
  targets:
    P1: {first_response: 30m, resolution: {within: 4h, clock: always}}
dispatch:
  load_caps: {alice: 0}
""",
    )
    assert found == {
        (12, "sla.targets.P1.first_response"): "counts on the business clock, but sla.calendar is not set",
        (14, "dispatch.load_caps.alice"): "a load cap is at least 1",
    }
