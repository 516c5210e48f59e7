"""Followers (§7): transparent forwarding, ``redirect`` and ``leader not found``.

Leaderless answers are v8.43.4's (``tests/emulator/test_fidelity.py`` measures them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.rqlite_emulator import EmulatorHandle
from tests.rqlite_emulator.client import Client


@pytest.fixture
def follower(node: EmulatorHandle, make_node: Callable[..., EmulatorHandle]) -> EmulatorHandle:
    return make_node("follower", join=node.url)


def test_follower_forwards_writes_and_reads(node: EmulatorHandle, follower: EmulatorHandle) -> None:
    via_follower = Client(follower.url)
    body = via_follower.execute(["CREATE TABLE t (a)", ["INSERT INTO t VALUES(?)", "x"]])
    assert body["results"] == [{}, {"last_insert_id": 1, "rows_affected": 1}]
    # the write landed on the leader
    assert Client(node.url).query(["SELECT a FROM t"])["results"][0]["values"] == [["x"]]
    for level in ("weak", "strong", "linearizable", "none"):
        resp = via_follower.get(f"/db/query?q=SELECT+a+FROM+t&level={level}")
        assert resp.json()["results"][0]["values"] == [["x"]], level
    request = via_follower.post("/db/request", ["SELECT count(*) FROM t"]).json()
    assert request["results"][0]["values"] == [[1]]
    assert [r.path for r in node.requests].count("/db/execute") == 1


def test_served_by_only_on_forwarded_requests(
    node: EmulatorHandle, follower: EmulatorHandle
) -> None:
    forwarded = Client(follower.url).post("/db/execute", ["SELECT 1"])
    assert forwarded.headers["x-rqlite-served-by"] == f"{node.host}:{node.port}"
    assert "x-rqlite-served-by" not in Client(node.url).post("/db/execute", ["SELECT 1"]).headers
    local = Client(follower.url).get("/db/query?q=SELECT+1&level=none")  # a replica read
    assert "x-rqlite-served-by" not in local.headers


def test_redirect_flag_gives_301_to_the_leader(
    node: EmulatorHandle, follower: EmulatorHandle
) -> None:
    client = Client(follower.url)
    resp = client.post("/db/execute?redirect&transaction", ["CREATE TABLE t (a)"])
    assert resp.status == 301
    assert resp.headers["location"] == f"{node.url}/db/execute?redirect&transaction"
    resp = client.get("/db/query?q=SELECT+1&redirect")
    assert (resp.status, resp.headers["location"]) == (
        301,
        f"{node.url}/db/query?q=SELECT+1&redirect",
    )
    assert "/db/execute" not in [r.path for r in node.requests]


def test_follower_without_leader(follower: EmulatorHandle) -> None:
    follower.set_leader(False)
    client = Client(follower.url)
    resp = client.post("/db/execute", ["CREATE TABLE t (a)"])
    assert (resp.status, resp.text) == (500, "leader address: leader not found\n")
    resp = client.post("/db/execute?redirect", ["CREATE TABLE t (a)"])
    assert (resp.status, resp.text) == (500, "leader not found\n")
    ready = client.get("/readyz")
    assert (ready.status, ready.text) == (500, "leader address: leader not found\n")
    # level=none is still served
    assert client.get("/db/query?q=SELECT+1&level=none").status == 200


def test_leader_without_leadership_answers_500(node: EmulatorHandle, client: Client) -> None:
    node.set_leader(False)
    resp = client.post("/db/execute", ["CREATE TABLE t (a)"])
    assert (resp.status, resp.text) == (500, "leader address: leader not found\n")
    assert client.get("/db/query?q=SELECT+1").status == 500
    assert client.get("/db/query?q=SELECT+1&level=none").json()["results"][0]["values"] == [[1]]
    assert client.post("/db/request?level=none", ["SELECT 1"]).status == 200
    assert client.post("/db/request", ["SELECT 1"]).status == 500
    node.set_leader(True)
    assert client.post("/db/execute", ["CREATE TABLE t (a)"]).status == 200


def test_unreachable_leader_is_a_forwarding_error(
    node: EmulatorHandle, follower: EmulatorHandle
) -> None:
    """What v8 answers between the leader's death and Raft noticing it."""
    where = f"{node.host}:{node.port}"
    node.stop()
    resp = Client(follower.url).post("/db/execute", ["SELECT 1"])
    assert resp.status == 200
    assert resp.json() == {
        "results": [],
        "error": f"node failed to process Execute on remote node at {where}: "
        f"pool get: dial tcp {where}: connect: connection refused",
    }
    assert resp.headers["x-rqlite-served-by"] == where
    resp = Client(follower.url).get("/db/query?q=SELECT+1&redirect")
    assert (resp.status, resp.text) == (500, "leader not found\n")
    ready = Client(follower.url).get("/readyz")
    assert ready.status == 503 and ready.text.startswith("[+]node ok\n[+]leader not contactable")


def test_follower_readyz_and_status(node: EmulatorHandle, follower: EmulatorHandle) -> None:
    client = Client(follower.url)
    assert client.get("/readyz").status == 200
    status = client.get("/status").json()
    assert status["store"]["raft"]["state"] == "Follower"
    assert status["store"]["leader"]["addr"] == f"{node.host}:{node.port}"
    nodes = client.get("/nodes?ver=2").json()["nodes"]
    assert [n["leader"] for n in nodes] == [False, True]


def test_forwarding_passes_credentials(
    make_node: Callable[..., EmulatorHandle], auth_file: Path
) -> None:
    leader = make_node("sec-leader", auth_file=auth_file)
    follower = make_node("sec-follower", auth_file=auth_file, join=leader.url)
    alice = Client(follower.url, auth=("alice", "secret1"))
    assert alice.execute(["CREATE TABLE t (a)"])["results"] == [{}]
    assert Client(follower.url).post("/db/execute", ["SELECT 1"]).status == 401


def test_leader_rejecting_forwarded_credentials(
    node: EmulatorHandle, make_node: Callable[..., EmulatorHandle], auth_file: Path
) -> None:
    secured_leader = make_node("strict-leader", auth_file=auth_file)
    open_follower = make_node("open-follower", join=secured_leader.url)
    resp = Client(open_follower.url).post("/db/execute", ["SELECT 1"])
    assert (resp.status, resp.text) == (401, "remote Execute not authorized\n")
    resp = Client(open_follower.url).get("/db/query?q=SELECT+1")
    assert (resp.status, resp.text) == (401, "remote query not authorized\n")
