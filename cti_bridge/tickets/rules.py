"""Ticket rules: which rules fit a call and its texts, why, and what they set and extract.

Rules are tried in the order configured, and each action comes from the first matching rule
that has it: the category from the first matching rule that names a category, the priority
from the first that names a priority, each extracted field from the first rule that finds a
value for it. A rule that sets both category and priority is therefore "first match wins",
as prefill rules always were; and a rule that only raises the priority of complaints, or only
pulls out order numbers, can sit above the routing rules without hiding their category.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import regex
import structlog

from cti_bridge.calls.model import Call
from cti_bridge.config.model import RuleMatch, TextSource, TicketRule, TicketRuleMatch
from cti_bridge.tickets.model import most_urgent

_QUOTED_MATCH_LENGTH = 40  # a regex's match is quoted in the reason, cut to this many characters
# All the patterns of one `decide` together: rules run on the event loop, so a pattern that
# backtracks catastrophically on a long transcript stops here and counts as no match.
RULES_TIME_LIMIT = 0.1  # seconds

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFacts:
    """What rules may know of a call besides the ticket's texts."""

    pbx: str
    queue: str | None = None
    did: str | None = None
    ivr: Mapping[str, str] = field(default_factory=dict)  # menu -> the caller's last choice in it

    @classmethod
    def of(cls, call: Call) -> CallFacts:
        # A later choice in the same menu replaces the earlier one: the caller went back.
        return cls(pbx=call.key.pbx, queue=call.queue, did=call.did, ivr=dict(call.ivr_choices))


@dataclass(frozen=True, slots=True)
class RuleFired:
    """A rule whose conditions all hold, and why in words."""

    name: str
    because: str  # e.g. 'queue=billing and transcript contains "退款"'

    def __str__(self) -> str:
        return f'rule "{self.name}": {self.because}'


@dataclass(frozen=True, slots=True)
class Extracted:
    """A field value a rule's pattern found, and where."""

    value: str
    rule: str
    source: TextSource


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What the rules set: None (and no fields) where no matching rule says anything."""

    category: str | None = None
    category_by: RuleFired | None = None
    priority: str | None = None
    priority_by: RuleFired | None = None
    fields: Mapping[str, Extracted] = field(default_factory=dict)
    timed_out: tuple[str, ...] = ()  # rules whose pattern ran out of time: taken as no match

    @property
    def deciding(self) -> tuple[RuleFired, ...]:
        """The rules that set the category and the priority, each once."""
        fired = [self.category_by, self.priority_by]
        return tuple(dict.fromkeys(rule for rule in fired if rule is not None))

    @property
    def rule(self) -> str | None:
        """For the ticket's `rule` column: the deciding rules' names, e.g. `complaint, support-queue`."""
        return ", ".join(rule.name for rule in self.deciding) or None

    @property
    def reason(self) -> str | None:
        """Why, in words: `rule "refund-keywords": transcript contains "退款"`."""
        return "; ".join(str(rule) for rule in self.deciding) or None

    @property
    def is_empty(self) -> bool:
        return self.category is None and self.priority is None and not self.fields


def routing_matches(when: RuleMatch, *, pbx: str, queue: str | None, did: str | None) -> bool:
    """All given routing conditions hold; a condition is a list of accepted values."""
    return (
        (when.pbx is None or pbx in when.pbx)
        and (when.queue is None or queue in when.queue)
        and (when.did is None or did in when.did)
    )


def decide(
    rules: Sequence[TicketRule],
    facts: CallFacts,
    *,
    description: str | None = None,
    transcript: str | None = None,
) -> Decision:
    """Apply the rules to a call and the ticket's texts.

    Args:
        rules: in the order configured (config.tickets.rules).
        facts: the call's PBX, queue, DID and IVR choices.
        description: the ticket's description, as written by a person.
        transcript: the call's transcript.

    Returns:
        Category, priority and fields, each from the first matching rule that gives it,
        with the rule and the reason.
    """
    texts: dict[TextSource, str] = {"description": description or "", "transcript": transcript or ""}
    category: str | None = None
    priority: str | None = None
    category_by: RuleFired | None = None
    priority_by: RuleFired | None = None
    fields: dict[str, Extracted] = {}
    clock = _Clock(time.monotonic() + RULES_TIME_LIMIT)
    for rule in rules:
        clock.rule = rule.name
        because = _because(rule.when, facts, texts, clock)
        if because is None:
            continue
        fired = RuleFired(rule.name, because)
        if category is None and rule.category is not None:
            category, category_by = rule.category, fired
        if priority is None and rule.priority is not None:
            priority, priority_by = rule.priority, fired
        for name, pattern in rule.extract.items():
            if name not in fields:
                found = _extract(pattern, name, rule.when.sources, texts, clock)
                if found is not None:
                    fields[name] = Extracted(found[0], rule.name, found[1])
    return Decision(
        category=category,
        category_by=category_by,
        priority=priority,
        priority_by=priority_by,
        fields=fields,
        timed_out=tuple(clock.timed_out),
    )


@dataclass(slots=True)
class _Clock:
    """The time left to one `decide`'s patterns, and the rules whose pattern ran out of it."""

    deadline: float
    rule: str = ""
    timed_out: list[str] = field(default_factory=list)

    def run(self, method: str, pattern: regex.Pattern[str], text: str, source: TextSource) -> object:
        """`pattern.<method>(text)` within the time left; None (no match) once it is spent."""
        if self.rule in self.timed_out:
            return None  # its other patterns and texts would only wait for the same
        left = self.deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            found = getattr(pattern, method)(text, timeout=left)
            # finditer's time limit holds while it is iterated: read it all now, within it.
            return list(found) if method == "finditer" else found
        except TimeoutError:
            self.timed_out.append(self.rule)
            _log.warning(
                "rule_pattern_timed_out",
                rule=self.rule,
                pattern=pattern.pattern,
                source=source,
                text_length=len(text),
                limit_s=RULES_TIME_LIMIT,
                note="taken as no match; rewrite the pattern without nested repetition",
            )
            return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketSoFar:
    """What an existing ticket has, for `revise`."""

    category: str | None
    priority: str
    fields: Mapping[str, str] = field(default_factory=dict)  # only the filled-in ones matter
    set_by_people: frozenset[str] = frozenset()  # fields a person set or cleared: category, priority, ...


