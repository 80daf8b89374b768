"""A month of realistic tickets through the real Store API, for `cti-bridge report` (issue #4 item 10).

    .venv/bin/python scripts/generate_month.py --out /tmp/month [--seed 7] [--start 2026-10-19]
    cti-bridge report -c /tmp/month/cti-bridge.yaml --from 2026-10-19 --to 2026-11-17

Writes OUT/cti-bridge.yaml (config/cti-bridge.yaml with the store in OUT and more agents) and
OUT/month.db. Calls arrive with weekday business-hour peaks; answered calls belong to the
answering agent, missed and abandoned ones become callbacks; some tickets wait on the
customer, some get a second call, a few are reopened, some breach their SLA; a third of the
resolved ones get a CSAT score (Store.record_csat). Nothing after the month's end is written,
so the last days leave tickets open. The same seed writes the same month.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cti_bridge.app import numbering  # noqa: E402
from cti_bridge.calls.model import Call, CallKey, Direction, Outcome  # noqa: E402
from cti_bridge.config import load_config  # noqa: E402
from cti_bridge.store import Store  # noqa: E402
from cti_bridge.tickets import workflow as w  # noqa: E402
from cti_bridge.tickets.fields import FieldSchema  # noqa: E402
from cti_bridge.tickets.model import NewTicket, TicketStatus  # noqa: E402

EXTRA_AGENTS = [("chen", "tier1"), ("zhao", "tier1"), ("liu", "tier1"), ("sun", "tier1"), ("zhou", "tier1")]
# Category group -> (weight, queue)
GROUPS = {
    "技术故障": (38, "support"),
    "账户问题": (18, "support"),
    "账务问题": (17, "billing"),
    "售后服务": (12, "service"),
    "投诉建议": (5, "service"),
    "咨询": (10, "sales"),
}
PRIORITIES = [("P1", 4), ("P2", 14), ("P3", 67), ("P4", 15)]
# Relative call arrivals per local hour (0..23): peaks mid-morning and mid-afternoon.
HOURLY = [1, 1, 0, 0, 0, 0, 1, 3, 8, 16, 20, 18, 9, 11, 17, 19, 16, 12, 6, 4, 3, 2, 2, 1]
WEEKDAY = [1.0, 0.95, 0.9, 0.9, 0.85, 0.4, 0.15]
DAY = 86400.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", type=date.fromisoformat, default=date.today() - timedelta(days=30))
    parser.add_argument("--config", type=Path, default=REPO / "config" / "cti-bridge.yaml")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / "month.db"
    if db.exists():
        sys.exit(f"{db} exists: remove it or choose another --out")
    config_path = _write_config(args.config, args.out, db)
    counts = asyncio.run(_generate(config_path, args))
    print(f"{config_path}: {counts}")
    return 0


def _write_config(source: Path, out: Path, db: Path) -> Path:
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["store"]["url"] = f"sqlite:///{db}"
    for index, (agent, team) in enumerate(EXTRA_AGENTS):
        data["agents"].append(
            {"id": agent, "name": agent.title(), "extension": str(1010 + index), "team": team}
        )
    path = out / "cti-bridge.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


class _Month:
    def __init__(self, store: Store, workflow: w.Workflow, rng: random.Random, end: float, agents: list[str]):
        self.store, self.workflow, self.rng, self.end, self.agents = store, workflow, rng, end, agents
        self.counts: dict[str, int] = {}

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def command(self, number: str, command: w.Command, actor: str, at: float) -> bool:
        """Apply a command unless it falls after the month's end (then the story stops)."""
        if at >= self.end:
            return False
        await self.store.apply_command(number, command, workflow=self.workflow, actor=actor, at=at)
        return True

    async def ticket(self, serial: int, at: float, category: str, queue: str, priority: str) -> None:
        rng = self.rng
        business = _business_hours(at)
        roll = rng.random()
        outcome = (
            Outcome.ANSWERED
            if roll < (0.86 if business else 0.25)
            else (Outcome.ABANDONED if roll < (0.94 if business else 0.6) else Outcome.MISSED)
        )
        agent = rng.choice(self.agents)
        ring = rng.uniform(5, 50 if business else 20)
        answered_at = at + ring if outcome is Outcome.ANSWERED else None
        talk = rng.uniform(90, 900)
        ended_at = (answered_at + talk) if answered_at is not None else at + ring
        call = Call(
            key=CallKey("main", f"{serial}.1"),
            direction=Direction.INBOUND,
            caller_number=f"+86138{rng.randrange(10**8):08d}",
            caller_name=None,
            did="4008000000",
            queue=queue,
            started_at=at,
        )
        new = NewTicket(
            status=TicketStatus.NEW,
            priority=priority,
            category=category,
            rule=None,
            subject=f"来电 {category.split('/')[-1]}",
            description="",
            customer_id=None,
            caller_number=call.caller_number,
            caller_name=None,
            did=call.did,
            queue=queue,
        )
        ticket, _ = await self.store.create_ticket_for_call(new, call, call.caller_number, at)
        number = ticket.number
        self.count("tickets")
        if answered_at is not None:
            await self.store.record_answer(call, agent, answered_at)
        done = Call(
            **{
                **{f: getattr(call, f) for f in ("key", "direction", "caller_number", "caller_name", "did")},
                "queue": queue,
                "started_at": at,
                "answered_at": answered_at,
                "agent_id": agent if answered_at is not None else None,
                "ended_at": ended_at,
                "outcome": outcome,
            }
        )
        await self.store.record_call_end(done, ended_at)
        if answered_at is None:
            # A callback: dispatched at once, worked when the agent gets to it (business hours).
            self.count("callbacks")
            if not await self.command(
                number, w.Assign(assignee=agent, reason="callback"), "dispatch", ended_at
            ):
                return
            delay = (
                rng.expovariate(1 / (1.5 * 3600))
                if priority in ("P1", "P2")
                else rng.expovariate(1 / (5 * 3600))
            )
            t = _next_open(ended_at + 300 + delay)
            if not await self.command(number, w.Start(), agent, t):
                return
        else:
            t = answered_at + rng.uniform(20, 120)
            if not await self.command(number, w.Start(), agent, t):
                return
        resolution = {"resolution": "已处理"}
        fixed_on_call = answered_at is not None and rng.random() < 0.62
        if fixed_on_call:
            t = max(t, ended_at) + rng.uniform(30, 300)
        else:
            if rng.random() < 0.5:
                t += rng.uniform(600, 3 * 3600)
                text = "已联系客户，正在处理"
                if not await self.command(
                    number, w.AddComment(text=text, visibility=w.Visibility.CUSTOMER), agent, t
                ):
                    return
            if rng.random() < 0.35:
                on = w.WaitingOn.CUSTOMER if rng.random() < 0.7 else w.WaitingOn.THIRD_PARTY
                t += rng.uniform(300, 3600)
                if not await self.command(number, w.Wait(on=on), agent, t):
                    return
                t = _next_open(t + rng.expovariate(1 / (14 * 3600)))
                if not await self.command(number, w.Resume(), agent, t):
                    return
            if rng.random() < 0.12:
                # The customer calls again about it: a second call on the same ticket.
                again = t + rng.uniform(1800, 6 * 3600)
                if again < self.end:
                    second = Call(
                        **{
                            **{
                                f: getattr(call, f)
                                for f in ("direction", "caller_number", "caller_name", "did", "queue")
                            },
                            "key": CallKey("main", f"{serial}.2"),
                            "started_at": again,
                        }
                    )
                    await self.store.attach_call(ticket.id, second, second.caller_number, again)
                    self.count("second calls")
            # Most are worked within the day; a slow tail (the SLA breaches) takes days.
            hours = rng.expovariate(1 / 5) if rng.random() < 0.85 else rng.uniform(20, 96)
            t = _next_open(t + hours * 3600)
        if not await self.command(number, w.Resolve(fields=resolution), agent, t):
            return
        self.count("resolved")
        if rng.random() < 0.34:
            score = _score(rng, fixed_on_call)
            scored_at = t + rng.uniform(60, 3600)
            if scored_at < self.end:
                await self.store.record_csat("main", f"{serial}.1", score, scored_at)
                self.count("csat")
        if rng.random() < 0.04:
            t += rng.uniform(3600, 3 * DAY)
            if not await self.command(number, w.Reopen(reason="客户反馈问题仍存在"), agent, t):
                return
            self.count("reopened")
            t = _next_open(t + rng.expovariate(1 / (6 * 3600)))
            if not await self.command(number, w.Resolve(fields={"resolution": "已再次处理"}), agent, t):
                return
        t += rng.uniform(0.5 * DAY, 3 * DAY)
        if await self.command(number, w.Close(confirmed_by_customer=rng.random() < 0.7), agent, t):
            self.count("closed")


