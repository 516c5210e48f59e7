"""Which rqlite answers mean "wait for a leader and retry", which stop the run at once.

The transient ones are verbatim answers seen from real rqlited v8.43.4 and
v6.10.2 while a leader was killed or a node was starting.
"""

from __future__ import annotations

import pytest

from rotate_stats.rqlite_store import is_transient

BROKEN_PIPE = "write tcp 127.0.0.1:35784->127.0.0.1:41213: write: broken pipe"
SEEN_DURING_ELECTIONS = [
    (503, "leader not found\n"),  # v6: a follower without a leader
    (500, "leader address: leader not found\n"),  # v8: a node still electing
    (200, "store not open"),  # v8: a node just started
    (200, f"node failed to process Execute on remote node at 127.0.0.1:50303: "
          f"write protobuf bytes: {BROKEN_PIPE}"),  # v8: forwarding to a dead leader
    (200, "node failed to process Query on remote node at 127.0.0.1:1: pool get: dial tcp "
          "127.0.0.1:1: connect: connection refused"),
    (200, BROKEN_PIPE),  # v6: forwarding to a dead leader
    (200, "read tcp 127.0.0.1:5->127.0.0.1:6: read: connection reset by peer"),
    (200, "unexpected EOF"),
    (200, "not leader"),
    (200, "leadership lost while committing log"),
]  # fmt: skip

PERMANENT = [
    (200, 'near "SELEC": syntax error'),
    (200, "UNIQUE constraint failed: rotate_stats_migrations.name"),
    (200, "no such table: journal_chat_job_stats"),
    (400, "invalid request"),
    (401, "unauthorized"),
    (404, "not found"),
    (405, "method not allowed"),
    (500, "database disk image is malformed"),
    (413, "request entity too large"),
]


@pytest.mark.parametrize(("status", "text"), SEEN_DURING_ELECTIONS)
def test_election_answers_are_transient(status: int, text: str) -> None:
    assert is_transient(status, text)


@pytest.mark.parametrize(("status", "text"), PERMANENT)
def test_other_answers_stop_at_once(status: int, text: str) -> None:
    assert not is_transient(status, text)


def test_any_503_is_transient() -> None:
    assert is_transient(503, "")
