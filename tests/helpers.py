"""Shared test helpers (not fixtures): foreign writers, snapshots, ports."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import redis

from rotate_stats import family
from rotate_stats.database import Store
from rotate_stats.dates import parse_iso

# What existing writers do to `earliest` (DESIGN §3): set it if absent or lower.
SET_IF_LOWER = """
local cur = redis.call('GET', KEYS[1])
if cur == false or tonumber(ARGV[1]) < tonumber(cur) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


# Under pytest-xdist each worker takes ports from a range of its own, below the
# kernel's ephemeral range (32768+): a port probed free by one worker and bound
# a moment later by the server it starts cannot be handed to another worker,
# nor to a client socket, meanwhile. scripts/test runs its pytest passes side by
# side, each with its own ROTATE_STATS_TEST_PORT_SLOT (0-2).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_SLOT = os.environ.get("ROTATE_STATS_TEST_PORT_SLOT", "")
_PORT_SPAN = 600
_next_port = itertools.count(os.getpid() % _PORT_SPAN)


def free_port() -> int:
    """A loopback TCP port nothing listens on (per xdist worker, from its own range)."""
    if not _WORKER.startswith("gw") and not _SLOT:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    index = int(_SLOT or 0) % 3 * 8 + int(_WORKER[2:] or 0) % 8
    base = 12000 + index * _PORT_SPAN
    for _ in range(_PORT_SPAN):
        port = base + next(_next_port) % _PORT_SPAN
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}-{base + _PORT_SPAN - 1}")


def foreign_write(
    client: redis.Redis, unix_date: int, event: str, breakdown: str, amount: int = 1
) -> None:
    """Increment like the existing writers: HINCRBY both hashes, then set-if-lower earliest."""
    client.hincrby(family.counts_key(unix_date), event, amount)
    client.hincrby(family.extra_key(unix_date, event), breakdown, amount)
    client.eval(SET_IF_LOWER, 1, family.EARLIEST_KEY, unix_date)


def foreign_job(client: redis.Redis, unix_date: int, job_type: str, outcome: str) -> None:
    """One whole job: requested, then failed_to_queue:{reason} / completed / failed:{reason}."""
    foreign_write(client, unix_date, "requested", job_type)
    if outcome.startswith("ftq:"):
        foreign_write(client, unix_date, "failed_to_queue", f"{job_type}:{outcome[4:]}")
        return
    foreign_write(client, unix_date, "queued", job_type)
    foreign_write(client, unix_date, "started", job_type)
    if outcome == "completed":
        foreign_write(client, unix_date, "completed", job_type)
    else:
        foreign_write(client, unix_date, "failed", f"{job_type}:{outcome}")


