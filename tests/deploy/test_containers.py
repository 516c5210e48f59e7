"""deploy/Dockerfile and deploy/kubernetes/cronjob.yaml, parsed: the fields that matter.

No image is built here (no Docker daemon in the test environment, and the base
image would come from a registry); the parse checks what an operator relies on,
and the build stage's ``pip wheel`` is run on exactly the context the
``.dockerignore`` lets through.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import yaml

from rotate_stats.report import ExitCode
from rotate_stats.settings import ENVIRONMENT
from tests.conftest import require_binary
from tests.deploy.common import DEPLOY, ROOT, require_root, unit_settings

DOCKERFILE = DEPLOY / "Dockerfile"
CRONJOB = DEPLOY / "kubernetes" / "cronjob.yaml"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_dockerfile_slim_python_base_in_every_stage() -> None:
    bases = [args.split()[0] for word, args in instructions() if word == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", b) for b in bases), bases
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def test_dockerfile_runs_the_console_script_as_a_numeric_non_root_user() -> None:
    stage = final_stage()
    users = [args for word, args in stage if word == "USER"]
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    [entrypoint] = [json.loads(args) for word, args in stage if word == "ENTRYPOINT"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["rotate-stats"] and "rotate-stats" in scripts
    # USER comes after every RUN (nothing runs as root after it) and before ENTRYPOINT.
    words = [word for word, _ in stage]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")


def test_dockerfile_bakes_in_no_settings_or_secrets() -> None:
    for word, args in instructions():
        if word in ("ENV", "ARG"):
            assert "ROTATE_STATS_" not in args and "://" not in args, args


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in lines  # everything is left out...
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = [
        source.rstrip("/")
        for word, args in instructions()
        if word == "COPY" and not args.startswith("--")
        for source in args.split()[:-1]
    ]
    assert set(copied) == kept  # ...but what the Dockerfile copies


def cronjob() -> dict[str, Any]:
    document = yaml.safe_load(CRONJOB.read_text())
    assert isinstance(document, dict)
    return document


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    [only] = pod_spec()["containers"]
    assert isinstance(only, dict)
    return only


def test_cronjob_schedule_matches_the_timer_in_los_angeles() -> None:
    job = cronjob()
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "CronJob")
    spec = job["spec"]
    assert spec["timeZone"] == "America/Los_Angeles"
    [calendar] = unit_settings("rotate-stats.timer")["OnCalendar"]
    hour, minute, _ = calendar.split()[1].split(":")
    assert spec["schedule"] == f"{int(minute)} {int(hour)} * * *"
    assert not 2 <= int(hour) < 3  # 02:xx does not exist on the spring-forward day


def test_cronjob_never_overlaps_and_gives_up_on_a_late_start() -> None:
    spec = cronjob()["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert isinstance(spec["startingDeadlineSeconds"], int)
    assert 60 <= spec["startingDeadlineSeconds"] <= 86400
    job = spec["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0
    assert pod_spec()["restartPolicy"] == "Never"


def test_cronjob_does_not_retry_what_a_retry_cannot_fix_or_would_hide() -> None:
    rules = cronjob()["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    fail_job = [rule for rule in rules if rule["action"] == "FailJob"]
    [rule] = fail_job
    assert rule["onExitCodes"]["containerName"] == container()["name"]
    assert rule["onExitCodes"]["operator"] == "In"
    assert rule["onExitCodes"]["values"] == [int(ExitCode.USAGE), int(ExitCode.VIOLATIONS)]


def test_cronjob_does_not_count_an_evicted_pod_but_counts_a_held_lock() -> None:
    """A pod evicted or pre-empted (node drain, spot node) is retried without using up
    backoffLimit; before, each eviction used up one of the two retries. Exit 75 (another run
    holds the Redis lock) stays counted: ``Ignore`` would recreate pods for as long as
    the lock is held, up to activeDeadlineSeconds."""
    rules = cronjob()["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]} in rules
    for rule in rules:
        if rule["action"] == "Ignore" and "onExitCodes" in rule:
            assert int(ExitCode.LOCKED) not in rule["onExitCodes"]["values"]


def test_the_secret_files_are_readable_by_the_user_the_pod_runs_as() -> None:
    """Secret files belong to root, group fsGroup: the pod's user reads them through
    that group only if fsGroup is its group and the mode gives the group read access."""
    pod = pod_spec()["securityContext"]
    user = next(args for word, args in final_stage() if word == "USER")
    uid, _, gid = user.partition(":")
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))
    assert pod["fsGroup"] == pod["runAsGroup"]
    for volume in pod_spec()["volumes"]:
        secret = volume["secret"]
        assert secret["defaultMode"] & 0o040, volume["name"]  # group-readable
        assert secret["defaultMode"] & 0o007 == 0, volume["name"]  # nobody else
        assert all("mode" not in item for item in secret["items"])  # no per-file override


def test_cronjob_passes_secrets_as_files_never_as_values() -> None:
    env = {item["name"]: item for item in container()["env"]}
    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    for variable, key in (
        ("ROTATE_STATS_REDIS_URL_FILE", "redis-url"),
        ("ROTATE_STATS_DATABASE_URL_FILE", "database-url"),
    ):
        path = env[variable]["value"]
        [(name, mount)] = [
            (n, m) for n, m in mounts.items() if path.startswith(m["mountPath"] + "/")
        ]
        assert mount["readOnly"] is True
        secret = volumes[name]["secret"]
        assert {"key": key, "path": path.rsplit("/", 1)[1]} in secret["items"]
        assert secret["defaultMode"] & 0o007 == 0  # not world-readable
    assert "ROTATE_STATS_REDIS_URL" not in env and "ROTATE_STATS_DATABASE_URL" not in env
    for name, item in env.items():
        assert "valueFrom" in item or "://" not in item.get("value", ""), name
        assert name in ENVIRONMENT or (name.endswith("_FILE") and name[:-5] in ENVIRONMENT), name


def test_cronjob_runs_as_the_images_user_without_privileges() -> None:
    pod = pod_spec()["securityContext"]
    uid = next(args for word, args in final_stage() if word == "USER").split(":")[0]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == int(uid)
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    box = container()["securityContext"]
    assert box["allowPrivilegeEscalation"] is False
    assert box["readOnlyRootFilesystem"] is True
    assert box["capabilities"]["drop"] == ["ALL"]
    assert pod_spec()["automountServiceAccountToken"] is False
    assert container()["args"] == []  # the image's entry point: rotate every stable date


def test_the_build_context_the_dockerignore_keeps_builds_a_complete_wheel(tmp_path: Path) -> None:
    """The image's build stage runs ``pip wheel .`` on the context deploy/Dockerfile.dockerignore
    lets through: that must be enough for a wheel with the Lua scripts and migrations."""
    context = tmp_path / "context"
    context.mkdir()
    for word, args in instructions():
        if word == "COPY" and not args.startswith("--"):
            for source in args.split()[:-1]:
                path = ROOT / source.rstrip("/")
                if path.is_dir():
                    ignore = shutil.ignore_patterns("__pycache__")
                    shutil.copytree(path, context / path.name, ignore=ignore)
                else:
                    shutil.copy2(path, context / path.name)
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = wheels.glob("rotate_stats-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "rotate-stats = rotate_stats.cli:main" in archive.read(entry_points).decode()
    for script in (ROOT / "rotate_stats").glob("*.lua"):
        assert f"rotate_stats/{script.name}" in names
    for migration in (ROOT / "rotate_stats/migrations").glob("*.sql"):
        assert f"rotate_stats/migrations/{migration.name}" in names


def test_the_images_stop_signal_stops_the_program_when_it_is_pid_1(tmp_path: Path) -> None:
    """In the container the program is PID 1, and the kernel delivers to PID 1 only the
    signals it has a handler for. Python has none for SIGTERM, the default stop signal:
    ``docker stop``, a Job's activeDeadlineSeconds or a node drain waited out the grace
    period and killed the run with SIGKILL. Python handles SIGINT (KeyboardInterrupt)."""
    require_root()
    require_binary("unshare")
    stop = [args for word, args in final_stage() if word == "STOPSIGNAL"]
    name = stop[-1] if stop else "SIGTERM"
    ready = tmp_path / "ready"
    code = f"import pathlib, time; pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
    with subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", code],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        try:
            while not ready.exists():
                assert proc.poll() is None
                time.sleep(0.01)
            [child] = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            os.kill(int(child), signal.Signals[name])
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()  # --kill-child takes the program with it
                proc.wait()


def test_the_image_tag_everywhere_is_the_projects_version() -> None:
    """A release bumps pyproject's version; a manifest still naming the old tag would
    keep running the old code."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert container()["image"] == f"rotate-stats:{version}"
    for doc in (DOCKERFILE, ROOT / "README.md", ROOT / "docs/OPERATIONS.md"):
        tags = set(re.findall(r"rotate-stats:(\d+\.\d+\.\d+\S*?)\b", doc.read_text()))
        assert tags <= {version}, (doc.name, tags)
