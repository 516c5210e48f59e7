"""Command line: parse argv, build Settings, call one library function, print, exit.

Library code never prints or exits; every exception is mapped to an exit code here,
in ``main``. One function per command (``_cmd_<name>``).

Flags common to every command (``--redis-url``, ``--format``, ...) may stand
before or after the command name (issue 10, item 5): they are defined on the
top-level parser and on each command with ``argparse.SUPPRESS`` defaults, so a
value given before the command is not overwritten by the command's default;
``COMMON_DEFAULTS`` fills in whatever was not given at all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack, closing
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .dates import iso, last_stable, parse_iso
from .errors import ConfigError, LockHeld, RotateStatsError, mask_text
from .render import plural, printable_lines, render_check, render_report, render_status
from .report import EXIT_MEANINGS, ExitCode, RotationReport
from .settings import ENVIRONMENT, Settings

# redis, the stores and the walk are imported by the command functions, when a
# command needs them: `--help` and usage errors start in a fraction of the time
# (docs/PERFORMANCE.md).

if TYPE_CHECKING:
    from .monitor import RunMonitor

COMMANDS = ("rotate", "check", "migrate", "status", "prune-ledger", "demo")
FORMATS = ("text", "json", "junit")
COMMAND_FORMATS: dict[str, tuple[str, ...]] = {
    command: FORMATS if command == "check" else ("text", "json") for command in COMMANDS
}
"""The ``--format`` values each command serves: its parser offers (and its ``--help``
shows) those only (issue 17, item 5(d)); junit is a CI report of ``check``."""


def new_run_id() -> str:
    """A run id: 16 random hex digits, made once per ``main`` call (once per process
    when run as a program). It is in every log line, the report (``run_id``), the
    lock token (``status`` shows it as the holder) and the claim ids."""
    return os.urandom(8).hex()


COMMON_DEFAULTS: dict[str, Any] = {
    "redis_url": None,
    "database_url": None,
    "format": "text",
    "log_level": None,
    "log_format": None,
}
"""Defaults of the flags every command takes (the parser itself suppresses them)."""

EPILOG = (
    "exit codes:\n"
    + "".join(f"  {int(c):<3} {c.name.lower():<11} {EXIT_MEANINGS[c]}\n" for c in ExitCode)
    + "\nenvironment variables (flags override them):\n"
    + "".join(f"  {name}\n      {meaning}\n" for name, (_, meaning) in ENVIRONMENT.items())
)


class UsageError(Exception):
    """A command line argparse rejects; carries the usage text of the parser concerned."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """Raises UsageError instead of exiting, so ``--format json`` can report it too."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


