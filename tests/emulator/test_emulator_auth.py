"""Basic auth (§8): every failure is a 401 with an empty body; ``*`` grants to everyone.

v8.43.4 sends no ``WWW-Authenticate`` header (v10 does), but the CORS headers say that
``Authorization`` is accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.rqlite_emulator import EmulatorHandle
from tests.rqlite_emulator.client import Client


@pytest.fixture
def secured(make_node: Callable[..., EmulatorHandle], auth_file: Path) -> EmulatorHandle:
    return make_node("secured", auth_file=auth_file)


@pytest.mark.parametrize(
    "auth", [None, ("alice", "wrong"), ("nobody", "secret1"), ("bob", "secret2")]
)
def test_execute_refused_with_401(secured: EmulatorHandle, auth: tuple[str, str] | None) -> None:
    resp = Client(secured.url, auth=auth).post("/db/execute", ["CREATE TABLE t (a)"])
    assert (resp.status, resp.body) == (401, b"")
    assert "www-authenticate" not in resp.headers
    assert resp.headers["access-control-allow-headers"] == "Content-Type, Authorization"
    assert resp.headers["access-control-allow-credentials"] == "true"


def test_permissions_per_endpoint(secured: EmulatorHandle) -> None:
    alice = Client(secured.url, auth=("alice", "secret1"))
    bob = Client(secured.url, auth=("bob", "secret2"))
    anonymous = Client(secured.url)
    assert alice.post("/db/execute", ["CREATE TABLE t (a)"]).status == 200
    assert bob.get("/db/query?q=SELECT+1").status == 200
    assert anonymous.get("/db/query?q=SELECT+1").status == 401
    assert bob.post("/db/request", ["SELECT 1"]).status == 401  # needs query and execute
    assert alice.post("/db/request", ["SELECT 1"]).status == 200
    assert anonymous.get("/readyz").status == 200  # "*" has "ready"
    assert bob.get("/status").status == 401
    assert alice.get("/status").json()["http"]["auth"] == "enabled"
    assert alice.get("/nodes").status == 200


def test_permission_is_checked_before_method(secured: EmulatorHandle) -> None:
    assert Client(secured.url).get("/db/execute").status == 401
    assert Client(secured.url, auth=("alice", "secret1")).get("/db/execute").status == 405


def test_malformed_authorization_is_anonymous(secured: EmulatorHandle) -> None:
    client = Client(secured.url)
    for header in ("Basic !!!", "Bearer abc", "Basic " + "YWxpY2U="):  # "alice" without ':'
        resp = client.get("/db/query?q=SELECT+1", headers={"Authorization": header})
        assert resp.status == 401, header