def revise(
    rules: Sequence[TicketRule],
    facts: CallFacts,
    ticket: TicketSoFar,
    *,
    description: str | None = None,
    transcript: str | None = None,
) -> Decision:
    """What the rules change on an existing ticket now that there is more to read (a transcript).

    The rules are applied as `decide` would with everything known, and only what may
    change is kept:

    - Nothing a person set or cleared is overridden: a field named in `set_by_people`
      (category, priority or any other) is left alone.
    - The category follows the rules (a keyword rule above the routing rules may recategorise
      the call's ticket), unless a person chose it.
    - The priority is only ever raised: it may have been raised by the VIP floor or an SLA
      escalation the rules know nothing of, and lowering a live ticket's urgency would
      quietly move its deadlines out.
    - A field is filled in only while empty: a value already there (typed, or extracted
      earlier) wins over a later one.

    Pass the description only once a person has written it; the prefilled one is our own
    summary (caller, queue, customer tier), and a keyword could be found in a customer's name.
    Whether a resolved or closed ticket is still worth revising is the caller's choice.

    Args:
        rules: in the order configured (config.tickets.rules).
        facts: the call's PBX, queue, DID and IVR choices.
        ticket: the ticket's current category, priority, fields and what people have set.
        description: the ticket's description, as written by a person.
        transcript: the call's transcript.

    Returns:
        Only the changes to make: category/priority None where the ticket keeps its own,
        `fields` only those to fill in. `rule` and `reason` name the rules behind the
        category and priority changes; `is_empty` when there is nothing to do.
    """
    decided = decide(rules, facts, description=description, transcript=transcript)
    category, category_by = decided.category, decided.category_by
    if "category" in ticket.set_by_people or category == ticket.category:
        category, category_by = None, None
    priority, priority_by = decided.priority, decided.priority_by
    if (
        "priority" in ticket.set_by_people
        or priority is None
        or most_urgent(priority, ticket.priority) == ticket.priority
    ):
        priority, priority_by = None, None
    fields = {
        name: found
        for name, found in decided.fields.items()
        if name not in ticket.set_by_people and not ticket.fields.get(name)
    }
    return Decision(
        category=category,
        category_by=category_by,
        priority=priority,
        priority_by=priority_by,
        fields=fields,
        timed_out=decided.timed_out,
    )


def _because(
    when: TicketRuleMatch, facts: CallFacts, texts: Mapping[TextSource, str], clock: _Clock
) -> str | None:
    """Why the rule matches, in words; None if it does not."""
    if not routing_matches(when, pbx=facts.pbx, queue=facts.queue, did=facts.did):
        return None
    routing = (("PBX", when.pbx, facts.pbx), ("DID", when.did, facts.did), ("queue", when.queue, facts.queue))
    reasons = [f"{label}={value}" for label, accepted, value in routing if accepted is not None]
    for menu, accepted in (when.ivr or {}).items():
        choice = facts.ivr.get(menu)
        if choice not in accepted:
            return None
        reasons.append(f"IVR {menu}={choice}")
    if when.keywords is not None:
        found = _keyword_in(when.keywords, when.sources, texts)
        if found is None:
            return None
        reasons.append(f'{found[1]} contains "{found[0]}"')
    if when.regex is not None:
        matched = _search(when.regex, when.sources, texts, clock)
        if matched is None:
            return None
        quoted = matched[0].group(0)[:_QUOTED_MATCH_LENGTH]
        reasons.append(f'{matched[1]} matches "{quoted}"')
    return " and ".join(reasons) or "no conditions (every call)"


def _keyword_in(
    keywords: Sequence[str], sources: Sequence[TextSource], texts: Mapping[TextSource, str]
) -> tuple[str, TextSource] | None:
    """The first keyword found, ignoring case (casefold: ß = ss; Chinese has no case), and where."""
    for source in sources:
        text = texts[source].casefold()
        for keyword in keywords:
            if keyword.casefold() in text:
                return keyword, source
    return None


def _search(
    pattern: regex.Pattern[str],
    sources: Sequence[TextSource],
    texts: Mapping[TextSource, str],
    clock: _Clock,
) -> tuple[regex.Match[str], TextSource] | None:
    for source in sources:
        match = clock.run("search", pattern, texts[source], source)
        if isinstance(match, regex.Match):
            return match, source
    return None


def _extract(
    pattern: regex.Pattern[str],
    name: str,
    sources: Sequence[TextSource],
    texts: Mapping[TextSource, str],
    clock: _Clock,
) -> tuple[str, TextSource] | None:
    """The first non-blank value of the pattern's group: the one named after the field, else its only one."""
    group: str | int = name if name in pattern.groupindex else 1
    for source in sources:
        for match in clock.run("finditer", pattern, texts[source], source) or ():
            value = (match.group(group) or "").strip()
            if value:
                return value, source
    return None