def _score(rng: random.Random, fixed_on_call: bool) -> int:
    weights = [2, 3, 8, 35, 52] if fixed_on_call else [6, 8, 16, 36, 34]
    return rng.choices(range(1, 6), weights)[0]


_ZONE = ZoneInfo("Asia/Shanghai")


def _business_hours(at: float) -> bool:
    local = datetime.fromtimestamp(at, _ZONE)
    hour = local.hour + local.minute / 60
    if local.weekday() == 6:
        return False
    if local.weekday() == 5:
        return 9 <= hour < 12
    return 9 <= hour < 12 or 13.5 <= hour < 18


def _next_open(at: float) -> float:
    """Agents work business hours: a task due outside them is done at the next opening."""
    t = at
    while not _business_hours(t):
        t += 600
    return t


async def _generate(config_path: Path, args: argparse.Namespace) -> dict[str, int]:
    config = load_config(config_path, check_secrets=False)
    workflow = w.Workflow(FieldSchema.from_config(config.tickets, phone_region=config.phone.default_region))
    rng = random.Random(args.seed)
    leaves = _leaves(config)
    start = datetime(args.start.year, args.start.month, args.start.day, tzinfo=_ZONE).timestamp()
    end = start + args.days * DAY
    arrivals = sorted(_arrival(rng, start, args.days) for _ in range(args.tickets))
    agents = [a.id for a in config.agents if a.team == "tier1"]
    store = await Store.open(config.store.url, numbering(config))
    month = _Month(store, workflow, rng, end, agents)
    try:
        for serial, at in enumerate(arrivals, 1):
            group = rng.choices(list(GROUPS), [g[0] for g in GROUPS.values()])[0]
            category = rng.choice([leaf for leaf in leaves if leaf.startswith(group + "/")])
            priority = rng.choices([p for p, _ in PRIORITIES], [n for _, n in PRIORITIES])[0]
            await month.ticket(serial, at, category, GROUPS[group][1], priority)
    finally:
        await store.close()
    return month.counts


def _arrival(rng: random.Random, start: float, days: int) -> float:
    day_weights = [WEEKDAY[datetime.fromtimestamp(start + d * DAY, _ZONE).weekday()] for d in range(days)]
    day = rng.choices(range(days), day_weights)[0]
    hour = rng.choices(range(24), HOURLY)[0]
    return start + day * DAY + hour * 3600 + rng.uniform(0, 3600)


def _leaves(config: object) -> list[str]:
    from cti_bridge.tickets.categories import CategoryTree

    tree = CategoryTree.from_config(config.tickets.categories)  # type: ignore[attr-defined]
    leaves = (path.canonical for path in tree.paths() if path.is_leaf)
    return [path for path in leaves if not path.startswith("售后服务/VIP专线")]  # VIP line: its own DID


if __name__ == "__main__":
    raise SystemExit(main())
