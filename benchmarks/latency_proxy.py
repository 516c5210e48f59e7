"""A loopback TCP proxy that adds latency and counts round trips, in a process of its own.

``LatencyProxy([6379, 4001], rtt_ms=1)`` starts ``python latency_proxy.py`` and
returns once it listens: ``proxy.ports[i]`` forwards to ``upstreams[i]``.

* Latency: every chunk read from one side is written to the other side RTT/2
  after it arrived, in order (bandwidth is not limited). A new connection's
  first bytes wait one RTT more: the TCP handshake a real network would cost.
  At RTT 0 chunks are forwarded at once (the proxy still costs one local hop).
* Round trips: a client->server *burst* is the first client chunk after the
  server last sent something (or after connecting); ``counts()`` returns the
  bursts, connections and bytes per upstream since the last ``reset()``.

The proxy runs in its own process so that its threads never compete for the
GIL with what is being measured. Control protocol: one JSON line on stdout
with the listening ports, then ``reset`` / ``count`` lines on stdin, each
answered by one JSON line; EOF on stdin stops it. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

CHUNK = 262_144


@dataclass
class Counts:
    """What went through one upstream's listener."""

    round_trips: int = 0
    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class _Listener:
    """Accepts connections for one upstream port and pumps them with a delay."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay  # one way, seconds
        self.counts = Counts()
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> Counts:
        with self.lock:
            old, self.counts = self.counts, Counts()
        return old

    def _accept(self) -> None:
        while True:
            client, _ = self.sock.accept()
            accepted = time.perf_counter()
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.counts.connections += 1
            _Connection(self, client, upstream, accepted)


class _Connection:
    """One proxied connection: two directions, each a reader and (with a delay) a writer."""

    def __init__(
        self, owner: _Listener, client: socket.socket, upstream: socket.socket, accepted: float
    ) -> None:
        self.owner = owner
        self.server_spoke = True  # the first client chunk starts a round trip
        # a real client could send nothing before the handshake's round trip
        not_before = accepted + 2 * owner.delay
        self._direction(client, upstream, up=True, not_before=not_before)
        self._direction(upstream, client, up=False, not_before=0.0)

    def _direction(
        self, source: socket.socket, target: socket.socket, up: bool, not_before: float
    ) -> None:
        if self.owner.delay <= 0:
            threading.Thread(target=self._pump, args=(source, target, up), daemon=True).start()
            return
        pending: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()
        threading.Thread(
            target=self._read, args=(source, target, up, pending, not_before), daemon=True
        ).start()
        threading.Thread(target=self._write, args=(source, target, pending), daemon=True).start()

    def _seen(self, data: bytes, up: bool) -> None:
        counts = self.owner.counts
        with self.owner.lock:
            if up:
                counts.bytes_up += len(data)
                if self.server_spoke:
                    counts.round_trips += 1
                    self.server_spoke = False
            else:
                counts.bytes_down += len(data)
                self.server_spoke = True

    def _pump(self, source: socket.socket, target: socket.socket, up: bool) -> None:
        try:
            while data := source.recv(CHUNK):
                self._seen(data, up)
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            _close(source, target)

    def _read(
        self,
        source: socket.socket,
        target: socket.socket,
        up: bool,
        pending: queue.SimpleQueue[tuple[float, bytes] | None],
        not_before: float,
    ) -> None:
        try:
            while data := source.recv(CHUNK):
                self._seen(data, up)
                pending.put((max(time.perf_counter(), not_before) + self.owner.delay, data))
        except OSError:
            pass
        pending.put(None)

    def _write(
        self,
        source: socket.socket,
        target: socket.socket,
        pending: queue.SimpleQueue[tuple[float, bytes] | None],
    ) -> None:
        try:
            while (item := pending.get()) is not None:
                due, data = item
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            _close(source, target)


def _close(*socks: socket.socket) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def serve(upstream_ports: Sequence[int], rtt_ms: float) -> None:
    """The proxy process: listen, print the ports, obey stdin until EOF."""
    listeners = [_Listener(port, rtt_ms / 2000) for port in upstream_ports]
    print(json.dumps({"ports": [lst.port for lst in listeners]}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "count":
            with_counts = [asdict(lst.counts) for lst in listeners]
            print(json.dumps(with_counts), flush=True)
        elif command == "reset":
            for lst in listeners:
                lst.reset()
            print(json.dumps("ok"), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)


class LatencyProxy:
    """The parent's handle on a proxy process; ``close()`` stops it (idempotent)."""

    def __init__(self, upstream_ports: Sequence[int], rtt_ms: float) -> None:
        self.rtt_ms = rtt_ms
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--rtt-ms", str(rtt_ms), *map(str, upstream_ports)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C goes to the benchmark, which stops us
        )
        try:
            hello = self._line()
            self.ports: list[int] = [int(p) for p in hello["ports"]]
        except BaseException:
            self.close()
            raise

    def _line(self) -> dict[str, list[int]]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the latency proxy exited")
        reply: dict[str, list[int]] = json.loads(line)
        return reply

    def _ask(self, command: str) -> object:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the latency proxy exited")
        return json.loads(line)

    def reset(self) -> None:
        self._ask("reset")

    def counts(self) -> list[Counts]:
        reply = self._ask("count")
        assert isinstance(reply, list)
        return [Counts(**item) for item in reply]

    def close(self) -> None:
        from .launcher import end_child

        end_child(self._proc, 5)

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="latency proxy (see the module docstring)")
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    parser.add_argument("upstream", type=int, nargs="+", help="loopback ports to forward to")
    args = parser.parse_args()
    serve(args.upstream, args.rtt_ms)


if __name__ == "__main__":
    main()
