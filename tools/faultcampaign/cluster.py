"""``--backend rqlite-real``: a real three-node rqlited cluster, and its faults.

**A fresh cluster per scenario.** Each scenario starts three new ``rqlited``
processes (new data directories, new ports; about 2 s on a 2-core machine)
and stops them when it ends. The alternative, one cluster for the whole
campaign with the tables dropped between scenarios, would save those 2 s but
not much else (a scenario takes 5-10 s anyway, so 100 scenarios stay well
under 30 minutes), and it would make every scenario depend on all those
before it: which node leads, a node still catching up after the previous
scenario's kill, the Raft log's length and snapshot timing, ledger rows of
the previous scenario if a drop failed. With a fresh cluster a failing seed
replays alone (``tools/campaign --seed N --runs 1``) from the same start, and
nothing one scenario did can hide in the next one's figures.

Rotators get all three nodes in their URL (``rqlite://h1:p1,h2:p2,h3:p3``), in
an order drawn from the scenario's seed, so the first host they try is
sometimes the leader and sometimes a follower that forwards to it. Most ride
through elections (``ROTATE_STATS_DATABASE_RETRY_FOR``, default 60 s); a third
run with ``RETRY_FOR=0`` and give up at the first round of failed answers, so
runs that die mid-walk in an election, their claims left to the next run, stay
part of the campaign.

Faults (the scenario draws them; ``happened`` counts what really happened):

- **leader SIGKILL** during a rotation: the leader is killed while at least
  one rotator is in its walk (past Python's start-up, not frozen; deferred up
  to 6 s until one is, then killed anyway), and restarted 1.5-4 s later, so
  the cluster regains full strength within the scenario;
- **leader SIGKILL at a commit**: a rotator kills the leader itself, 0-15 ms
  after it starts sending its n-th commit (``rotator --fault leader-kill``),
  so the commit is in flight, applied or not, when the leader dies; the
  harness notices the death and restarts the node after the scenario's
  restart delay;
- **node restart**: SIGKILL the leader or a follower, restart it after
  0.1-1.5 s;
- **quorum loss** (the campaign's "database unreachable", made real): two of
  the three nodes are SIGSTOPped for 0.5-3 s, then SIGCONTed; the one left
  running is the leader or a follower, as drawn;
- **lost response**: a small TCP proxy sits in front of the first listed node
  (only in scenarios with this fault); once armed, it forwards the next
  ``/db/execute`` to the node, swallows the node's answer and closes both
  connections, as a network that loses a response would. The node applied
  the commit; pyrqlite resends it on a new connection.

Before the final clean rotation and the oracle, ``settle`` SIGCONTs every
stopped node, restarts every dead one, and waits until all three know the
same leader. The oracle reads the table from the leader with ``level=strong``
(through the Raft log), so a freshly elected leader cannot hand it a stale copy.

Every node is stopped by PID in ``close``, which the runner calls in a
``finally`` (also on Ctrl-C and SIGTERM, which the CLI turns into an exception).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rotate_stats.database import (
    SELECT_ROWS,
    CommitResult,
    DateCommit,
    Store,
    StoredRow,
    row_from_values,
)
from rotate_stats.errors import StoreError
from rotate_stats.migrations import Migration
from rotate_stats.rqlite_store import RqliteStore
from tests.real_rqlite import Missing, RqlitedCluster, RqlitedNode, binary_version, find_binary

NODES_FILE_VARIABLE = "CAMPAIGN_RQLITE_NODES"  # read by rotators with --fault leader-kill


def rqlited_binary() -> tuple[str, str]:
    """(path, version) of the rqlited to use, or SystemExit with what to do."""
    try:
        binary = find_binary()
    except Missing as exc:
        raise SystemExit(f"campaign: --backend rqlite-real needs a real rqlited: {exc}") from None
    return binary, "v" + ".".join(map(str, binary_version(binary)))


class DroppingProxy:
    """A loopback TCP proxy in front of one node that can lose one commit response.

    ``arm()``: the next response to a ``POST /db/execute`` is read from the node
    and thrown away, and both connections are closed. Nothing else is touched.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.dropped = 0
        self._armed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        with self._lock:
            self._armed = True

    def disarm(self) -> None:
        with self._lock:
            self._armed = False

    def _take(self) -> bool:
        with self._lock:
            armed, self._armed = self._armed, False
            self.dropped += armed
            return armed

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=2)
                server.settimeout(None)
            except OSError:  # node dead or restarting: the client sees a closed connection
                _shut(client)
                continue
            with self._lock:
                if self._closed:
                    _shut(client, server)
                    return
                self._sockets += [client, server]
            state = {"execute": False}
            for args in ((client, server, state, True), (server, client, state, False)):
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, state: dict[str, bool], request: bool
    ) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if request:
                if data.startswith((b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ")):
                    state["execute"] = data.startswith(b"POST /db/execute")
            elif state["execute"] and self._take():
                break  # the node answered; the client never hears of it
            try:
                dst.sendall(data)
            except OSError:
                break
        _shut(src, dst)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        _shut(self.listener, *sockets)


def _shut(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv/accept
        except OSError:
            pass
        sock.close()


class StrongReads:
    """The harness's store for the oracle: rows read from the leader with ``level=strong``.

    Everything else goes to the harness's ordinary ``RqliteStore``.
    """

    def __init__(self, cluster: ClusterBackend, store: Store) -> None:
        self.cluster, self.store = cluster, store
        self.description = store.description

    def applied_migrations(self) -> list[str]:
        return self.store.applied_migrations()

    def apply_migration(self, migration: Migration) -> None:
        self.store.apply_migration(migration)

    def commit(self, items: Sequence[DateCommit], retrieved_at: float) -> list[CommitResult]:
        return self.store.commit(items, retrieved_at)

    def rows(self, first: str | None, last: str | None) -> list[StoredRow]:
        body = [[SELECT_ROWS, first or "0000-00-00", last or "9999-99-99"]]
        answer = ""
        for _ in range(20):
            leader = self.cluster.leader()
            if leader is not None:
                try:
                    status, answer = leader.http("POST", "/db/query?level=strong", body)
                except OSError as exc:
                    answer = repr(exc)
                else:
                    data: dict[str, Any] = json.loads(answer) if status == 200 else {}
                    results = data.get("results") or [{"error": answer}]
                    if not data.get("error") and "error" not in results[0]:
                        return [row_from_values(r) for r in results[0].get("values", [])]
            time.sleep(0.5)
        raise StoreError(self.description, f"oracle read failed: {answer[:300]}")

    def close(self) -> None:
        self.store.close()


def raft_state(node: RqlitedNode, timeout: float = 0.5) -> str | None:
    """The node's Raft state, if whatever answers on its port is this very node.

    Other test suites on the machine also take free ports: a port picked for a
    node can be taken by someone else's server before the node binds it, or
    while it is down. ``/status`` must name this node's id and Raft address.
    """
    try:
        status, text = node.http("GET", "/status", timeout=timeout)
        store = json.loads(text).get("store", {}) if status == 200 else {}
    except (OSError, ValueError, http.client.HTTPException):
        return None
    if store.get("node_id") != node.node_id or store.get("addr") != node.raft_addr:
        return None
    state = store.get("raft", {}).get("state")
    return str(state) if state else None


def _port_taken(node: RqlitedNode) -> bool:
    """Did the node's latest start fail because its HTTP or Raft port was in use?"""
    try:
        text = (node.directory / "rqlited.log").read_text(errors="replace")
    except OSError:
        return False
    return "address already in use" in text.rsplit("rqlited starting", 1)[-1]


class ClusterBackend:
    """A fresh 3-node rqlited cluster for one scenario, with its faults and their timers."""

    kind = "rqlite-real"

    def __init__(
        self, binary: str, directory: Path, seed: int, host_order: Sequence[int], drop: bool
    ) -> None:
        self.directory = directory
        self.cluster = self._start(binary, directory)
        try:
            self._set_up(seed, host_order, drop)
        except BaseException:
            self.cluster.stop()
            raise

    def _set_up(self, seed: int, host_order: Sequence[int], drop: bool) -> None:
        self.rng = random.Random(seed * 7 + 1)
        self.nodes = self.cluster.nodes
        self.stopped: set[int] = set()  # SIGSTOPped by us
        self.dead: dict[int, float] = {}  # killed: node index -> when to restart (monotonic)
        self.pending: list[tuple[float, str, Callable[[], bool]]] = []  # retried until True
        self.happened: Counter[str] = Counter()
        self.problems: list[str] = []  # a node that died without being killed
        self.rotating: Callable[[], bool] = lambda: True
        self.restart_delay = 1.0  # for nodes killed by a rotator (set by the runner)
        self.nodes_file = self.directory / "nodes.json"
        self._write_nodes_file()
        hosts = [self.nodes[i].address for i in host_order]
        self.proxy = DroppingProxy(hosts[0]) if drop else None
        listed = [("127.0.0.1", self.proxy.port)] if self.proxy else [hosts[0]]
        listed += hosts[1:]
        self.url = "rqlite://" + ",".join(f"{h}:{p}" for h, p in listed)
        self._stores: list[RqliteStore] = []

    @staticmethod
    def _start(binary: str, directory: Path) -> RqlitedCluster:
        """Three nodes; a start that fails (a port taken meanwhile) is tried again."""
        failure = ""
        for attempt in range(3):
            cluster = RqlitedCluster(binary, directory / f"cluster{attempt}", size=3)
            try:
                cluster.start(timeout=60)
                time.sleep(0.3)  # a node whose port was taken exits right after its start
                strangers = [n.node_id for n in cluster.nodes if raft_state(n, 2) is None]
                if strangers:
                    raise RuntimeError(f"{strangers} not serving as themselves (port taken?)")
                return cluster
            except RuntimeError as exc:
                failure = str(exc)
                cluster.stop()
            except BaseException:  # Ctrl-C while starting: no node left behind
                cluster.stop()
                raise
        raise RuntimeError(f"rqlited cluster did not start three times: {failure}")

    def env(self) -> dict[str, str]:
        return {NODES_FILE_VARIABLE: str(self.nodes_file)}

    def _write_nodes_file(self) -> None:
        listed = [
            {"host": n.host, "port": n.port, "pid": n.pid, "id": n.node_id, "raft": n.raft_addr}
            for n in self.nodes
        ]
        tmp = self.nodes_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(listed))
        os.replace(tmp, self.nodes_file)

    # -- stores -----------------------------------------------------------------
    def open(self) -> RqliteStore:
        """The harness's own store: every node directly (never through the proxy)."""
        store = RqliteStore([n.address for n in self.nodes], timeout=5)
        self._stores.append(store)
        return store

    def oracle_store(self, store: Store) -> StrongReads:
        return StrongReads(self, store)

    # -- cluster state ----------------------------------------------------------
    def _up(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.alive() and i not in self.stopped]

    def leader(self) -> RqlitedNode | None:
        """The node that says it leads, asking only nodes that run (a stopped one would hang)."""
        for i in self._up():
            if raft_state(self.nodes[i]) == "Leader":
                return self.nodes[i]
        return None

    # -- faults -------------------------------------------------------------------
    def _later(self, delay: float, what: str, action: Callable[[], bool]) -> None:
        self.pending.append((time.monotonic() + delay, what, action))

    def kill_leader(self, restart_after: float) -> None:
        """SIGKILL the leader while a rotator walks; restart it ``restart_after`` s later.

        Deferred (up to 6 s) until some rotator is past its start-up and not frozen;
        then the leader is killed anyway (``late``), for the runs still to come and
        the final rotation.
        """
        give_up = time.monotonic() + 6

        def attempt() -> bool:
            if not self.rotating():
                reason = "no rotation running"
            else:
                leader = self.leader()
                if leader is not None:
                    self._kill(leader, restart_after)
                    self.happened["leader-kill during a rotation"] += 1
                    return True
                reason = "no leader"
            if time.monotonic() < give_up:
                return False
            leader = self.leader()  # the fault still happens, for the runs still to come
            if leader is not None:
                self._kill(leader, restart_after)
            self.happened[f"leader-kill {'late' if leader else 'skipped'} ({reason})"] += 1
            return True

        self._later(0, "leader-kill", attempt)

    def restart_node(self, role: str, restart_after: float) -> None:
        """SIGKILL the leader or a follower; restart it ``restart_after`` s later.

        Deferred (up to 3 s) while there is no such node (an election, a stopped node).
        """
        give_up = time.monotonic() + 3

        def attempt() -> bool:
            leader = self.leader()
            if role == "leader":
                target = leader
            else:
                up = self._up()
                followers = [self.nodes[i] for i in up if self.nodes[i] is not leader]
                target = self.rng.choice(followers) if leader and followers else None
            if target is None:
                if time.monotonic() < give_up:
                    return False
                self.happened[f"node-restart of a {role} skipped (none within 3 s)"] += 1
                return True
            self._kill(target, restart_after)
            self.happened[f"node-restart ({role})"] += 1
            return True

        self._later(0, "node-restart", attempt)

    def _kill(self, node: RqlitedNode, restart_after: float) -> None:
        index = self.nodes.index(node)
        node.kill()  # SIGKILL by PID, reaped
        self.stopped.discard(index)
        self.dead[index] = time.monotonic() + restart_after

    def lose_quorum(self, length: float, spare: str) -> None:
        """SIGSTOP all nodes but the leader, or all but a follower, for ``length`` s."""
        leader = self.leader()
        up = self._up()
        if spare == "leader" and leader is not None:
            keep = self.nodes.index(leader)
        else:
            followers = [i for i in up if self.nodes[i] is not leader]
            keep = self.rng.choice(followers) if followers else (up[0] if up else 0)
        frozen = [i for i in up if i != keep]
        for i in frozen:
            pid = self.nodes[i].pid
            assert pid is not None  # in _up(): alive
            os.kill(pid, signal.SIGSTOP)
            self.stopped.add(i)
        down = len(self.nodes) - len(up)
        what = f"{len(frozen)} stopped" + (f" + {down} already down" if down else "")
        if leader is None:
            kept = "a node, no leader known"
        else:
            kept = "the leader" if self.nodes[keep] is leader else "a follower"
        self.happened[f"quorum-loss ({what}; left running: {kept})"] += 1

        def resume() -> bool:
            for i in frozen:
                self._cont(i)
            return True

        self._later(length, "SIGCONT", resume)

    def _cont(self, index: int) -> None:
        if index in self.stopped:
            self.stopped.discard(index)
            node = self.nodes[index]
            if node.alive() and node.pid is not None:
                os.kill(node.pid, signal.SIGCONT)

    def arm_drop(self) -> None:
        if self.proxy is not None:
            self.proxy.arm()

    # -- the runner's loop ----------------------------------------------------------
    def tend(self) -> None:
        """Run due timers; notice nodes killed by a rotator; restart nodes whose time came."""
        now = time.monotonic()
        due = [p for p in self.pending if p[0] <= now]
        for item in due:
            self.pending.remove(item)
            if not item[2]():
                self.pending.append((now + 0.1, item[1], item[2]))
        self._notice_deaths(now)
        for i, when in list(self.dead.items()):
            if when <= now:
                self._restart(i)

    def _notice_deaths(self, now: float) -> None:
        """A node that died without the harness killing it: a rotator's kill, or a crash."""
        for i, node in enumerate(self.nodes):
            code = None if node.process is None else node.process.poll()
            if i in self.dead or code is None:
                continue
            node.kill()  # reaps it
            self.stopped.discard(i)
            self.dead[i] = now + self.restart_delay
            if code == -signal.SIGKILL:  # a rotator with --fault leader-kill
                self.happened["leader-kill at a commit (by a rotator)"] += 1
            elif _port_taken(node):  # someone else's server took its port while it was down
                self.happened["node restart failed (its port taken meanwhile), retried"] += 1
                self.dead[i] = now + 0.5
            else:
                self.problems.append(f"rqlited {node.node_id} exited by itself (code {code})")

    def _restart(self, index: int) -> None:
        del self.dead[index]
        self.nodes[index].start(wait=False)  # same data, ports and id: it rejoins
        self._write_nodes_file()
        self.happened["node restarted"] += 1

    def busy(self) -> bool:
        """Timers still to run, or nodes still to restart."""
        return bool(self.pending or self.dead)

    def settle(self, timeout: float = 60) -> None:
        """Every node back and running, and all three knowing one leader."""
        if self.proxy is not None:
            self.proxy.disarm()
            if self.proxy.dropped:
                self.happened["commit response lost (proxy)"] = self.proxy.dropped
        for i in list(self.stopped):
            self._cont(i)
        self._notice_deaths(time.monotonic())
        self.pending.clear()  # the timeline is over: its SIGCONTs were just sent
        for i in list(self.dead):
            self._restart(i)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            self._bring_up(node, deadline)
        self.cluster.wait_stable(max(1.0, deadline - time.monotonic()))
        strangers = [n.node_id for n in self.nodes if raft_state(n, 2) is None]
        if strangers:
            raise RuntimeError(f"{strangers} do not answer as themselves")

    def _bring_up(self, node: RqlitedNode, deadline: float) -> None:
        """Until the node serves; a start that failed on a taken port is tried again."""
        while True:
            if not node.alive():
                node.kill()  # reaps an exited process
                node.start(wait=False)
                self._write_nodes_file()
            try:
                node.wait_serving(max(1.0, deadline - time.monotonic()))
                return
            except RuntimeError:
                if not _port_taken(node) or time.monotonic() > deadline:
                    raise
                self.happened["node restart failed (its port taken meanwhile), retried"] += 1
                time.sleep(0.5)

    def close(self) -> None:
        """Stop every node by PID (SIGCONT first for a stopped one), and the proxy."""
        for store in self._stores:
            store.close()
        if self.proxy is not None:
            self.proxy.close()
        for i in list(self.stopped):
            self._cont(i)
        for node in self.nodes:
            node.kill()
        self.dead.clear()
        self.pending.clear()
