"""Every node of a cluster names the same leader, whatever address a follower joined through.

Issue 17, item 7. ``rotate_stats`` asks every listed node which leader it follows
(``RqliteStore.verify_one_cluster``, ``/status`` → ``store.leader.addr``) and refuses a
URL whose nodes name different leaders ("hosts of two clusters"). Real rqlite is
consistent: a v6 node joins through the leader's HTTP address, a v7+ node through its Raft
address, and either way every node reports the leader's Raft address. The emulator's
follower used to report the HTTP address it joined through, so a URL listing an emulated
follower first was refused. Unlike ``test_fidelity.py`` (v8 only), this runs on every
real rqlited the suite runs (``scripts/test``: v8.43.4, then v6.10.2).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rotate_stats.rqlite_store import RqliteStore
from tests.real_rqlite import RqlitedCluster
from tests.rqlite_emulator import EmulatorProcess, spawn_emulator_process


def _store_status(host: str, port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/status")
        answer = conn.getresponse()
        assert answer.status == 200
        store: dict[str, Any] = json.loads(answer.read())["store"]
        return store
    finally:
        conn.close()


def _assert_one_leader(leader: tuple[str, int], follower: tuple[str, int]) -> None:
    """Both nodes name the leader as the leader names itself; the job accepts the URL
    with the follower listed first."""
    on_leader = _store_status(*leader)
    on_follower = _store_status(*follower)
    assert on_leader["leader"]["addr"] == on_leader["addr"]  # it is the leader
    assert on_follower["leader"]["addr"] == on_leader["addr"], (on_follower, on_leader)
    assert on_follower["leader"]["node_id"] == on_leader["node_id"]
    store = RqliteStore([follower, leader], timeout=5, retry_for=5)
    try:
        assert set(store.leaders().values()) == {on_leader["addr"]}
        store.verify_one_cluster()  # raised "different clusters" on the emulator
    finally:
        store.close()


@pytest.fixture
def emulated_pair(tmp_path: Path) -> Iterator[tuple[EmulatorProcess, EmulatorProcess]]:
    """An emulated leader with its own ``-raft-addr`` and a follower joined, as v6 nodes
    join, through the leader's HTTP address."""
    leader = spawn_emulator_process(tmp_path / "leader")
    try:
        follower = spawn_emulator_process(tmp_path / "follower", join=leader.url)
        try:
            yield leader, follower
        finally:
            follower.stop()
    finally:
        leader.stop()


def test_an_emulated_follower_names_the_leader_as_the_leader_does(
    emulated_pair: tuple[EmulatorProcess, EmulatorProcess],
) -> None:
    """Before: the follower said ``127.0.0.1:<leader HTTP port>``, the leader its Raft
    address, and ``verify_one_cluster`` refused ``rqlite://follower,leader``."""
    leader, follower = emulated_pair
    _assert_one_leader((leader.host, leader.port), (follower.host, follower.port))


@pytest.mark.rqlited
def test_real_and_emulated_followers_agree_on_their_leader(
    rqlited_binary: str,
    tmp_path: Path,
    emulated_pair: tuple[EmulatorProcess, EmulatorProcess],
) -> None:
    """Fidelity, on each real version the suite runs (v8 joins by Raft address, v6 by the
    leader's HTTP address): a real follower names its leader exactly as the leader names
    itself, and so does the emulated one."""
    cluster = RqlitedCluster(rqlited_binary, tmp_path / "rqlited", size=2)
    try:
        cluster.start()
        leader = cluster.wait_stable()
        (follower,) = cluster.followers()
        _assert_one_leader(leader.address, follower.address)
    finally:
        cluster.stop()
    emulated_leader, emulated_follower = emulated_pair
    _assert_one_leader(
        (emulated_leader.host, emulated_leader.port),
        (emulated_follower.host, emulated_follower.port),
    )
