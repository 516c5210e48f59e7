"""The command that runs this job again where it is deployed: the one place every hint
(repair, orphans, status, migrate) gets it from (issue 17, item 4).

``python -m rotate_stats`` does not work on a deployed host: the service's virtualenv
is not on root's ``PATH``. So a hint names what started this process:

* ``ROTATE_STATS_COMMAND`` when set - the cron wrapper exports it (the wrapper
  itself, behind ``runuser`` for the service user), a container sets its own;
* else the console script by its path (``/opt/rotate-stats/.venv/bin/rotate-stats``),
  or ``<that python> -m rotate_stats`` when run that way (``sys.argv[0]`` is then
  the package's ``__main__.py``);
* else (the library, called from Python) ``rotate-stats``, the console script.

A leaf module: it imports nothing of ours (``errors`` uses it).
"""

from __future__ import annotations

import os
import shlex
import sys

DEFAULT = "rotate-stats"
"""The command named when nothing better is known (library use)."""

_current = DEFAULT


def derive(argv0: str, executable: str) -> str:
    """The command that started a process whose ``sys.argv[0]`` is ``argv0``."""
    base = os.path.basename(argv0)
    if base == "__main__.py" and os.path.basename(os.path.dirname(argv0)) == "rotate_stats":
        return f"{shlex.quote(executable or 'python3')} -m rotate_stats"
    if base.startswith("rotate-stats") or base.startswith("rotate_stats"):
        return shlex.quote(os.path.abspath(argv0))
    return DEFAULT


def set_command(configured: str | None, *, process: bool = True) -> str:
    """Set the command hints name: ``configured`` (``ROTATE_STATS_COMMAND``) if given,
    else derived from this process (``process``) or the default. Returns it."""
    global _current
    if configured:
        _current = configured
    elif process:
        _current = derive(sys.argv[0] if sys.argv else "", sys.executable)
    else:
        _current = DEFAULT
    return _current


def command(*args: str) -> str:
    """The command line that runs the job with ``args`` (``command("--date", "2024-06-11")``)."""
    return " ".join([_current, *args])