def _date(text: str) -> int:
    try:
        return parse_iso(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def _common_flags(formats: tuple[str, ...] = FORMATS) -> _Parser:
    """The flags every command takes, before or after its name (defaults suppressed);
    ``--format`` offers ``formats``."""
    common = _Parser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--redis-url", help="Redis URL (ROTATE_STATS_REDIS_URL)")
    common.add_argument(
        "--database-url",
        help="sqlite:///path.db or rqlite[s]://[user:password@]host:port "
        "(ROTATE_STATS_DATABASE_URL)",
    )
    if formats == FORMATS:  # before the command's name: any command's format
        described = "output: text (default) or json; junit for check"
    else:
        described = "output: " + ", ".join(
            f"{f} (default)" if f == "text" else f for f in formats[:-1]
        )
        described += f" or {formats[-1]}"
    common.add_argument("--format", choices=formats, help=described)
    common.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    common.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines on stderr: text (default) or json, one object per line "
        "(ROTATE_STATS_LOG_FORMAT)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The parser; ``rotate`` is the default command."""
    common = _common_flags()
    parser = _Parser(
        prog="rotate_stats",
        description="Rotate journal chat job stats from Redis into journal_chat_job_stats.\n"
        "Without a command, runs `rotate`. The common flags (--redis-url, --database-url,\n"
        "--format, --log-level, --log-format) may stand before or after the command.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"rotate_stats {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            parents=[_common_flags(COMMAND_FORMATS[name])],
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    rot = add("rotate", "rotate every stable date, or the dates given (default command)")
    rot.add_argument("--date", type=_date, help="rotate or repair one date YYYY-MM-DD")
    rot.add_argument(
        "--from",
        dest="from_",
        metavar="DATE",
        type=_date,
        help="first date of a range (alone: through the last stable date)",
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
    rot.add_argument(  # README "Monitoring"
        "--metrics-file",
        metavar="PATH",
        help="write the run's metrics there, Prometheus text format (ROTATE_STATS_METRICS_FILE)",
    )

    chk = add("check", "check the invariants over stored rows (for CI)")
    chk.add_argument("--from", dest="from_", metavar="DATE", type=_date, help="first date")
    chk.add_argument("--to", metavar="DATE", type=_date, help="last date (a stable date)")
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
        help="prune entries of dates before this one, leaving a watermark per date (kept: "
        "claims in Redis, entries younger than ROTATE_STATS_PRUNE_MIN_AGE days)",
    )
    demo = add("demo", "run the job on an in-process Redis and a new SQLite file with demo data")
    demo.add_argument(
        "--days", type=_positive, default=21, help="stable days of traffic (21; 1 to 3660)"
    )
    demo.add_argument("--seed", type=int, default=2024, help="random seed of the traffic")
    return parser


def with_default_command(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` with ``rotate`` put first when no command is named in it.

    A command is a word that is not the value of an option: option arity is read
    from the parser itself (every command's options), so a flag added later is
    handled without a list to keep in step.
    """
    takes_value: dict[str, bool] = {}
    parsers: list[argparse.ArgumentParser] = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    for p in parsers:
        for action in p._actions:
            for flag in action.option_strings:
                takes_value[flag] = action.nargs != 0
    args = list(argv)
    skip = False
    for token in args:
        if skip:
            skip = False
        elif token == "--":
            break
        elif token.startswith("-"):
            # argparse accepts unambiguous prefixes (--redis for --redis-url)
            arity = {v for flag, v in takes_value.items() if flag.startswith(token)}
            skip = "=" not in token and takes_value.get(token, arity == {True})
        elif token in COMMANDS:
            return args
        else:
            break  # not a command: let `rotate` reject it
    if any(t in ("-h", "--help", "--version") for t in args):
        return args  # the top-level help (or version)
    return ["rotate", *args]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` (UsageError on a bad command line), with every common default set."""
    parser = build_parser()
    args = parser.parse_args(with_default_command(parser, argv))
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    served = COMMAND_FORMATS[args.command]
    if args.format not in served:  # given before the command's name, which lacks it
        command_parser = _subparsers(parser)[args.command]
        choices = ", ".join(repr(f) for f in served)
        raise UsageError(
            f"argument --format: invalid choice: {args.format!r} (choose from {choices})",
            command_parser.format_usage(),
        )
    return args


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Command name -> its parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


CLOSED_OUTPUT = 128 + signal.SIGPIPE
"""Exit code when the reader of stdout or stderr went away (``check --format json |
head``): 141, what a shell reports for a filter killed by SIGPIPE (issue 17, item 5(b))."""


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the CLI; returns the exit code.

    A closed output (the reader of a pipe went away: ``| head``, ``| grep -q``) ends
    the command quietly, as it ends any Unix filter: no traceback, no message (there
    may be nowhere to write one), exit ``CLOSED_OUTPUT`` (141, as if killed by SIGPIPE,
    which Python ignores). Whatever the command did before stays done, as after any
    interruption; a rotation's metrics file and heartbeat record exit 141.
    """
    try:
        try:
            code = _run(argv, environ)
        except SystemExit:  # --help, --version: argparse ignores a failed write
            sys.stdout.flush()
            sys.stderr.flush()
            if _output_closed():
                _discard_output()
                return CLOSED_OUTPUT
            raise
        sys.stdout.flush()
        sys.stderr.flush()
        return code
    except BrokenPipeError:
        if not _output_closed():
            raise  # a socket's, not our output's: a real failure
        _discard_output()
        return CLOSED_OUTPUT


def _output_closed() -> bool:
    """Has the reader of this process's stdout or stderr gone away? (A pipe whose
    reading end is closed polls as an error.)"""
    poller = select.poll()
    for stream in (sys.stdout, sys.stderr):
        try:
            poller.register(stream.fileno(), select.POLLOUT)
        except (AttributeError, ValueError, OSError):  # not a real file (tests' captures)
            continue
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _discard_output() -> None:
    """Point a closed stdout/stderr at /dev/null, so that flushing what is left in
    their buffers (at exit too) cannot fail again."""
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            if not any(e & (select.POLLERR | select.POLLHUP) for _, e in poller.poll(0)):
                continue
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        except (AttributeError, ValueError, OSError):
            continue


def _run(argv: Sequence[str] | None, environ: Mapping[str, str] | None) -> int:
    """``main`` itself: parse, run the command, record it in the metrics file and
    the heartbeat."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    if argv is None:  # the process's own streams: a key the terminal cannot encode is
        for stream in (sys.stdout, sys.stderr):  # escaped, never a UnicodeEncodeError
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(errors="backslashreplace")
        signal.signal(signal.SIGTERM, _stop)
    _Stderr.json = _wanted_log_format(args_list, env) == "json"
    is_process = argv is None
    _Stderr.run_id = None
    try:
        args = parse_args(args_list)
        args.run_id = _Stderr.run_id = new_run_id()
        args.is_process = is_process
    except UsageError as exc:
        if not _Stderr.json:
            sys.stderr.write(exc.usage)
        return _fail(_wanted_format(args_list), ExitCode.USAGE, f"error: {exc}")
    monitor: RunMonitor | None = None
    if args.command == "rotate":  # metrics file and heartbeat of the run (README "Monitoring")
        from .monitor import RunMonitor

        try:
            monitor = RunMonitor.from_environment(args.metrics_file, env)
        except ConfigError as exc:
            return _fail(args.format, ExitCode.USAGE, f"error: {exc}")
        args.monitor = monitor
    if monitor is not None and args.dry_run:
        # checked above, but a dry run is no run: its "success" would hide a nightly
        # job that fails (last_success moved to now, a success ping)
        monitor = args.monitor = None
    try:
        code = _main(args, env)
        sys.stdout.flush()  # a closed output is found now, while the monitor can say so
    except BaseException as exc:  # a bug or a signal: still in the metrics, still a /fail ping
        code = _exit_code_of(exc)
        if code > 128 and code != CLOSED_OUTPUT:
            logging.getLogger("rotate_stats").error(
                "stopped by %s (exit %d): nothing is lost, the next run picks up its claims",
                signal.Signals(code - 128).name,
                code,
            )
        if monitor is not None:
            monitor.finish(code)
        raise
    if monitor is not None:
        monitor.finish(code)
    return code


def _stop(signum: int, _frame: object) -> None:
    """SIGTERM (systemd's TimeoutStartSec, a shutdown, a container stopped) ends the
    run like Ctrl-C does: an exception, so the lock is released and the metrics file
    and the heartbeat say so. A second SIGTERM is ignored while that is done."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def _exit_code_of(exc: BaseException) -> int:
    """The exit code an exception leaving ``main`` ends the process with."""
    if isinstance(exc, BrokenPipeError) and _output_closed():
        return CLOSED_OUTPUT
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else ExitCode.FAILURE
    if isinstance(exc, KeyboardInterrupt):
        return 128 + signal.SIGINT
    return ExitCode.FAILURE


def _main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings: Settings | None = None
    try:
        settings = Settings.from_env(
            env,
            redis_url=args.redis_url,
            database_url=args.database_url,
            log_level=args.log_level.upper() if args.log_level else None,
            log_format=args.log_format,
            strict=getattr(args, "strict", None),
            batch_size=getattr(args, "batch_size", None),
        )
        from .invocation import set_command
        from .logs import setup_logging

        setup_logging(settings.log_level, settings.log_format, args.run_id)
        # the command every hint names: ROTATE_STATS_COMMAND (the cron wrapper), else
        # how this process was started (a program, not main() called from Python)
        set_command(settings.command, process=args.is_process)
        return COMMAND_FUNCTIONS[args.command](args, settings)
    except ConfigError as exc:
        return _fail(args.format, ExitCode.USAGE, f"error: {exc}")
    except LockHeld as exc:
        return _fail(args.format, ExitCode.LOCKED, str(exc))
    except RotateStatsError as exc:
        return _fail(args.format, ExitCode.FAILURE, f"error: {exc}")
    except BrokenPipeError:
        raise  # our output was closed (``main``), or a bug: writing more cannot help
    except Exception as exc:
        redis = sys.modules.get("redis")  # loaded by any command that got this far
        if redis is None or not isinstance(exc, redis.RedisError):
            if args.format != "text":  # a bug: still a document on stdout, then the traceback
                _fail(args.format, ExitCode.FAILURE, f"error: internal error: {exc!r}")
            raise
        from .connections import explain_redis_error

        url = settings.redis_url if settings is not None else args.redis_url or "default URL"
        return _fail(args.format, ExitCode.FAILURE, f"error: {explain_redis_error(exc, url)}")


def _wanted_format(argv: Sequence[str]) -> str:
    """The ``--format`` of a command line argparse rejected ("text" if none readable,
    or if the command named does not serve it)."""
    wanted = "text"
    for i, token in enumerate(argv):
        if token == "--format" and i + 1 < len(argv):
            wanted = argv[i + 1]
        elif token.startswith("--format="):
            wanted = token.partition("=")[2]
    words = with_default_command(build_parser(), argv)
    command = next((w for w in words if w in COMMANDS), "rotate")
    return wanted if wanted in COMMAND_FORMATS[command] else "text"


class _Stderr:
    """How this process's final error line is written: like its log lines."""

    json = False
    """``--log-format json`` / ``ROTATE_STATS_LOG_FORMAT=json`` was asked for (read from
    the raw command line and environment, so a usage error is a JSON line too)."""
    run_id: str | None = None


def _wanted_log_format(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The log format asked for, read before (or without) parsing: "json" or "text"."""
    wanted = env.get("ROTATE_STATS_LOG_FORMAT", "").strip()
    for i, token in enumerate(argv):
        if token == "--log-format" and i + 1 < len(argv):
            wanted = argv[i + 1]
        elif token.startswith("--log-format="):
            wanted = token.partition("=")[2]
    return "json" if wanted == "json" else "text"


def _error_line(message: str, code: int) -> None:
    """The error that ends the run on stderr: ``rotate_stats: error: ...``, or with JSON
    logs one object like the log lines (``--log-format json`` promises nothing else)."""
    message = mask_text(message)
    if not _Stderr.json:
        print(f"rotate_stats: {printable_lines(message)}", file=sys.stderr)
        return
    line = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "level": "WARNING" if code == ExitCode.LOCKED else "ERROR",
        "logger": "rotate_stats",
        "message": message,
        "run_id": _Stderr.run_id,
        "exit_code": int(code),
    }
    print(json.dumps(line), file=sys.stderr)


def _fail(fmt: str, code: ExitCode, message: str) -> int:
    """Report an error: always on stderr; with ``--format json``/``junit`` also on stdout,
    so a machine reading stdout gets a document whatever happened (issue 10, item 11)."""
    _error_line(message, code)
    message = printable_lines(mask_text(message))
    text = message.removeprefix("error: ")
    if fmt == "json":
        print(json.dumps({"error": text, "exit_code": int(code)}, indent=2, sort_keys=True))
    elif fmt == "junit":
        from .junit import render_junit_error

        print(render_junit_error(text, int(code)))
    return int(code)


def _emit(fmt: str, data: Mapping[str, object], text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if fmt == "json" else printable_lines(text))


# -- one function per command ------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    # decisions (database file, Redis, --days bounds) in rotate_stats/demo.py
    from .demo import check_days, demo_database, render_demo, run_demo
    from .errors import mask_url
    from .progress import Progress

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


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from .connections import open_store
    from .database import migrate

    # the one command that creates a missing SQLite file (issue 10, item 6)
    with closing(open_store(settings, create=True)) as store:
        applied = migrate(store)
    _emit(
        args.format,
        {"applied": applied},
        "applied: " + ", ".join(applied) if applied else "already up to date",
    )
    return ExitCode.OK


def _check_range(first: int | None, last: int | None, now: float) -> None:
    """ConfigError for a ``check`` range that cannot hold rows: reversed, or past the
    last stable date (rows exist only up to it; issue 10, item 7)."""
    if first is not None and last is not None and first > last:
        raise ConfigError(
            "--from", iso(first), f"a date on or before --to {iso(last)} (--from is after --to)"
        )
    stable = last_stable(now)
    for flag, value in (("--from", first), ("--to", last)):
        if value is not None and value > stable:
            raise ConfigError(
                flag,
                iso(value),
                f"a date on or before the last stable date {iso(stable)} (later dates have "
                "no rows yet: today and yesterday in America/Los_Angeles can still change)",
            )


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from .checks import check
    from .connections import open_redis, open_store
    from .database import require_migrated
    from .redis_side import RedisSide

    _check_range(args.from_, args.to, time.time())
    with closing(open_store(settings)) as store:
        require_migrated(store)  # the migrate hint, not "no such table"
        if args.pending:
            with closing(open_redis(settings.redis_url)) as client:
                checked = check(store, args.from_, args.to, RedisSide(client))
        else:
            checked = check(store, args.from_, args.to)
    if args.format == "junit":
        from .junit import render_junit

        print(render_junit(checked))
    else:
        _emit(args.format, checked.as_dict(), render_check(checked))
    return checked.exit_code


def _cmd_prune_ledger(args: argparse.Namespace, settings: Settings) -> int:
    from .checks import prune_ledger
    from .connections import open_redis, open_store
    from .database import require_migrated
    from .redis_side import RedisSide, refuse_replica

    with closing(open_store(settings)) as store, closing(open_redis(settings.redis_url)) as client:
        require_migrated(store)
        side = RedisSide(client)
        refuse_replica(side)
        pruned = prune_ledger(
            side,
            store,
            args.before,
            min_age_days=settings.prune_min_age,
            run_id=args.run_id,
            lock_ttl_ms=int(settings.lock_ttl * 1000),
        )
    _emit(args.format, pruned.as_dict(), pruned.describe())
    return ExitCode.OK


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Status of Redis, and of the database when a URL is given (skipped, and said so,
    without one: the Redis side is what an operator most often needs; issue 10, item 14)."""
    from .checks import StatusLimits, status
    from .connections import open_redis, open_store
    from .redis_side import RedisSide

    limits = StatusLimits(
        settings.alert_backlog_days,
        settings.stale_after_days,
        settings.stuck_claim_after,
        settings.lock_ttl,
        fence=settings.redis_fence,
        allow_eviction=settings.allow_eviction,
        max_backlog_days=settings.max_backlog_days,
    )
    with ExitStack() as stack:
        store = None
        if settings.database_url is not None:
            store = stack.enter_context(closing(open_store(settings)))
        client = stack.enter_context(closing(open_redis(settings.redis_url)))
        st = status(RedisSide(client), store, limits=limits)
        database = store.description if store is not None else None
    data = st.as_dict()
    data["database"] = database
    _emit(args.format, data, render_status(st, database))
    return st.exit_code  # 0 healthy, 1 problems (README "Monitoring")


def _cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from .connections import open_redis, open_store
    from .progress import Progress
    from .walk import RotateOptions, rotate

    if args.date is not None and (args.from_ is not None or args.to is not None):
        raise ConfigError("--date", iso(args.date), "either --date or --from/--to, not both")
    if args.to is not None and args.from_ is None:
        raise ConfigError("--to", iso(args.to), "--from as well")
    first = args.date if args.date is not None else args.from_
    last = args.date if args.date is not None else args.to
    progress = Progress(sys.stderr)  # long backfills: a bar on a TTY, else log lines
    started: list[RotationReport] = []  # the report as it fills in: a signal may stop the run
    if args.from_ is not None and args.to is None:
        last = last_stable(time.time())  # `--from D` alone: D through the last stable date
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
        on_report=started.append,
    )
    with closing(open_store(settings)) as store, closing(open_redis(settings.redis_url)) as client:
        try:
            report = rotate(client, store, options, run_id=args.run_id)
        except (SystemExit, KeyboardInterrupt):
            # stopped by SIGTERM or Ctrl-C mid-run: the metrics count what was done and
            # the claims left pending (issue 17, item 5a)
            if args.monitor is not None and started:
                args.monitor.observe(started[0], client)
            raise
        finally:
            progress.close()
        if args.monitor is not None:
            args.monitor.observe(report, client)
    _emit(args.format, report.as_dict(), render_report(report))
    if report.error:
        _error_line(f"error: {report.error}", report.exit_code)
    _log_summary(report)
    return report.exit_code


def _log_summary(report: RotationReport) -> None:
    """One log line per run with its totals: what a JSON log pipeline alerts on."""
    states: dict[str, int] = {}
    for o in report.outcomes:
        states[o.state.value] = states.get(o.state.value, 0) + 1
    log = logging.getLogger("rotate_stats")
    log.info(
        "run done: exit %d, %s, %s",
        int(report.exit_code),
        ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "no dates",
        plural(len(report.findings), "finding"),
        extra={
            "exit_code": int(report.exit_code),
            "states": states,
            "findings": len(report.findings),
            "dry_run": report.dry_run,
        },
    )


COMMAND_FUNCTIONS = {
    "rotate": _cmd_rotate,
    "check": _cmd_check,
    "migrate": _cmd_migrate,
    "status": _cmd_status,
    "prune-ledger": _cmd_prune_ledger,
    "demo": _cmd_demo,
}
