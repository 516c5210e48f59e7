"""HTTP conventions (§1), methods (§8) and health endpoints (§9)."""

from __future__ import annotations

import socket
import threading
from urllib.parse import quote_plus

import pytest

from tests.rqlite_emulator import EmulatorHandle
from tests.rqlite_emulator.client import Client


def test_unknown_path_is_404_with_empty_body(client: Client) -> None:
    resp = client.get("/nope")
    assert (resp.status, resp.body) == (404, b"")
    assert resp.headers["x-rqlite-version"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/db/execute"),
        ("PUT", "/db/execute"),
        ("DELETE", "/db/query"),
        ("GET", "/db/request"),
        ("POST", "/status"),
        ("POST", "/nodes"),
        ("POST", "/readyz"),
    ],
)
def test_wrong_method_is_405_with_empty_body(client: Client, method: str, path: str) -> None:
    resp = client.request(method, path, b"[]")
    assert (resp.status, resp.body) == (405, b"")


def test_options_is_200(client: Client) -> None:
    assert client.request("OPTIONS", "/anything").status == 200


def test_routes_match_by_prefix(client: Client) -> None:
    assert client.get("/db/queryXYZ?q=SELECT+1").json()["results"][0]["values"] == [[1]]


def test_success_headers(client: Client) -> None:
    resp = client.post("/db/execute", ["SELECT 1"])
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert "x-rqlite-served-by" not in resp.headers  # v8: only on forwarded requests
    assert resp.headers["x-rqlite-version"] == "v8.43.4"
    assert resp.headers["access-control-allow-methods"] == "OPTIONS, GET, POST"
    assert resp.headers["access-control-allow-headers"] == "Content-Type, Authorization"
    assert "www-authenticate" not in resp.headers
    assert "server" not in resp.headers


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("timeout=5", "timeout is not a valid duration"),
        ("db_timeout=x", "db_timeout is not a valid duration"),
        ("retries=two", "retries is not a valid integer"),
        ("freshness_strict", "freshness_strict requires freshness"),
        ("q=%zz", 'invalid URL escape "%zz"'),
    ],
)
def test_bad_query_parameters_are_400(client: Client, query: str, message: str) -> None:
    resp = client.get(f"/db/query?{query}")
    assert (resp.status, resp.text) == (400, message + "\n")


@pytest.mark.parametrize("value", ["0", "500ms", "2s", "1m30s", "1.5h"])
def test_valid_durations_are_accepted(client: Client, value: str) -> None:
    assert client.get(f"/db/query?q=SELECT+1&timeout={value}").status == 200


def test_plus_decodes_as_space_and_first_value_wins(client: Client) -> None:
    body = client.get("/db/query?q=SELECT+1+AS+a&q=SELECT+2").json()
    assert body["results"][0]["columns"] == ["a"]


def test_long_get_query(client: Client) -> None:
    sql = "SELECT length('" + "a" * 100_000 + "')"  # a request line far beyond 64 KiB
    resp = client.get("/db/query?q=" + quote_plus(sql))
    assert resp.json()["results"][0]["values"] == [[100_000]]


def test_absolute_form_request_target(node: EmulatorHandle, client: Client) -> None:
    resp = client.get(f"{node.url}/db/query?q=SELECT+7")
    assert resp.json()["results"][0]["values"] == [[7]]


def test_keep_alive_connection_serves_many_requests(node: EmulatorHandle) -> None:
    client = Client(node.url, keep_alive=True)
    try:
        for i in range(5):
            assert client.get(f"/db/query?q=SELECT+{i}").json()["results"][0]["values"] == [[i]]
    finally:
        client.close()


def test_concurrent_writers_are_serialised(client: Client) -> None:
    client.execute(["CREATE TABLE c (n INTEGER)"])

    def write(i: int) -> None:
        body = client.execute([["INSERT INTO c VALUES(?)", i]] * 5, "transaction")
        assert len(body["results"]) == 5

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.query(["SELECT count(*) FROM c"])["results"][0]["values"] == [[100]]


def test_readyz(node: EmulatorHandle, client: Client) -> None:
    resp = client.get("/readyz")
    assert (resp.status, resp.text) == (200, "[+]node ok\n[+]leader ok\n[+]store ok")
    assert client.get("/readyz?noleader").text == "[+]node ok"
    node.set_leader(False)
    resp = client.get("/readyz")
    assert (resp.status, resp.text) == (500, "leader address: leader not found\n")
    assert (client.get("/readyz?noleader").status) == 200


def test_status(node: EmulatorHandle, client: Client) -> None:
    body = client.get("/status").json()
    assert body["store"]["ready"] is True
    assert body["store"]["raft"]["state"] == "Leader"
    assert body["store"]["leader"]["addr"] == body["store"]["addr"]
    assert body["http"] == {"bind_addr": f"{node.host}:{node.port}", "auth": "disabled"}
    assert body["build"]["version"].startswith("v")
    assert client.get("/status?key=store.raft").json()["state"] == "Leader"
    assert client.get("/status?key=nothing.here").json() == {}


def test_nodes(node: EmulatorHandle, client: Client) -> None:
    body = client.get("/nodes").json()
    [(node_id, entry)] = body.items()
    assert entry["id"] == node_id and entry["leader"] is True and entry["reachable"] is True
    assert entry["api_addr"] == node.url
    assert client.get("/nodes?ver=2").json() == {"nodes": [entry | {"time": entry["time"]}]}


def test_stop_closes_kept_alive_connections(node: EmulatorHandle) -> None:
    client = Client(node.url, keep_alive=True)
    assert client.get("/readyz").status == 200
    node.stop()
    with pytest.raises((ConnectionError, OSError)):
        client.get("/readyz")
    client.close()
    with pytest.raises(OSError), socket.create_connection((node.host, node.port), timeout=1):
        pass
