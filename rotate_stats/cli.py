"""Command line: parse argv, build Settings, call one library function, print, exit.

Library code never prints or exits; every exception is mapped to an exit code here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from . import __version__
from .dates import iso, parse_iso
from .errors import ConfigError, LockHeld, RotateStatsError
from .family import EVENTS
from .report import EXIT_MEANINGS, DateState, ExitCode, RotationReport
from .settings import ENVIRONMENT, Settings, mask_url

# redis, the stores and the walk are imported by _run, when a command needs them:
# `--help` and usage errors start in a fraction of the time (docs/PERFORMANCE.md).

if TYPE_CHECKING:
    from .monitor import RunMonitor

COMMANDS = ("rotate", "check", "migrate", "status", "prune-ledger", "demo")

EPILOG = (
    "exit codes:\n"
    + "".join(f"  {int(c):<3} {c.name.lower():<11} {EXIT_MEANINGS[c]}\n" for c in ExitCode)
    + "\nenvironment variables (flags override them):\n"
    + "".join(f"  {name}\n      {meaning}\n" for name, (_, meaning) in ENVIRONMENT.items())
)


def _date(text: str) -> int:
    try:
        return parse_iso(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The parser; ``rotate`` is the default command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--redis-url", help="Redis URL (ROTATE_STATS_REDIS_URL)")
    common.add_argument(
        "--database-url",
        help="sqlite:///path.db or rqlite[s]://[user:password@]host:port "
        "(ROTATE_STATS_DATABASE_URL)",
    )
    common.add_argument("--format", choices=("text", "json"), default="text", help="output")
    common.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    parser = argparse.ArgumentParser(
        prog="rotate_stats",
        description="Rotate journal chat job stats from Redis into journal_chat_job_stats. "
        "Without a command, runs `rotate`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rotate_stats {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    rot = add("rotate", "rotate every stable date, or the dates given (default command)")
    rot.add_argument("--date", type=_date, help="rotate or repair one date YYYY-MM-DD")
    rot.add_argument(
        "--from", dest="from_", metavar="DATE", type=_date, help="first date of a range"
    )
    rot.add_argument("--to", metavar="DATE", type=_date, help="last date of a range")
    rot.add_argument("--dry-run", action="store_true", help="print the plan, touch nothing")
    rot.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="stop before a date that violates an invariant, leaving it in Redis",
    )
    rot.add_argument("--batch-size", type=_positive, help="dates per Redis call and transaction")
    rot.add_argument(  # issue 10 #15: README "Monitoring"
        "--metrics-file",
        metavar="PATH",
        help="write the run's metrics there, Prometheus text format (ROTATE_STATS_METRICS_FILE)",
    )

    chk = add("check", "check the invariants over stored rows (for CI)")
    chk.add_argument("--from", dest="from_", metavar="DATE", type=_date, help="first date")
    chk.add_argument("--to", metavar="DATE", type=_date, help="last date")
    chk.add_argument(
        "--pending", action="store_true", help="also check stable dates still pending in Redis"
    )
    add("migrate", "apply pending migrations from rotate_stats/migrations")
    add("status", "earliest, last stable date, backlog, orphaned keys, lock holder, newest row")
    prune = add(
        "prune-ledger",
        "delete claim-ledger entries of dates before --before that can no longer matter",
    )
    prune.add_argument(
        "--before",
        metavar="DATE",
        type=_date,
        required=True,
        help="prune entries of dates before this one (kept: claims in Redis, entries < 7 days old)",
    )
    demo = add("demo", "run the job on an in-process Redis and a new SQLite file with demo data")
    demo.add_argument(
        "--days", type=_positive, default=21, help="stable days of traffic (21; 1 to 3660)"
    )
    demo.add_argument("--seed", type=int, default=2024, help="random seed of the traffic")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (
        args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help", "--version")
    ):
        args_list.insert(0, "rotate")
    parser = build_parser()
    args = parser.parse_args(args_list)
    env = os.environ if environ is None else environ
    monitor: RunMonitor | None = None
    if args.command == "rotate":  # issue 10 #15: metrics file and heartbeat of the run
        from .monitor import RunMonitor

        try:
            monitor = RunMonitor.from_environment(args.metrics_file, env)
        except ConfigError as exc:
            print(f"rotate_stats: error: {exc}", file=sys.stderr)
            return ExitCode.USAGE
    code = _main(args, env, monitor)
    if monitor is not None:
        monitor.finish(code)
    return code


def _main(args: argparse.Namespace, env: Mapping[str, str], monitor: RunMonitor | None) -> int:
    try:
        settings = Settings.from_env(
            env,
            redis_url=args.redis_url,
            database_url=args.database_url,
            log_level=args.log_level.upper() if args.log_level else None,
            strict=getattr(args, "strict", None),
            batch_size=getattr(args, "batch_size", None),
        )
        logging.basicConfig(  # force: a new handler on this call's stderr
            level=settings.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            force=True,
        )
        return _run(args, settings, monitor)
    except ConfigError as exc:
        print(f"rotate_stats: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except LockHeld as exc:
        print(f"rotate_stats: {exc}", file=sys.stderr)
        return ExitCode.LOCKED
    except RotateStatsError as exc:
        print(f"rotate_stats: error: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    except Exception as exc:
        redis = sys.modules.get("redis")  # loaded by any command that got this far
        if redis is None or not isinstance(exc, redis.RedisError):
            raise
        url = mask_url(args.redis_url or env.get("ROTATE_STATS_REDIS_URL", "") or "default URL")
        print(f"rotate_stats: error: Redis at {url}: {exc}", file=sys.stderr)
        return ExitCode.FAILURE


def _emit(fmt: str, data: Mapping[str, object], text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if fmt == "json" else text)


def _run(args: argparse.Namespace, settings: Settings, monitor: RunMonitor | None = None) -> int:
    from .checks import StatusLimits, check, prune_ledger, render_status, status
    from .connections import open_redis, open_store
    from .database import migrate, require_migrated
    from .progress import Progress
    from .redis_side import RedisSide
    from .rotate import RotateOptions, rotate

    if args.command == "demo":  # issue 10 #12: decisions in rotate_stats/demo.py
        from .demo import check_days, demo_database, render_demo, run_demo

        if args.redis_url:
            raise ConfigError(
                "--redis-url",
                mask_url(args.redis_url),
                "no Redis URL: the demo writes made-up data into a Redis of its own",
            )
        check_days(args.days)
        logging.getLogger("rotate_stats").setLevel(logging.ERROR)
        progress = Progress(sys.stderr, what="demo")
        try:
            result = run_demo(args.days, args.seed, demo_database(args.database_url), progress)
        finally:
            progress.close()
        _emit(args.format, result.as_dict(), render_demo(result))
        return ExitCode.OK
    if args.command == "rotate":
        if args.date is not None and (args.from_ is not None or args.to is not None):
            raise ConfigError("--date", iso(args.date), "either --date or --from/--to, not both")
        if args.to is not None and args.from_ is None:
            raise ConfigError("--to", iso(args.to), "--from as well")
    store = open_store(settings)
    try:
        if args.command == "migrate":
            applied = migrate(store)
            _emit(
                args.format,
                {"applied": applied},
                "applied: " + ", ".join(applied) if applied else "already up to date",
            )
            return ExitCode.OK
        if args.command == "check":
            side = RedisSide(open_redis(settings.redis_url)) if args.pending else None
            checked = check(store, args.from_, args.to, side)
            lines = [
                f"checked {checked.rows_checked} rows, {checked.pending_checked} pending dates"
            ]
            lines += [_finding_line(f.as_dict()) for f in checked.findings]
            _emit(args.format, checked.as_dict(), "\n".join(lines))
            return checked.exit_code
        side = RedisSide(open_redis(settings.redis_url))
        if args.command == "prune-ledger":
            require_migrated(store)
            pruned = prune_ledger(side, store, args.before)
            _emit(
                args.format,
                pruned.as_dict(),
                f"pruned {pruned.deleted} ledger entries before {pruned.before}; "
                f"kept {pruned.kept_in_redis} whose claims are still in Redis",
            )
            return ExitCode.OK
        if args.command == "status":
            limits = StatusLimits(
                settings.alert_backlog_days,
                settings.stale_after_days,
                settings.stuck_claim_after,
                settings.lock_ttl,
            )
            st = status(side, store, limits=limits)
            _emit(args.format, st.as_dict(), render_status(st))
            return st.exit_code  # 0 healthy, 1 problems (README "Monitoring")
        first = args.date if args.date is not None else args.from_
        last = args.date if args.date is not None else args.to
        progress = Progress(sys.stderr)  # long backfills: a bar on a TTY, else log lines
        options = RotateOptions(
            first=first,
            last=last,
            strict=settings.strict,
            dry_run=args.dry_run,
            batch_size=settings.batch_size,
            lock_ttl_ms=int(settings.lock_ttl * 1000),
            max_backlog_days=settings.max_backlog_days,
            scan_orphans=settings.scan_orphans,
            max_clock_skew=settings.max_clock_skew,
            allow_eviction=settings.allow_eviction,
            fence=settings.redis_fence,
            fence_timeout_ms=int(settings.redis_fence_timeout * 1000),
            stale_after_days=settings.stale_after_days,
            progress=progress,
        )
        try:
            report = rotate(side.client, store, options)
        finally:
            progress.close()
        if monitor is not None:
            monitor.observe(report, side.client)
        _emit(args.format, report.as_dict(), render_report(report))
        if report.error:
            print(f"rotate_stats: error: {report.error}", file=sys.stderr)
        return report.exit_code
    finally:
        store.close()


def _finding_line(f: Mapping[str, object]) -> str:
    where = " ".join(f"{k}={f[k]}" for k in ("event", "job_type") if f[k] is not None)
    return f"{f['date']} {f['invariant']} {where}: {f['detail']}"


def render_report(report: RotationReport) -> str:
    """Human-readable run summary: one line per date with data, totals, findings."""
    lines = []
    quiet = {DateState.ZERO_ROW: 0, DateState.UNCHANGED: 0}
    for o in report.outcomes:
        if o.state in quiet and not o.findings:
            quiet[o.state] += 1
            continue
        counts = " ".join(f"{e}={o.day.count(e)}" for e in EVENTS)
        extra = f"  [{o.detail}]" if o.detail else ""
        lines.append(f"{iso(o.unix_date)}  {o.state.value:<15} {counts}{extra}")
    head = "dry run: " if report.dry_run else ""
    span = (
        f"{iso(report.first_date)}..{iso(report.last_date)}"
        if report.first_date is not None and report.last_date is not None
        else "no dates"
    )
    lines.append(
        f"{head}{span}: {len(report.outcomes)} dates, "
        f"{quiet[DateState.ZERO_ROW]} zero rows, {quiet[DateState.UNCHANGED]} unchanged; "
        f"earliest now {report.earliest_after or report.earliest_before}"
    )
    lines += report.notes
    findings = report.findings
    lines.append(f"{len(findings)} invariant finding(s)")
    lines += [_finding_line(f.as_dict()) for f in findings]
    return "\n".join(lines)
