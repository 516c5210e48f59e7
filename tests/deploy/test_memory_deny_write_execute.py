"""The unit sets MemoryDenyWriteExecute=yes: the job must run without writable-and-executable
memory. No systemd here, so the same rule comes from the kernel (PR_SET_MDWE, Linux 6.3+,
kept across exec): the wrapper, bash, Python, hiredis and the job run under it."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.conftest import RedisServer
from tests.deploy.common import DEBIAN_PATH, IN_CI, WRAPPER

pytestmark = pytest.mark.redis_server

PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1


def _deny_write_execute() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


PROBE = f"""
import ctypes, mmap, sys
if ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    sys.exit(10)  # no PR_SET_MDWE: Linux before 6.3
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    sys.exit(13)
"""


def test_the_job_runs_without_writable_executable_memory(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, timeout=60)
    if probe.returncode == 10:
        (pytest.fail if IN_CI else pytest.skip)("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    assert probe.returncode == 13, "PR_SET_MDWE did not refuse a writable+executable mapping"
    env_file = tmp_path / "rotate-stats.env"
    env_file.write_text(
        f"ROTATE_STATS_REDIS_URL={redis_server.url}\n"
        f"ROTATE_STATS_DATABASE_URL=sqlite:///{tmp_path}/stats.sqlite3\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    env.update(
        PATH=DEBIAN_PATH,
        ROTATE_STATS_ENV_FILE=str(env_file),
        ROTATE_STATS_VENV=sys.prefix,
        ROTATE_STATS_FLOCK_FILE=str(tmp_path / "rotate-stats.lock"),
    )
    for args in (["migrate"], [], ["status"]):
        done = subprocess.run(
            [str(WRAPPER), *args],
            env=env,
            preexec_fn=_deny_write_execute,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        last = done.stderr.rstrip().splitlines()[-1]  # the wrapper's exit line (stderr)
        assert " rotate-stats: exit 0 (" in last, done.stderr