def redis_dump(client: redis.Redis) -> dict[bytes, Any]:
    """Every key with its type and value, to prove nothing changed."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(count=1000):
        if key == family.CLAIM_SEQUENCE_KEY.encode():
            continue  # a counter of claims ever cut, not data: a given-back claim moves it
        kind = client.type(key)
        if kind == b"hash":
            out[key] = ("hash", client.hgetall(key))
        elif kind == b"string":
            out[key] = ("string", client.get(key))
        elif kind == b"list":
            out[key] = ("list", client.lrange(key, 0, -1))
        elif kind == b"set":
            out[key] = ("set", client.smembers(key))
        else:
            out[key] = (kind, None)
    return out


Tally = dict[tuple[int, str, str | None], int]


def stored_tally(store: Store) -> Counter[tuple[int, str, str | None]]:
    """(date, event, breakdown or None for the count) -> value, over every stored row."""
    out: Counter[tuple[int, str, str | None]] = Counter()
    for row in store.rows(None, None):
        d = parse_iso(row.retrieved_for)
        for event in family.EVENTS:
            if row.day.count(event):
                out[d, event, None] += row.day.count(event)
            for key, value in row.day.breakdown(event).items():
                out[d, event, key] += value
    return out


def tally_redis(client: redis.Redis) -> Tally:
    """(date, event, breakdown or None for the count) -> value, over live and claim keys."""
    out: dict[tuple[int, str, str | None], int] = {}
    for raw in client.scan_iter(count=1000):
        key = raw.decode()
        d = family.date_of_key(key)
        if d is None or key.endswith((":id", ":picked")):
            continue
        if ":extra:" in key:
            event = key.rsplit(":extra:", 1)[1]
            for field, value in client.hgetall(key).items():
                k = (d, event, field.decode())
                out[k] = out.get(k, 0) + int(value)
        else:
            for field, value in client.hgetall(key).items():
                k = (d, field.decode(), None)
                out[k] = out.get(k, 0) + int(value)
    return out


class ReplyDropper:
    """A loopback TCP proxy to a server that can swallow replies.

    ``drop_replies(n)``: the next ``n`` replies from the server are not
    forwarded; the client's connection is closed instead - the command ran, the
    client never hears of it (a lost answer). ``policy``, when given, is asked
    about every reply chunk the counter does not drop (True: drop it too).
    """

    def __init__(self, upstream_port: int, policy: Callable[[bytes], bool] | None = None) -> None:
        import threading

        self.upstream_port = upstream_port
        self.policy = policy
        self.dropped = 0  # replies swallowed so far
        self._drops = 0
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_replies(self, count: int = 1) -> None:
        with self._lock:
            self._drops += count

    def _take_drop(self, data: bytes) -> bool:
        with self._lock:
            if self._drops > 0:
                self._drops -= 1
            elif self.policy is None or not self.policy(data):
                return False
            self.dropped += 1
            return True

    def _accept(self) -> None:
        import threading

        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:  # the server is down (restarting): refuse this client
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, replies: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if replies and self._take_drop(data):
                    break
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def run_program(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m rotate_stats ARGS`` as a child process: this environment without any
    ``ROTATE_STATS_*`` variable of the caller's, plus ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ROTATE_STATS_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "rotate_stats", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


class SwitchableProxy:
    """A loopback TCP proxy to one server at a time.

    ``retarget(port)`` is a failover as a client that reaches Redis through one
    address (a virtual IP, a DNS name, a Sentinel-aware proxy) sees it: new
    connections go to the other server and every open one is closed, so that
    clients reconnect (redis-py retries a command on a new connection after a
    connection error) - to the new server. ``stall()`` holds every byte in both
    directions until ``resume()`` (a replica's link that lags).
    """

    def __init__(self, upstream_port: int) -> None:
        import threading

        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._go = threading.Event()
        self._go.set()
        self._sockets: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def retarget(self, upstream_port: int) -> None:
        """From now on to ``upstream_port``; every open connection is closed."""
        with self._lock:
            self.upstream_port = upstream_port
            doomed, self._sockets = self._sockets, []
        for sock in doomed:
            _close(sock)

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                port = self.upstream_port
            try:
                upstream = socket.create_connection(("127.0.0.1", port))
            except OSError:  # the upstream is down: refuse this client
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self._go.wait()
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            _close(sock)

    def close(self) -> None:
        self._listener.close()
        self.retarget(self.upstream_port)


StallableProxy = SwitchableProxy
"""The same proxy, named for its use as a replica's link that the test stalls."""


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


PipelineBefore = Callable[["redis.client.Pipeline", list[str]], None]
PipelineAfter = Callable[["redis.client.Pipeline", list[str], list[Any]], list[Any] | None]


def hook_pipelines(
    monkeypatch: Any, before: PipelineBefore | None = None, after: PipelineAfter | None = None
) -> None:
    """Wrap ``redis.client.Pipeline.execute`` (undone by ``monkeypatch``): ``before`` sees
    every pipeline's command names (upper case) before it is sent; ``after`` sees them
    with the replies and may return replacement replies. A pipeline belongs to the
    client whose ``connection_pool`` it has (``pipe.connection_pool``)."""
    import redis.client

    real = redis.client.Pipeline.execute

    def execute(self: redis.client.Pipeline, raise_on_error: bool = True) -> list[Any]:
        names = [str(args[0]).upper() for args, _ in self.command_stack]
        if before is not None:
            before(self, names)
        replies = real(self, raise_on_error)
        if after is not None:
            changed = after(self, names, replies)
            if changed is not None:
                replies = changed
        return replies

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)


def assert_exactly_once(client: redis.Redis, store: Store, written: Mapping[Any, int]) -> None:
    """Counts in the table plus counts still in Redis (live and claim keys) are exactly
    what writers wrote: none lost, none counted twice. The message sums the damage."""
    total = stored_tally(store) + Counter(tally_redis(client))
    keys = set(total) | set(written)
    wrong = {k: (total[k], written.get(k, 0)) for k in keys if total[k] != written.get(k, 0)}
    if not wrong:
        return
    extra = sum(max(found - want, 0) for found, want in wrong.values())
    lost = sum(max(want - found, 0) for found, want in wrong.values())
    sample = ", ".join(
        f"{k}: {found} != {want}"
        for k, (found, want) in sorted(wrong.items(), key=lambda kv: str(kv[0]))[:6]
    )
    raise AssertionError(
        f"not exactly once: {len(wrong)} tally entries differ, {extra} counted too many "
        f"(doubled), {lost} lost; (date, event, breakdown): found != written: {sample}"
    )
