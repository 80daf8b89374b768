"""The `cti-bridge` command: run the daemon, check config, import customers, see tickets, transcribe."""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
import textwrap
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from cti_bridge.config import Config, ConfigError, load_config
from cti_bridge.logs import configure_logging
from cti_bridge.phone import to_e164

CONFIG_ENV = "CTI_BRIDGE_CONFIG"
SHIPPED_CONFIG = "/etc/cti-bridge/cti-bridge.yaml"
# What a shell reports for a command whose reader went away (128 + SIGPIPE), as `yes | head` does.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def default_config_path() -> str:
    """-c's default: $CTI_BRIDGE_CONFIG, else /etc/cti-bridge/cti-bridge.yaml."""
    return os.environ.get(CONFIG_ENV) or SHIPPED_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if not hasattr(args, "handler"):
            parser.print_help()
            return 2
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(f"cti-bridge: invalid configuration ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        if any(not p.key and p.message.startswith("cannot read") for p in exc.problems):
            print(
                f"  (give the config file with -c FILE or ${CONFIG_ENV}; "
                "config/cti-bridge.yaml in the source is a complete example)",
                file=sys.stderr,
            )
        return 2
    except BrokenPipeError:
        # `cti-bridge tickets list --json | head`: the reader has all it wanted. No traceback,
        # and no second one when Python flushes stdout at exit: stdout goes to /dev/null.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (stdout replaced, e.g. under a test)
        pass


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("cti-bridge")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps help at spaces only: a path such as /etc/cti-bridge/cti-bridge.yaml stays whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(
            " ".join(text.split()),
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )


class _Parser(argparse.ArgumentParser):
    """The parser of cti-bridge and of each of its commands (subparsers are made of this class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _parser() -> argparse.ArgumentParser:
    default_config = default_config_path()
    parser = _Parser(
        prog="cti-bridge",
        description=__doc__,
        epilog=f"Every command that reads the config takes -c FILE (default: {default_config}, "
        f"or ${CONFIG_ENV} when set). `cti-bridge COMMAND --help` tells more.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    config_arg = argparse.ArgumentParser(add_help=False)
    config_arg.add_argument(
        "-c",
        "--config",
        default=default_config,
        metavar="FILE",
        help=f"YAML config file (default: {default_config}; ${CONFIG_ENV} sets another default)",
    )
    commands = parser.add_subparsers(title="commands")

    run = commands.add_parser("run", parents=[config_arg], help="run the daemon")
    run.set_defaults(handler=_run)

    check = commands.add_parser("check-config", parents=[config_arg], help="validate a config file")
    check.set_defaults(handler=_check_config)

    from cti_bridge import cli_users

    cli_users.add_parsers(commands, config_arg)

    customers = commands.add_parser("customers", help="manage customers").add_subparsers()
    importer = customers.add_parser("import", parents=[config_arg], help="load customers from CSV")
    importer.add_argument("file", type=Path, help="CSV with columns name, phone, ...")
    importer.set_defaults(handler=_import_customers)

    tickets = commands.add_parser("tickets", help="see tickets").add_subparsers()
    listing = tickets.add_parser("list", parents=[config_arg], help="list recent tickets")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--status", help="only tickets in this status, e.g. new or in_progress")
    listing.add_argument(
        "--limit", type=int, default=50, help="most tickets shown, newest first (default 50)"
    )
    listing.set_defaults(handler=_list_tickets)
    show = tickets.add_parser("show", parents=[config_arg], help="one ticket in full")
    show.add_argument("number", help="ticket number, e.g. T-000123")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=_show_ticket)
    search = tickets.add_parser(
        "search", parents=[config_arg], help="find tickets by number, phone, customer or any text"
    )
    search.add_argument("query", help="words (all must be found), a ticket number or a phone number")
    search.add_argument("--limit", type=int, default=20, help="most tickets shown (default 20)")
    search.add_argument("--json", action="store_true", help="print JSON instead of text")
    search.set_defaults(handler=_search_tickets)
    _lifecycle_parsers(tickets, config_arg)
    attach = tickets.add_parser("attach", parents=[config_arg], help="attach a file (kept with its SHA-256)")
    attach.add_argument("number", help="ticket number, e.g. T-000001")
    attach.add_argument("file", type=Path)
    attach.add_argument(
        "--as", dest="actor", default=os.environ.get("USER", "cli"), help="who (default $USER)"
    )
    attach.set_defaults(handler=_attach)

    report = commands.add_parser(
        "report", parents=[config_arg], help="KPIs of the tickets created over a period, from their history"
    )
    report.add_argument(
        "--from", dest="since", type=_day, help="first day, YYYY-MM-DD (default: --to - 29 days)"
    )
    report.add_argument("--to", dest="until", type=_day, help="last day, inclusive (default: today)")
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler=_report)

    kb = commands.add_parser("kb", help="knowledge base articles").add_subparsers()
    kb_add = kb.add_parser("add", parents=[config_arg], help="write an article")
    kb_add.add_argument("--title", required=True)
    kb_add.add_argument("--body", required=True)
    kb_add.add_argument("--tags", default="", help="comma-separated, e.g. 登录,密码")
    kb_add.add_argument("--category", help="category path, e.g. 技术故障/网络问题/登录异常")
    kb_add.add_argument("--actor", default=os.environ.get("USER", "cli"), help="author (default $USER)")
    kb_add.set_defaults(handler=_kb_add)
    kb_search = kb.add_parser("search", parents=[config_arg], help="find articles by their text")
    kb_search.add_argument("query", help="terms that must all appear; Chinese substrings work")
    kb_search.add_argument("--category", help="only at or below this category path")
    kb_search.add_argument("--limit", type=int, default=10)
    kb_search.add_argument("--json", action="store_true")
    kb_search.set_defaults(handler=_kb_search)
    kb_suggest = kb.add_parser("suggest", parents=[config_arg], help="articles that may help with a ticket")
    kb_suggest.add_argument("number", help="ticket number, e.g. T-000001")
    kb_suggest.add_argument("--limit", type=int, default=5)
    kb_suggest.add_argument("--json", action="store_true")
    kb_suggest.set_defaults(handler=_kb_suggest)
    kb_from = kb.add_parser(
        "from-ticket", parents=[config_arg], help="turn a resolved ticket into an article"
    )
    kb_from.add_argument("number", help="ticket number, e.g. T-000001")
    kb_from.add_argument("--actor", default=os.environ.get("USER", "cli"), help="author (default $USER)")
    kb_from.set_defaults(handler=_kb_from_ticket)

    models = commands.add_parser("models", help="list or fetch Vosk speech models")
    models_actions = models.add_subparsers(dest="action")
    for action, text in (
        ("list", "models the manifest knows"),
        ("fetch", "download and verify a model"),
    ):
        sub = models_actions.add_parser(action, help=text)
        sub.add_argument("--manifest", type=Path, default=None, help="another manifest file")
        if action == "fetch":
            sub.add_argument("name", help="model name, e.g. vosk-model-small-en-us-0.15")
            sub.add_argument(
                "--dest",
                type=Path,
                default=None,
                help="models directory (default $CTI_BRIDGE_MODELS or /var/lib/cti-bridge/models)",
            )
            sub.add_argument("--sha256", help="checksum you obtained, for a model the manifest has none for")
        sub.set_defaults(handler=_models)

    transcribe = commands.add_parser("transcribe", help="transcribe WAV files with Vosk")
    transcribe.add_argument("files", nargs="+", type=Path)
    source = transcribe.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="Vosk model directory")
    source.add_argument("-c", "--config", help="take the model of --language from this config")
    transcribe.add_argument("--language", default=None, help="language code (default: config's)")
    transcribe.add_argument("--workers", type=int, default=1)
    transcribe.add_argument("--json", action="store_true")
    transcribe.set_defaults(handler=_transcribe)
    return parser


# -- run / check-config ----------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_paths=True)
    configure_logging(config.logging)
    asyncio.run(_run_daemon(config))
    return 0


async def _run_daemon(config: Config) -> None:
    from cti_bridge.app import Daemon

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Daemon(config) as daemon:
        # What start-up made (modules, the web app's routes and schemas, the config) lives as
        # long as the process: frozen out of the collector's sight, a full collection no
        # longer walks it all while a pop waits (bench/RESULTS.md, 2026-11-22 23:20). Here,
        # not in Daemon: it is the whole process's collector, and this process is the daemon.
        gc.collect()
        gc.freeze()
        waiter = asyncio.create_task(stop.wait(), name="signal-wait")
        runner = asyncio.create_task(daemon.wait(), name="daemon-wait")
        done, pending = await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if runner in done:
            runner.result()


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_paths=True)
    print(f"{args.config}: OK ({len(config.pbxs)} PBX(s), {len(config.agents)} agent(s))")
    return 0


# -- customers ---------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "y", "vip", "是"}


def _import_customers(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_secrets=False)
    rows, problems = read_customers_csv(args.file, config.phone.default_region)
    for problem in problems:
        print(f"{args.file}:{problem}", file=sys.stderr)
    created, updated = _store_customers(config, rows)
    print(
        f"imported {len(rows)} customer(s): {created} new, {updated} updated; {len(problems)} row(s) refused"
    )
    return 1 if problems else 0


def read_customers_csv(path: Path, region: str) -> tuple[list[Any], list[str]]:
    """Read customers; phones may be several, separated by ; or |.

    Returns:
        (rows to import, problems as "LINE: reason").
    """
    from cti_bridge.store import CustomerRow

    rows, problems = [], []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"name", "phone"} - set(reader.fieldnames or ())
        if missing:
            return [], [f"1: missing column(s): {', '.join(sorted(missing))}"]
        for record in reader:
            line = reader.line_num
            raw_phones = [p.strip() for p in (record.get("phone") or "").replace("|", ";").split(";")]
            phones = [to_e164(p, region) for p in raw_phones if p]
            name = (record.get("name") or "").strip()
            if not name:
                problems.append(f"{line}: empty name")
                continue
            if not phones or None in phones:
                problems.append(f"{line}: not a phone number: {record.get('phone')!r}")
                continue
            rows.append(
                CustomerRow(
                    name=name,
                    phones=tuple(p for p in phones if p),
                    company=(record.get("company") or "").strip() or None,
                    email=(record.get("email") or "").strip() or None,
                    tier=(record.get("tier") or "").strip() or "standard",
                    vip=(record.get("vip") or "").strip().lower() in _TRUE,
                    notes=(record.get("notes") or "").strip() or None,
                    external_id=(record.get("external_id") or "").strip() or None,
                )
            )
    return rows, problems


def _store_customers(config: Config, rows: list[Any]) -> tuple[int, int]:
    return _on_store(config, lambda store: store.import_customers(rows, time.time()))


async def _open_store(config: Config) -> Any:
    from cti_bridge.app import numbering
    from cti_bridge.store import Store

    return await Store.open(config.store.url, numbering(config))


def _on_store(config: Config, work: Any) -> Any:
    """Open the store, run `await work(store)`, close it: one command's whole use of it."""

    async def run() -> Any:
        store = await _open_store(config)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


# -- tickets -------------------------------------------------------------------------


def _list_tickets(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_secrets=False)

    tickets = _on_store(config, lambda store: store.list_tickets(limit=args.limit, status=args.status))
    if args.json:
        print(json.dumps(tickets, ensure_ascii=False, indent=2))
        return 0
    columns = (
        "number",
        "status",
        "priority",
        "created",
        "caller_number",
        "customer",
        "queue",
        "assignee",
        "calls",
        "category",
    )
    table = [[_cell(t, c) for c in columns] for t in tickets]
    print(_format_table(columns, table))
    return 0


def _show_ticket(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_secrets=False)

    detail = _on_store(config, lambda store: store.ticket_detail(args.number))
    if detail is None:
        print(f"cti-bridge: no ticket {args.number}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(detail, ensure_ascii=False, indent=2))
        return 0
    print(render_ticket(detail))
    return 0


def _search_tickets(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_secrets=False)

    from cti_bridge.tickets.categories import CategoryTree

    tree = CategoryTree.from_config(config.tickets.categories)
    hits = _on_store(
        config,
        lambda store: store.search(
            args.query, region=config.phone.default_region, limit=args.limit, categories=tree
        ),
    )
    if args.json:
        print(json.dumps([dataclasses.asdict(h) for h in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print(f"no ticket matches {args.query!r}")
        return 0
    for hit in hits:
        print(f"{hit.number}  {hit.status:<11} {hit.subject}  ({', '.join(hit.matched)})")
        print("    " + " ".join(hit.snippet.split()))
    return 0


def render_ticket(d: dict[str, Any]) -> str:
    lines = [
        f"{d['number']}  {d['subject']}",
        f"  status {d['status']}  priority {d['priority']}  category {d['category'] or '-'}"
        f"  assignee {d['assignee'] or '-'}" + (f"  (rule: {d['rule']})" if d["rule"] else ""),
        f"  caller {d['caller_number'] or '-'} {d['caller_name'] or ''}  DID {d['did'] or '-'}"
        f"  queue {d['queue'] or '-'}  created {_time(d['created_at'])}",
    ]
    customer = d["customer"]
    if customer:
        vip = " VIP" if customer["vip"] else ""
        lines.append(
            f"  customer #{customer['id']} {customer['name']} ({customer['company'] or '-'},"
            f" {customer['tier']}{vip})"
        )
    lines += _crm_lines(d.get("crm"))
    if d.get("callback_reason"):
        lines.append(f"  callback: {d['callback_reason'].replace('_', ' ')} call")
    if d.get("fields"):
        lines.append("  " + "  ".join(f"{name}: {value}" for name, value in sorted(d["fields"].items())))
    lines.append(f"  {d['description']}".replace("\n", "\n  "))
    lines.append("calls:")
    for call in d["calls"]:
        lines.append(
            f"  {call['pbx']}/{call['linkedid']} {call['outcome'] or 'in progress'}"
            f"  agent {call['agent_id'] or '-'}  started {_time(call['started_at'])}"
            f"  ring {_secs(call['ring_seconds'])}  talk {_secs(call['talk_seconds'])}"
            f"  hangup {call['hangup_cause_text'] or '-'}"
        )
    lines.append("recordings:")
    for rec in d["recordings"]:
        dur = _secs(rec["duration_seconds"])
        lines.append(
            f"  {rec['local_path']}  {rec['status']}  {dur}  transcription "
            f"{rec['transcription'] or '-'}"
            + (f" ({rec['transcription_error']})" if rec["transcription_error"] else "")
        )
    lines.append("transcripts:")
    for tr in d["transcripts"]:
        lines.append(f"  [{tr['language']}, {_secs(tr['duration_seconds'])} audio] {tr['text']}")
    if d.get("attachments"):
        lines.append("attachments:")
        for a in d["attachments"]:
            lines.append(f"  {a['name']}  {a['size_bytes']} bytes  sha256 {a['sha256'][:16]}...  {a['path']}")
    lines.append("history:")
    for event in d["history"]:
        moved = f"  {event['from_status']} -> {event['to_status']}" if _moved(event) else ""
        lines.append(f"  {_time(event['at'])}  {event['kind']:<22} {event['actor']}{moved}")
        if event.get("reason"):
            lines.append(f"      why: {event['reason']}")
    return "\n".join(lines)


def _crm_lines(crm: dict[str, Any] | None) -> list[str]:
    """What the site's CRM said about the caller (`crm:` in the config), as of when it answered."""
    if crm is None:
        return []
    when = _time(crm["fetched_at"])
    profile = crm["profile"]
    if not crm["found"] or profile is None:
        return [f"  crm: the CRM does not know this number (asked {when})"]
    about = [profile.get(k) for k in ("company", "tier", "email")]
    about += ["VIP"] if profile.get("vip") else []
    line = f"  crm: {profile.get('name') or '-'}"
    if any(about):
        line += f" ({', '.join(str(a) for a in about if a)})"
    if profile.get("external_id"):
        line += f"  id {profile['external_id']}"
    lines = [f"{line}  as of {when}"]
    if profile.get("notes"):
        lines.append(f"    notes: {profile['notes']}".replace("\n", "\n    "))
    for order in profile.get("orders") or []:
        cells = [order.get(k) for k in ("id", "date", "total", "status", "summary")]
        lines.append("    order " + "  ".join(str(c) if c else "-" for c in cells))
    return lines


def _moved(event: dict[str, Any]) -> bool:
    return bool(event.get("from_status")) and event["from_status"] != event.get("to_status")


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "created":
        return _time(row["created_at"])
    value = row.get(column)
    return "-" if value in (None, "") else str(value)


def _time(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _width(text: str) -> int:
    """Terminal columns: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _format_table(columns: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max([_width(c), *(_width(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    out = ["  ".join(_pad(c.upper(), w) for c, w in zip(columns, widths, strict=True))]
    out += ["  ".join(_pad(v, w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in out)


# -- report ------------------------------------------------------------------------


def _day(text: str) -> Any:
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _report(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta

    from cti_bridge.tickets.kpi import Period, business_zone, compute_kpis
    from cti_bridge.tickets.sla import SlaPolicy

    config = load_config(args.config, check_secrets=False)
    zone = business_zone(config)
    now = time.time()
    until = args.until or datetime.fromtimestamp(now, zone).date()
    since = args.since or until - timedelta(days=29)
    if since > until:
        print("cti-bridge: --from is after --to", file=sys.stderr)
        return 2
    period = Period.of_days(since, until, zone)

    histories = _on_store(config, lambda store: store.ticket_histories(period.start, period.end))
    report = compute_kpis(histories, period=period, policy=SlaPolicy.from_config(config), as_of=now)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render_report(report))
    return 0


def render_report(report: Any) -> str:
    """The KPI report as readable tables (durations in minutes/hours/days, rates in %)."""
    from datetime import datetime, timedelta

    zone = report.period.timezone
    first = datetime.fromtimestamp(report.period.start, zone).date().isoformat()
    last = (datetime.fromtimestamp(report.period.end, zone) - timedelta(seconds=1)).date().isoformat()
    as_of = datetime.fromtimestamp(report.as_of, zone).strftime("%Y-%m-%d %H:%M")
    out = [
        f"KPIs of the tickets created {first} .. {last} ({zone}), as of {as_of}",
        f"tickets {report.tickets}   open {report.open}   resolved {report.resolved}",
        "",
        _format_table(
            ["time", "tickets", "mean", "p50", "p90"],
            [
                [name, str(s.count), _span(s.mean), _span(s.p50), _span(s.p90)]
                for name, s in (("first response", report.first_response), ("resolution", report.resolution))
            ],
        ),
        "",
    ]
    csat, fcr, reopened = report.csat, report.first_contact_resolution, report.reopened
    sla_rows = [
        [f"SLA {name} met", _percent(a.rate), f"{a.met} met, {a.breached} breached, {a.pending} running"]
        for name, a in (("first response", report.sla_first_response), ("resolution", report.sla_resolution))
    ]
    out += [
        _format_table(
            ["kpi", "value", "of"],
            [
                ["first-contact resolution", _percent(fcr.value), f"{fcr.hits} of {fcr.total} resolved"],
                ["reopened", _percent(reopened.value), f"{reopened.hits} of {reopened.total} resolved"],
                *sla_rows,
                ["CSAT mean (1-5)", "-" if csat.mean is None else f"{csat.mean:.2f}", f"{csat.count} scores"],
                [
                    "CSAT satisfied (4-5)",
                    _percent(csat.satisfied.value),
                    f"{csat.satisfied.hits} of {csat.satisfied.total} scores",
                ],
                [
                    "CSAT response",
                    _percent(csat.response.value),
                    f"{csat.response.hits} of {csat.response.total} resolved",
                ],
                [
                    "transferred",
                    _percent(report.transferred.value),
                    f"{report.transferred.hits} of {report.transferred.total} tickets, "
                    f"{report.transfers} transfers",
                ],
                [
                    "callbacks made",
                    _percent(report.callbacks.made.value),
                    f"{report.callbacks.made.hits} of {report.callbacks.requested} callback tickets",
                ],
                [
                    "callbacks answered",
                    _percent(report.callbacks.answered.value),
                    f"{report.callbacks.answered.hits} of {report.callbacks.answered.total} first attempts",
                ],
                [
                    "time to callback p50",
                    _span(report.callbacks.time_to_callback.p50),
                    f"mean {_span(report.callbacks.time_to_callback.mean)}",
                ],
            ],
        ),
        "CSAT scores: " + "   ".join(f"{score}: {n}" for score, n in csat.distribution.items()),
        "",
        _format_table(
            ["status", "tickets", "mean h", "total h"],
            [
                [status, str(t.tickets), f"{t.mean_hours:.1f}", f"{t.total_hours:.0f}"]
                for status, t in report.time_in_state.items()
            ],
        ),
        "",
        _volume_table("大类 category", report.by_category_group, report.tickets),
        "",
        _volume_table("category (top 10)", dict(list(report.by_category.items())[:10]), report.tickets),
        "",
        _volume_table("queue", report.by_queue, report.tickets),
        "",
        _volume_table("calls by outcome", report.calls_by_outcome, sum(report.calls_by_outcome.values())),
        "",
        _volume_table("IVR path", report.by_ivr_path, report.tickets),
        "",
        _volume_table("priority", dict(sorted(report.by_priority.items())), report.tickets),
        "",
        _format_table(
            ["agent", "tickets", "resolved", "first resp p50", "csat"],
            [
                [
                    agent,
                    str(f.tickets),
                    str(f.resolved),
                    _span(f.first_response.p50),
                    "-" if f.csat_mean is None else f"{f.csat_mean:.2f}",
                ]
                for agent, f in report.by_agent.items()
            ],
        ),
        "",
    ]
    peak = max(report.by_day.values(), default=0)
    out.append(
        _format_table(
            ["day", "tickets", ""],
            [[day, str(n), "#" * round(40 * n / peak) if peak else ""] for day, n in report.by_day.items()],
        )
    )
    return "\n".join(out)


def _volume_table(title: str, counts: dict[str, int], total: int) -> str:
    return _format_table(
        [title, "tickets", "share"],
        [[key, str(n), _percent(n / total if total else None)] for key, n in counts.items()],
    )


def _span(seconds: float | None) -> str:
    """12 min, 3.4 h, 2.1 d."""
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


# -- knowledge base -------------------------------------------------------------------


def _kb_add(args: argparse.Namespace) -> int:
    from cti_bridge.tickets.categories import CategoryTree
    from cti_bridge.tickets.errors import CategoryError

    config = load_config(args.config, check_secrets=False)
    category = None
    if args.category:
        try:
            category = CategoryTree.from_config(config.tickets.categories).canonical(args.category)
        except CategoryError as exc:
            print(f"cti-bridge: {exc}", file=sys.stderr)
            return 2
    tags = [t for t in args.tags.split(",") if t.strip()]
    article = _kb_run(
        config,
        lambda store: store.kb_add_article(
            title=args.title, body=args.body, tags=tags, category=category, actor=args.actor, at=time.time()
        ),
    )
    if isinstance(article, str):
        return _kb_refused(article)
    print(f"added article #{article.id}: {article.title}")
    return 0


def _kb_search(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_secrets=False)
    matches = _kb_run(
        config, lambda store: store.kb_search(args.query, limit=args.limit, category=args.category)
    )
    return _kb_print_matches(matches, args.json)


def _kb_suggest(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_secrets=False)

    async def suggest(store: Any) -> Any:
        ticket_id = await store.ticket_id(args.number)
        if ticket_id is None:
            return f"no ticket {args.number}"
        return await store.kb_suggest(ticket_id, args.limit)

    matches = _kb_run(config, suggest)
    if isinstance(matches, str):
        return _kb_refused(matches)
    return _kb_print_matches(matches, args.json)


def _kb_from_ticket(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_secrets=False)

    async def convert(store: Any) -> Any:
        ticket_id = await store.ticket_id(args.number)
        if ticket_id is None:
            return f"no ticket {args.number}"
        return await store.kb_article_from_ticket(ticket_id, args.actor, time.time())

    article = _kb_run(config, convert)
    if isinstance(article, str):
        return _kb_refused(article)
    print(f"added article #{article.id} from {args.number}: {article.title}")
    return 0


def _attach(args: argparse.Namespace) -> int:
    from cti_bridge.app import attachments_folder
    from cti_bridge.store.attachments import AttachmentError

    config = load_config(args.config, check_secrets=False)
    folder = attachments_folder(config)

    try:
        added = _on_store(
            config,
            lambda store: store.attach(
                args.number, args.file, folder=folder, actor=args.actor, at=time.time()
            ),
        )
    except AttachmentError as exc:
        print(f"cti-bridge: {exc}", file=sys.stderr)
        return 1
    print(f"{args.number}: attached {added.name} ({added.size_bytes} bytes, sha256 {added.sha256})")
    return 0


# -- the ticket lifecycle -------------------------------------------------------------


def _lifecycle_parsers(tickets: Any, config_arg: argparse.ArgumentParser) -> None:
    """One subcommand per workflow command: tickets assign|start|wait|...|priority NUMBER ..."""
    common = argparse.ArgumentParser(add_help=False, parents=[config_arg])
    common.add_argument("number", help="ticket number, e.g. T-000001")
    common.add_argument(
        "--as", dest="actor", default=os.environ.get("USER", "cli"), help="who (default $USER)"
    )
    common.add_argument("--reason", help="why, for the ticket's history")

    def add(name: str, text: str, build: Any) -> argparse.ArgumentParser:
        sub = tickets.add_parser(name, parents=[common], help=text)
        sub.set_defaults(handler=_apply_ticket_command, build=build)
        return sub

    def values(pairs: list[str] | None) -> dict[str, str]:
        return dict(pair.split("=", 1) for pair in pairs or ())

    from cti_bridge.tickets import workflow as w

    add(
        "assign", "give the ticket to an agent", lambda a: w.Assign(assignee=a.agent, reason=a.reason)
    ).add_argument("agent")
    start = add("start", "start work on an assigned ticket", lambda a: w.Start(fields=values(a.set)))
    wait = add(
        "wait",
        "wait on the customer or a third party",
        lambda a: w.Wait(on=w.WaitingOn(a.on), reason=a.reason),
    )
    wait.add_argument("on", choices=[str(o) for o in w.WaitingOn])
    add("resume", "stop waiting", lambda a: w.Resume(reason=a.reason))
    resolve = add(
        "resolve",
        "resolve, with the resolution",
        lambda a: w.Resolve(fields={**values(a.set), "resolution": a.resolution}, reason=a.reason),
    )
    resolve.add_argument("--resolution", required=True)
    close = add(
        "close",
        "close a resolved ticket",
        lambda a: w.Close(confirmed_by_customer=a.confirmed, reason=a.reason),
    )
    close.add_argument("--confirmed", action="store_true", help="the customer confirmed the resolution")
    add("reopen", "reopen a resolved or closed ticket", lambda a: w.Reopen(reason=a.reason or ""))
    comment = add(
        "comment",
        "add a comment (@agent mentions are noted)",
        lambda a: w.AddComment(
            text=a.text, visibility=w.Visibility.CUSTOMER if a.customer_visible else w.Visibility.INTERNAL
        ),
    )
    comment.add_argument("text")
    comment.add_argument("--customer-visible", action="store_true")
    fields = add(
        "set", "set fields: name=value ...", lambda a: w.UpdateFields(values=values(a.pairs), reason=a.reason)
    )
    fields.add_argument("pairs", nargs="+", metavar="name=value")
    add(
        "priority",
        "change the priority (P1..P4 or a name such as 紧急)",
        lambda a: w.ChangePriority(priority=a.priority, reason=a.reason),
    ).add_argument("priority")
    for sub in (start, resolve):
        sub.add_argument("--set", action="append", metavar="name=value", help="also set a field")


def _apply_ticket_command(args: argparse.Namespace) -> int:
    from cti_bridge.tickets.errors import TicketError
    from cti_bridge.tickets.workflow import Workflow

    config = load_config(args.config, check_secrets=False)
    workflow = Workflow.from_config(config)

    async def apply(store: Any) -> tuple[Any, str | None]:
        transition = await store.apply_command(
            args.number, command, workflow=workflow, actor=args.actor, at=time.time()
        )
        # A description a person wrote is for the rules to read too (keywords, order numbers).
        written = getattr(command, "values", None) or getattr(command, "fields", None) or {}
        description = written.get("description")
        if not description or not config.tickets.rules:
            return transition, None
        ticket_id = await store.ticket_id(args.number)
        try:
            decision = await store.revise_by_rules(
                ticket_id,
                description=description,
                rules=config.tickets.rules,
                workflow=workflow,
                at=time.time(),
            )
        except TicketError as exc:  # the edit itself is stored; only the rules' change is refused
            return transition, f"rules not applied: {exc}"
        return transition, f"rules applied: {decision.reason}" if decision is not None else None

    try:
        command = args.build(args)
        transition, rules_said = _on_store(config, apply)
    except (TicketError, LookupError, ValueError) as exc:
        print(f"cti-bridge: {exc}", file=sys.stderr)
        return 1
    kinds = ", ".join(str(e.kind) for e in transition.events)
    print(f"{args.number}: {transition.state.status} ({kinds})")
    if rules_said is not None:
        print(f"{args.number}: {rules_said}")
    return 0


def _kb_run(config: Config, work: Any) -> Any:
    """Run `work(store)` on an open store; a refusal comes back as its message."""
    from cti_bridge.store.knowledge import KnowledgeBaseError

    async def refusal_as_message(store: Any) -> Any:
        try:
            return await work(store)
        except KnowledgeBaseError as exc:
            return str(exc)

    return _on_store(config, refusal_as_message)


def _kb_refused(message: str) -> int:
    print(f"cti-bridge: {message}", file=sys.stderr)
    return 1


def _kb_print_matches(matches: list[Any], as_json: bool) -> int:
    if isinstance(matches, str):
        return _kb_refused(matches)
    if as_json:
        rows = [
            {
                **dataclasses.asdict(m.article),
                "rank": m.rank,
                "snippet": m.snippet,
                "matched_terms": list(m.matched_terms),
                "why": m.why,
            }
            for m in matches
        ]
        for row in rows:
            row["tags"] = list(row["tags"])
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not matches:
        print("no article matches")
    for m in matches:
        a = m.article
        print(f"#{a.id}  {a.title}  [{a.category or '-'}]" + (f"  tags {','.join(a.tags)}" if a.tags else ""))
        print(f"    {m.snippet}".replace("\n", " "))
        print(f"    {m.why}")
    return 0


# -- models ---------------------------------------------------------------------------


def _models(args: argparse.Namespace) -> int:
    from cti_bridge.models import run_models_command

    return run_models_command(
        args.action,
        getattr(args, "name", None),
        getattr(args, "dest", None),
        getattr(args, "sha256", None),
        args.manifest,
    )


# -- transcribe ------------------------------------------------------------------------


def _transcribe(args: argparse.Namespace) -> int:
    from cti_bridge.transcribe.cli import transcribe_files
    from cti_bridge.transcribe.service import model_path

    if args.model is not None:
        model, language = args.model, args.language or "en"
    else:
        config = load_config(args.config, check_secrets=False)
        language = args.language or config.transcription.default_language
        if language not in config.transcription.models:
            print(f"cti-bridge: no model for language {language!r} in {args.config}", file=sys.stderr)
            return 2
        model = model_path(config.transcription.models[language])
    # The command's output is the transcripts; only problems go to stderr beside the bar.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    outcomes = asyncio.run(
        transcribe_files(args.files, str(model), language, args.workers, progress=not args.json)
    )
    failed = 0
    results = []
    for path, outcome in zip(args.files, outcomes, strict=True):
        if isinstance(outcome, Exception):
            failed += 1
            results.append({"file": str(path), "error": str(getattr(outcome, "reason", outcome))})
        else:
            results.append({"file": str(path), **_result_dict(outcome)})
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for result in results:
            if "error" in result:
                print(f"{result['file']}: FAILED: {result['error']}")
            else:
                print(
                    f"{result['file']}: [{result['duration_seconds']:.1f}s audio in "
                    f"{result['elapsed_seconds']:.1f}s] {result['text']}"
                )
    return 1 if failed else 0


def _result_dict(result: Any) -> dict[str, Any]:
    import dataclasses

    data = dataclasses.asdict(result)
    data["words"] = [dict(w) for w in data["words"]]
    return data


if __name__ == "__main__":
    raise SystemExit(main())
