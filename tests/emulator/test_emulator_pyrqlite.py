"""pyrqlite 2.2.3 against the emulator, in-process and as the ``rqlited`` executable (§11)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyrqlite._ephemeral as ephemeral
import pyrqlite.dbapi2 as dbapi2
import pytest

from tests.rqlite_emulator import RQLITED_PATH, EmulatorHandle, spawn_emulator_process
from tests.rqlite_emulator.client import Client

AWKWARD = ["it's", 'say "hi"', "line1\nline2", "tab\there", "ünïcødé ✓ 日本", "back\\slash", ""]


def roundtrip(host: str, port: int) -> None:
    conn = dbapi2.connect(host=host, port=port)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, n REAL)")
        for i, text in enumerate(AWKWARD):
            cur.execute("INSERT INTO notes(body, n) VALUES(?, ?)", (text, i + 0.5))
            assert cur.lastrowid == i + 1
        cur.execute("SELECT body, n FROM notes ORDER BY id")
        assert [d[0] for d in cur.description] == ["body", "n"]
        assert [tuple(row) for row in cur.fetchall()] == [
            (text, i + 0.5) for i, text in enumerate(AWKWARD)
        ]
        cur.execute("SELECT id FROM notes WHERE body = ?", ("it's",))
        assert cur.fetchone()[0] == 1
        cur.execute("UPDATE notes SET n = 0 WHERE id > 3")
        assert cur.rowcount == len(AWKWARD) - 3
        with pytest.raises(dbapi2.Error, match="UNIQUE constraint failed"):
            cur.execute("INSERT INTO notes(id, body) VALUES(1, 'dup')")
    finally:
        conn.close()


def test_pyrqlite_roundtrip_in_process(node: EmulatorHandle) -> None:
    roundtrip(node.host, node.port)


def test_pyrqlite_sends_what_the_reference_says(node: EmulatorHandle) -> None:
    roundtrip(node.host, node.port)
    paths = {(r.method, r.path, r.query.split("&")[0]) for r in node.requests}
    assert ("POST", "/db/execute", "transaction") in paths
    assert any(m == "GET" and p == "/db/query" and q.startswith("q=") for m, p, q in paths)


def test_pyrqlite_ephemeral_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ephemeral, "RQLITED_PATH", RQLITED_PATH)
    launcher = ephemeral.EphemeralRqlited()
    with launcher as running:
        host, port = running.http
        roundtrip(host, port)
        proc = running._proc
    assert proc.returncode == 0  # survived the data directory being deleted, then SIGTERM


def test_spawned_process_survives_datadir_removal_and_stops_on_sigterm(tmp_path: Path) -> None:
    datadir = tmp_path / "proc-data"
    with spawn_emulator_process(datadir) as proc:
        client = Client(proc.url)
        client.execute(["CREATE TABLE t (a)", "INSERT INTO t VALUES (1)"])
        shutil.rmtree(datadir)
        assert client.execute(["INSERT INTO t VALUES (2)"])["results"] == [
            {"last_insert_id": 2, "rows_affected": 1}
        ]
        assert client.query(["SELECT count(*) FROM t"])["results"][0]["values"] == [[2]]
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=10) == 0


def test_data_persists_across_restarts(tmp_path: Path) -> None:
    datadir = tmp_path / "persist"
    with spawn_emulator_process(datadir) as first:
        Client(first.url).execute(["CREATE TABLE t (a)", "INSERT INTO t VALUES ('kept')"])
    with spawn_emulator_process(datadir) as second:
        body = Client(second.url).query(["SELECT a FROM t"])
        assert body["results"][0]["values"] == [["kept"]]


def test_rqlited_command_line_errors(tmp_path: Path) -> None:
    run = [sys.executable, RQLITED_PATH]
    bad_flag = subprocess.run(run + ["-bogus", "1", str(tmp_path)], capture_output=True, timeout=30)
    assert bad_flag.returncode == 2
    assert b"flag provided but not defined: -bogus" in bad_flag.stderr
    no_dir = subprocess.run(run + ["-http-addr=127.0.0.1:0"], capture_output=True, timeout=30)
    assert no_dir.returncode == 2 and b"no data directory set" in no_dir.stderr


def test_spawn_reports_a_process_that_dies(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited"):
        spawn_emulator_process(tmp_path / "d", join="not an address")
