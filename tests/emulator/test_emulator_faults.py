"""Fault injection (``tests.rqlite_emulator.faults``)."""

from __future__ import annotations

import http.client

import pytest

from tests.rqlite_emulator import EmulatorHandle
from tests.rqlite_emulator.client import Client


def count(client: Client) -> int:
    values = client.query(["SELECT count(*) FROM t"])["results"][0]["values"]
    return int(values[0][0])


def test_dropped_response_still_commits(node: EmulatorHandle, client: Client) -> None:
    client.execute(["CREATE TABLE t (a)"])
    node.drop_responses(1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        client.post("/db/execute?transaction", ["INSERT INTO t VALUES (1)"])
    assert count(client) == 1
    assert client.post("/db/execute", ["INSERT INTO t VALUES (2)"]).status == 200
    assert count(client) == 2


def test_dropped_response_on_request_endpoint(node: EmulatorHandle, client: Client) -> None:
    client.execute(["CREATE TABLE t (a)"])
    node.drop_responses(1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        client.post("/db/request", ["INSERT INTO t VALUES (1)"])
    assert count(client) == 1


def test_failed_requests_apply_nothing(node: EmulatorHandle, client: Client) -> None:
    client.execute(["CREATE TABLE t (a)"])
    node.fail_requests(1)
    resp = client.post("/db/execute", ["INSERT INTO t VALUES (1)"])
    assert (resp.status, resp.text) == (503, "leader not found\n")
    node.fail_requests(1, status=200, message="store not ready")
    resp = client.post("/db/execute", ["INSERT INTO t VALUES (1)"])
    assert resp.json() == {"results": [], "error": "store not ready"}
    node.fail_requests(1, status=None)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        client.post("/db/execute", ["INSERT INTO t VALUES (1)"])
    assert count(client) == 0


def test_faults_are_counted_and_reset(node: EmulatorHandle, client: Client) -> None:
    node.fail_requests(2)
    assert client.get("/db/query?q=SELECT+1").status == 503
    assert client.get("/db/query?q=SELECT+1").status == 503
    assert client.get("/db/query?q=SELECT+1").status == 200
    node.fail_requests(5)
    node.set_leader(False)
    node.reset_faults()
    assert client.get("/db/query?q=SELECT+1").status == 200
    assert client.get("/readyz").status == 200


def test_requests_are_recorded(node: EmulatorHandle, client: Client) -> None:
    client.post("/db/execute?transaction", ["SELECT 1"])
    last = node.requests[-1]
    assert (last.method, last.path, last.query, last.body) == (
        "POST",
        "/db/execute",
        "transaction",
        b'["SELECT 1"]',
    )
