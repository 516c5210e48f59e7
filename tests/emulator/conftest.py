"""Fixtures for the emulator's own tests: in-process nodes on free loopback ports."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rqlite_emulator import EmulatorHandle, start_emulator
from tests.rqlite_emulator.client import Client


@pytest.fixture
def node(tmp_path: Path) -> Iterator[EmulatorHandle]:
    """A leader node without auth."""
    handle = start_emulator(tmp_path / "leader")
    yield handle
    handle.stop()


@pytest.fixture
def client(node: EmulatorHandle) -> Client:
    """A client of ``node``."""
    return Client(node.url)


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    """Credentials: ``alice`` may do everything, ``bob`` only query, anyone may check readiness."""
    creds: list[dict[str, Any]] = [
        {"username": "alice", "password": "secret1", "perms": ["all"]},
        {"username": "bob", "password": "secret2", "perms": ["query"]},
        {"username": "*", "perms": ["ready"]},
    ]
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(creds))
    return path


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., EmulatorHandle]]:
    """Factory for extra nodes (``join=`` for followers, ``auth_file=``), stopped at teardown."""
    started: list[EmulatorHandle] = []

    def make(name: str = "extra", **kwargs: Any) -> EmulatorHandle:
        handle = start_emulator(tmp_path / name, **kwargs)
        started.append(handle)
        return handle

    yield make
    for handle in reversed(started):
        handle.stop()
