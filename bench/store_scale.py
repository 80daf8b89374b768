"""Ticket store at scale: caller-history lookup and ticket creation rates as the store grows.

For each size a fresh SQLite file is migrated through `Store.open`, bulk-loaded with the stdlib
sqlite3 module (not measured), then driven through the real Store and TicketService API.
Indexed queries should cost the same at every size: the ratio columns show it.

    .venv/bin/python bench/store_scale.py                     # sizes 10^4, 10^5, 10^6 (table)
    .venv/bin/python bench/store_scale.py --sizes 1000000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from cti_bridge.calls.model import Call, CallKey, Direction
from cti_bridge.config.model import TicketConfig
from cti_bridge.store import Store
from cti_bridge.tickets.model import OPEN_STATUSES, TicketNumbering
from cti_bridge.tickets.service import TicketService

NOW = 1_800_000_000.0  # the loaded history ends here; measured calls start here
YEAR = 365 * 86_400.0
PBX = "main"
REGION = "US"

# Who the loaded tickets are from: a customer's number, a repeat caller who is no customer,
# or a withheld number. Every caller has a handful of tickets whatever the size, so only
# the table grows, not the answer to each lookup.
CUSTOMER_SHARE, ANONYMOUS_SHARE = 0.60, 0.35
OPEN_SHARE, RESOLVED_SHARE = 0.10, 0.05  # the rest are closed
_OPEN_STATUSES = sorted(str(s) for s in OPEN_STATUSES)


def customer_phone(customer: int) -> str:
    return f"+1212{customer:07d}"


def second_phone(customer: int) -> str | None:
    """Every fourth customer also calls from a mobile."""
    return f"+1646{customer:07d}" if customer % 4 == 0 else None


def anonymous_phone(caller: int) -> str:
    return f"+1312{caller:07d}"


def unknown_phone(n: int) -> str:
    """A number that never called before the measurement."""
    return f"+1415{n:07d}"


def new_phone(n: int) -> str:
    return f"+1510{n:07d}"


# -- setup -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Population:
    tickets: int
    customers: int
    anonymous_callers: int

    @classmethod
    def of(cls, size: int) -> Population:
        return cls(tickets=size, customers=max(1, size // 5), anonymous_callers=max(1, size // 4))


def bulk_load(path: Path, population: Population, rng: random.Random) -> None:
    """Fill a migrated store in one transaction, bypassing the Store API (fast, unmeasured)."""
    numbering = TicketNumbering()
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO customers (id, name, tier, vip, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                (c, f"Customer {c}", "gold" if c % 10 == 0 else "standard", int(c % 50 == 0), NOW - YEAR, NOW)
                for c in range(1, population.customers + 1)
            ),
        )
        connection.executemany(
            "INSERT INTO customer_phones (phone, customer_id) VALUES (?, ?)", _customer_phones(population)
        )
        tickets = list(_tickets(population, rng, numbering))
        connection.executemany(
            "INSERT INTO tickets (id, number, status, priority, subject, customer_id, caller_number,"
            " did, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            tickets,
        )
        connection.executemany(
            "INSERT INTO calls (pbx, linkedid, ticket_id, direction, caller_number, did, started_at,"
            " ended_at) VALUES (?, ?, ?, 'inbound', ?, ?, ?, ?)",
            (
                (
                    PBX,
                    f"{t.created_at:.0f}.{t.id}",
                    t.id,
                    t.caller_number,
                    t.did,
                    t.created_at,
                    t.created_at + 180,
                )
                for t in tickets
            ),
        )
        connection.executemany(
            "INSERT INTO ticket_events (ticket_id, at, kind, actor) VALUES (?, ?, 'created', 'system')",
            ((t.id, t.created_at) for t in tickets),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


def _customer_phones(population: Population) -> Iterator[tuple[str, int]]:
    for customer in range(1, population.customers + 1):
        yield customer_phone(customer), customer
        if mobile := second_phone(customer):
            yield mobile, customer


class _TicketRow(NamedTuple):
    id: int
    number: str
    status: str
    priority: str
    subject: str
    customer_id: int | None
    caller_number: str | None
    did: str
    created_at: float
    updated_at: float


def _tickets(population: Population, rng: random.Random, numbering: TicketNumbering) -> Iterator[_TicketRow]:
    # Created in id order over the year, as a real store fills up.
    for ticket_id in range(1, population.tickets + 1):
        created = NOW - YEAR + YEAR * ticket_id / (population.tickets + 1)
        updated = min(NOW, created + rng.expovariate(1 / 86_400.0))
        who = rng.random()
        customer_id = None
        if who < CUSTOMER_SHARE:
            customer_id = rng.randint(1, population.customers)
            phone = second_phone(customer_id) if rng.random() < 0.3 else None
            caller = phone or customer_phone(customer_id)
        elif who < CUSTOMER_SHARE + ANONYMOUS_SHARE:
            caller = anonymous_phone(rng.randint(1, population.anonymous_callers))
        else:
            caller = None
        state = rng.random()
        if state < OPEN_SHARE:
            status = rng.choice(_OPEN_STATUSES)
        else:
            status = "resolved" if state < OPEN_SHARE + RESOLVED_SHARE else "closed"
        yield _TicketRow(
            id=ticket_id,
            number=numbering.format(ticket_id),
            status=status,
            priority=rng.choice(("P2", "P3", "P3", "P4")),
            subject=f"Call from {caller or 'withheld number'}",
            customer_id=customer_id,
            caller_number=caller,
            did="4000",
            created_at=created,
            updated_at=updated,
        )


# -- measurement -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    ops: int
    seconds: float
    latencies_ms: list[float]

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.seconds

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies_ms)
        return {
            "ops": self.ops,
            "ops_per_second": round(self.ops_per_second, 1),
            "p50_ms": round(statistics.median(ordered), 3),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        }


async def timed(op: Callable[[], Awaitable[object]], ops: int, max_seconds: float) -> Figures:
    """Run `op` one call after another until `ops` are done or time runs out."""
    latencies: list[float] = []
    started = time.perf_counter()
    for _ in range(ops):
        before = time.perf_counter()
        await op()
        latencies.append((time.perf_counter() - before) * 1000)
        if before - started > max_seconds:
            break
    return Figures(len(latencies), time.perf_counter() - started, latencies)


async def best_of(op: Callable[[], Awaitable[object]], args: argparse.Namespace) -> Figures:
    """The fastest of `args.rounds` timed rounds, after a tenth as many untimed calls to warm the
    page cache and the connection's statement cache. The fastest round is the one least
    disturbed by whatever else the machine was doing."""
    for _ in range(args.ops // 10):
        await op()
    rounds = [await timed(op, args.ops, args.max_seconds) for _ in range(args.rounds)]
    return max(rounds, key=lambda figures: figures.ops_per_second)


async def measure(store: Store, population: Population, args: argparse.Namespace) -> dict[str, Figures]:
    rng = random.Random(args.seed + 1)
    fresh = itertools.count(1)  # numbers for callers never seen before
    config = TicketConfig()
    service = TicketService(store, config, REGION)
    window = config.reuse_open_ticket_within.total_seconds()

    async def lookup(phone: str) -> None:
        """The read side of `open_for_call` for a caller: who is it, is there a ticket to reuse,
        what did they call about before."""
        customer = await store.customer_by_phone(phone)
        await store.reusable_ticket(customer.id if customer else None, phone, NOW - window)
        await store.caller_history(customer, phone, config.history_size)

    def known() -> Awaitable[None]:
        return lookup(customer_phone(rng.randint(1, population.customers)))

    def repeat() -> Awaitable[None]:
        return lookup(anonymous_phone(rng.randint(1, population.anonymous_callers)))

    def unknown() -> Awaitable[None]:
        return lookup(unknown_phone(next(fresh)))

    # Calls are spaced more than the reuse window apart so that every call opens a new
    # ticket (the creation path) instead of joining the caller's previous one.
    calls = itertools.count(1)

    def call_from(phone: str) -> Call:
        n = next(calls)
        return Call(
            key=CallKey(PBX, f"bench.{n}"),
            direction=Direction.INBOUND,
            caller_number=phone,
            caller_name=None,
            did="4000",
            queue=None,
            started_at=NOW + n * (window + 1),
        )

    async def create(phone: str) -> None:
        opened = await service.open_for_call(call_from(phone))
        assert opened.created, "the bench call joined an existing ticket instead of creating one"

    def create_new() -> Awaitable[None]:
        return create(new_phone(next(fresh)))

    def create_known() -> Awaitable[None]:
        return create(customer_phone(rng.randint(1, population.customers)))

    measurements = {
        "lookup_known_customer": known,
        "lookup_repeat_caller": repeat,
        "lookup_unknown_number": unknown,
        "create_new_number": create_new,
        "create_known_customer": create_known,
    }
    return {name: await best_of(op, args) for name, op in measurements.items()}


# -- query plans -------------------------------------------------------------------

# Copied from cti_bridge/store/store.py (the read path and the creation path of
# `TicketService.open_for_call`); keep in step with it.
_COLUMNS = (
    "id, number, status, priority, category, subject, assignee, created_at, updated_at, rule, "
    "description, channel, customer_id, caller_number, caller_name, did, queue"
)
_OPEN_IN = "status IN (" + ",".join("?" * len(_OPEN_STATUSES)) + ")"


def _caller_queries(who: str, where: str, key: object) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """The caller-history queries, which filter on a customer or, for others, on the number."""
    return {
        f"reusable_ticket_by_{who}": (
            f"SELECT {_COLUMNS} FROM tickets WHERE ({where}) AND {_OPEN_IN}"
            " AND updated_at >= ? ORDER BY updated_at DESC LIMIT 1",
            (key, *_OPEN_STATUSES, NOW),
        ),
        f"caller_history_by_{who}": (
            f"SELECT * FROM (SELECT 'open' AS list, {_COLUMNS} FROM tickets"
            f" WHERE ({where}) AND {_OPEN_IN} ORDER BY updated_at DESC LIMIT 50)"
            f" UNION ALL SELECT * FROM (SELECT 'recent' AS list, {_COLUMNS} FROM tickets"
            f" WHERE {where} ORDER BY created_at DESC LIMIT ?)",
            (key, *_OPEN_STATUSES, key, 5),
        ),
    }


QUERIES: dict[str, tuple[str, tuple[Any, ...]]] = {
    "ticket_for_call": (
        "SELECT t.id FROM calls c JOIN tickets t ON t.id = c.ticket_id WHERE c.pbx = ? AND c.linkedid = ?",
        (PBX, "x"),
    ),
    "customer_by_phone": (
        "SELECT c.*, (SELECT group_concat(phone, char(10)) FROM"
        " (SELECT phone FROM customer_phones WHERE customer_id = c.id ORDER BY phone)) AS phones"
        " FROM customer_phones p JOIN customers c ON c.id = p.customer_id WHERE p.phone = ?",
        ("+12120000001",),
    ),
    **_caller_queries("customer", "customer_id = ?", 1),
    **_caller_queries("caller_number", "caller_number = ?", "+13120000001"),
    "create_ticket_number": ("UPDATE tickets SET number = ? WHERE id = ?", ("T-1", 1)),
    "ticket_by_id": (f"SELECT {_COLUMNS} FROM tickets WHERE id = ?", (1,)),
}


def query_plans(path: Path) -> list[dict[str, Any]]:
    """EXPLAIN QUERY PLAN of each query; `full_scan` when a step reads a whole table."""
    connection = sqlite3.connect(path)
    try:
        plans = []
        for name, (sql, params) in QUERIES.items():
            steps = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            # SCAN of a table or a whole index grows with the store; SCAN of a subquery's
            # few rows (the customer's phones) does not.
            scans = [s for s in steps if s.startswith("SCAN") and "subquery" not in s]
            temp_sorts = [s for s in steps if s.startswith("USE TEMP B-TREE")]
            plans.append(
                {
                    "query": name,
                    "plan": steps,
                    "full_scan": bool(scans),
                    "temp_sort": bool(temp_sorts),
                    "sql": sql,
                }
            )
        return plans
    finally:
        connection.close()


# -- one size, all sizes -------------------------------------------------------------


async def run_size(size: int, folder: Path, args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    path = folder / f"store-{size}.db"
    url = f"sqlite://{path}"
    numbering = TicketNumbering()
    await (await Store.open(url, numbering)).close()  # migrations only
    population = Population.of(size)
    started = time.perf_counter()
    await asyncio.to_thread(bulk_load, path, population, random.Random(args.seed))
    setup_seconds = time.perf_counter() - started
    log(f"size {size}: bulk load took {setup_seconds:.1f} s")
    store = await Store.open(url, numbering)
    try:
        figures = await measure(store, population, args)
    finally:
        await store.close()
    result = {
        "size": size,
        "customers": population.customers,
        "setup_seconds": round(setup_seconds, 2),
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "measurements": {name: f.summary() for name, f in figures.items()},
    }
    return result, path


def with_ratios(results: list[dict[str, Any]]) -> None:
    """Add each figure's ratio to the same figure at the smallest size (1.0 = flat)."""
    first = min(results, key=lambda r: r["size"])["measurements"]
    for result in results:
        for name, figures in result["measurements"].items():
            base = first[name]
            figures["ratio_to_smallest"] = {
                key: round(figures[key] / base[key], 2) if base[key] else None
                for key in ("ops_per_second", "p50_ms", "p99_ms")
            }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results = []
    with tempfile.TemporaryDirectory(prefix="store-bench-", dir=args.dir) as folder:
        largest = None
        for size in sorted(args.sizes):
            result, largest = await run_size(size, Path(folder), args)
            results.append(result)
        assert largest is not None
        plans = query_plans(largest)
    with_ratios(results)
    return {
        "command": " ".join(sys.argv),
        "ops_per_round": args.ops,
        "rounds": args.rounds,
        "sizes": results,
        "query_plans_at_largest_size": plans,
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(report: dict[str, Any]) -> str:
    lines = [f"{'measurement':<24}{'size':>9}{'ops/s':>10}{'x':>6}{'p50 ms':>9}{'x':>6}{'p99 ms':>9}{'x':>6}"]
    names = report["sizes"][0]["measurements"].keys()
    for name in names:
        for result in report["sizes"]:
            f = result["measurements"][name]
            r = f["ratio_to_smallest"]
            lines.append(
                f"{name:<24}{result['size']:>9}{f['ops_per_second']:>10.0f}{r['ops_per_second']:>6.2f}"
                f"{f['p50_ms']:>9.3f}{r['p50_ms']:>6.2f}{f['p99_ms']:>9.3f}{r['p99_ms']:>6.2f}"
            )
    lines.append("")
    lines.append(
        "setup (bulk load, not measured): "
        + ", ".join(f"{r['size']}: {r['setup_seconds']} s ({r['file_mb']} MB)" for r in report["sizes"])
    )
    lines.append("")
    lines.append(f"query plans at size {report['sizes'][-1]['size']}:")
    for plan in report["query_plans_at_largest_size"]:
        flags = [flag for flag in ("full_scan", "temp_sort") if plan[flag]]
        lines.append(f"  {plan['query']:<40}{' '.join(flags) or 'ok':<20}{' | '.join(plan['plan'])}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(s) for s in text.split(",")],
        default=[10_000, 100_000, 1_000_000],
        help="comma-separated ticket counts (default 10000,100000,1000000: about a minute)",
    )
    parser.add_argument("--ops", type=int, default=2000, help="operations per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the best is kept")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="time bound per round")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", help="where to put the store files (default: the temp directory)")
    parser.add_argument("--json", action="store_true", help="print only JSON")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2) if args.json else table(report))


if __name__ == "__main__":
    main()
