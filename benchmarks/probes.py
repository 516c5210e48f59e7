"""What is measured on the Redis side while a child runs: stalls and CPU.

``RedisProbe(port)`` around the measured child:

* ``SLOWLOG`` with ``slowlog-log-slower-than 0`` (every command, reset first;
  ``slowlog-max-len`` raised so that a whole run fits): the longest command
  and how many took over 5 ms (Redis 7 also logs each command a script runs,
  so per-command sums overlap the script's own entry);
* a PING every 1 ms on a connection of its own, straight to the server: the
  worst latency seen until a PONG (a ``BUSY`` reply - a script running past
  ``busy-reply-threshold`` - is retried and counted);
* ``INFO cpu`` (``used_cpu_sys + used_cpu_user``) before and after; the
  PING loop's own share is subtracted using a per-PING cost calibrated on the
  idle server (``calibrate``).
"""

from __future__ import annotations

import hashlib
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis

SLOWLOG_MAX_LEN = 2_000_000
STALL_MS = 5.0


@dataclass(frozen=True)
class RedisFigures:
    redis_cpu_s: float
    """INFO cpu delta, PING loop included."""
    redis_cpu_net_s: float
    """``redis_cpu_s`` minus the PING loop's estimated share."""
    pings: int
    worst_ping_ms: float
    p99_ping_ms: float
    pings_over_5ms: int
    busy_replies: int
    slowlog_max_ms: float
    slowlog_max_command: str
    slowlog_over_5ms: int
    slowlog_entries: int
    slowlog_truncated: bool
    slowlog_by_command: dict[str, tuple[int, float]]
    """Command (EVALSHA with the script's name) -> (count, total ms), PING excluded."""


def cpu_seconds(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def script_bodies(code_dir: Path) -> dict[str, tuple[str, str]]:
    """SHA1 -> (name, text) of rotate_stats's Lua scripts, alone and behind the shared
    prelude ``_common.lua`` (as the job loads them): to name an EVALSHA in SLOWLOG, and
    to preload them."""
    package = code_dir / "rotate_stats"
    common_path = package / "_common.lua"
    common = common_path.read_text("utf-8") if common_path.exists() else None
    out: dict[str, tuple[str, str]] = {}
    for path in package.glob("*.lua"):
        text = path.read_text("utf-8")
        for body in (text, None if common is None else common + "\n" + text):
            if body is not None:
                out[hashlib.sha1(body.encode()).hexdigest()] = (path.stem, body)
    return out


def preload_scripts(client: redis.Redis, bodies: dict[str, tuple[str, str]]) -> None:
    """SCRIPT LOAD every script, so that runs measure the steady state: a daily run finds
    them cached (after a Redis restart, the first run pays one extra round trip and the
    script's text per script: NOSCRIPT, then SCRIPT LOAD)."""
    for _, body in bodies.values():
        try:
            client.script_load(body)
        except redis.ResponseError:
            pass  # a file that is not a script on its own (the prelude compiles alone too)


class PingLoop:
    """PING every ``interval`` seconds on its own connection; latencies until PONG."""

    def __init__(self, port: int, interval: float = 0.001) -> None:
        self.client = redis.Redis(port=port, socket_timeout=600)
        self.client.ping()
        self.interval = interval
        self.latencies: list[float] = []
        self.busy = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PingLoop:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            while True:
                try:
                    self.client.ping()
                    break
                except redis.ResponseError as exc:  # BUSY: a script is running too long
                    if not str(exc).startswith("BUSY"):
                        raise
                    self.busy += 1
                    time.sleep(self.interval)
            now = time.perf_counter()
            self.latencies.append(now - started)
            pause = started + self.interval - now
            if pause > 0:
                time.sleep(pause)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()


def calibrate(port: int, seconds: float = 1.5) -> dict[str, float]:
    """Redis CPU per PING of the loop, and the loop's latency on the idle server."""
    client = redis.Redis(port=port)
    before = cpu_seconds(client)
    time.sleep(seconds)
    idle = cpu_seconds(client) - before
    before = cpu_seconds(client)
    loop = PingLoop(port).start()
    time.sleep(seconds)
    loop.stop()
    busy = cpu_seconds(client) - before
    client.close()
    pings = max(1, len(loop.latencies))
    return {
        "idle_cpu_s_per_s": idle / seconds,
        "cpu_s_per_ping": max(0.0, busy - idle) / pings,
        "idle_worst_ping_ms": max(loop.latencies, default=0.0) * 1000,
        "idle_median_ping_ms": statistics.median(loop.latencies or [0.0]) * 1000,
    }


class RedisProbe:
    """Start before the child, ``finish()`` after it."""

    def __init__(self, port: int, cpu_per_ping: float, names: dict[str, str]) -> None:
        self.client = redis.Redis(port=port, socket_timeout=600)
        self.cpu_per_ping = cpu_per_ping
        self.names = names
        self.client.config_set("slowlog-max-len", SLOWLOG_MAX_LEN)
        self.client.config_set("slowlog-log-slower-than", 0)
        self.client.slowlog_reset()
        self.pings = PingLoop(port)
        self.cpu_before = cpu_seconds(self.client)
        self.pings.start()

    def finish(self) -> RedisFigures:
        self.pings.stop()
        cpu = cpu_seconds(self.client) - self.cpu_before
        self.client.config_set("slowlog-log-slower-than", 10_000)  # seeding is not measured
        length = int(self.client.slowlog_len())
        entries = self.client.slowlog_get(-1)
        self.client.slowlog_reset()
        self.client.close()
        worst_us, worst_command = 0, b""
        over = 0
        by_command: dict[str, tuple[int, float]] = {}
        for entry in entries:
            command: bytes = entry["command"]
            if command.split(b" ", 1)[0].upper() == b"SLOWLOG":
                continue
            duration = int(entry["duration"])
            over += duration > STALL_MS * 1000
            if duration > worst_us:
                worst_us, worst_command = duration, command
            name = self._describe(command)
            if name != "PING":
                count, total = by_command.get(name, (0, 0.0))
                by_command[name] = (count + 1, total + duration / 1000)
        latencies = sorted(self.pings.latencies)
        count = len(latencies)
        return RedisFigures(
            redis_cpu_s=cpu,
            redis_cpu_net_s=max(0.0, cpu - count * self.cpu_per_ping),
            pings=count,
            worst_ping_ms=(latencies[-1] if latencies else 0.0) * 1000,
            p99_ping_ms=(latencies[int(0.99 * (count - 1))] if latencies else 0.0) * 1000,
            pings_over_5ms=sum(1 for x in latencies if x * 1000 > STALL_MS),
            busy_replies=self.pings.busy,
            slowlog_max_ms=worst_us / 1000,
            slowlog_max_command=self._describe(worst_command),
            slowlog_over_5ms=over,
            slowlog_entries=len(entries),
            slowlog_truncated=length >= SLOWLOG_MAX_LEN,
            slowlog_by_command=dict(sorted(by_command.items(), key=lambda kv: -kv[1][1])),
        )

    def _describe(self, command: bytes) -> str:
        words = command.split(b" ")
        if not words:
            return ""
        name = words[0].decode(errors="replace").upper()
        if name == "EVALSHA" and len(words) > 1:
            sha = words[1].decode(errors="replace")
            return f"EVALSHA {self.names.get(sha, sha[:12])}"
        if name == "EVAL":
            return "EVAL (script text)"
        return name
