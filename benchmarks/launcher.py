"""Start measured children from a small process, so that their peak RSS is their own.

Linux folds the memory high-water mark of the process that forks a child into
the child's ``ru_maxrss`` (at exec, the old - shared or copied - address space
is accounted to it): ``/bin/true`` forked from a 300 MB Python reports 313 MB.
The benchmark grows while it runs (templates, SLOWLOG replies), so it starts
this launcher first and has it run every measured child: the launcher's own
high-water mark, ``Launcher.own_rss_mb`` (about 12 MB), is the floor of any
peak RSS reported.

Protocol: one JSON request per stdin line ``{"argv", "env", "cwd", "stdout",
"stderr", "timeout"}``; answered by ``{"pid"}`` once started, then
``{"returncode", "wall_s", "maxrss_kb"}`` once reaped (killed after
``timeout`` seconds: returncode -9). Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def _reply(message: Mapping[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _own_hwm_kb() -> int:
    """This process's own high-water mark (VmHWM: not inherited, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def serve() -> None:
    _reply({"own_rss_kb": _own_hwm_kb()})
    for line in sys.stdin:
        request = json.loads(line)
        with open(request["stdout"], "wb") as out, open(request["stderr"], "wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(
                request["argv"],
                env=request["env"],
                cwd=request["cwd"],
                stdout=out,
                stderr=err,
                start_new_session=True,  # the benchmark stops it by PID
            )
        _reply({"pid": proc.pid})
        timer = threading.Timer(request["timeout"], os.kill, (proc.pid, signal.SIGKILL))
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        _reply({"returncode": proc.returncode, "wall_s": wall, "maxrss_kb": usage.ru_maxrss})


@dataclass(frozen=True)
class ChildResult:
    """A finished child: exit code, wall seconds, peak RSS (``ru_maxrss``), its output."""

    returncode: int
    wall_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str


class Launcher:
    """The parent's handle; ``close()`` stops the launcher (idempotent)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.own_rss_mb = float(self._read()["own_rss_kb"]) / 1024

    def _read(self) -> dict[str, float]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the launcher exited")
        reply: dict[str, float] = json.loads(line)
        return reply

    def run(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, output: Path, timeout: float
    ) -> ChildResult:
        """Run ``argv`` to completion, its output in files named after ``output``.

        On Ctrl-C (or any exception) while waiting, the child is killed by PID.
        """
        assert self._proc.stdin is not None
        out_path, err_path = output.with_suffix(".out"), output.with_suffix(".err")
        request = {
            "argv": list(argv),
            "env": dict(env),
            "cwd": str(cwd),
            "stdout": str(out_path),
            "stderr": str(err_path),
            "timeout": timeout,
        }
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        pid = int(self._read()["pid"])
        try:
            done = self._read()
        except BaseException:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            raise
        return ChildResult(
            returncode=int(done["returncode"]),
            wall_s=float(done["wall_s"]),
            peak_rss_mb=float(done["maxrss_kb"]) / 1024,
            stdout=out_path.read_text(errors="replace"),
            stderr=err_path.read_text(errors="replace"),
        )

    def close(self) -> None:
        end_child(self._proc, 10)


if __name__ == "__main__":
    serve()


def end_child(proc: subprocess.Popen[str], timeout: float) -> None:
    """Close a helper process's stdin (its signal to stop), wait, kill if it lingers."""
    if proc.poll() is None:
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
