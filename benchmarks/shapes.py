"""The two shapes rotate_stats is compared with, each run as a child process of perf.

* ``per-date`` - the existing job's shape: for each date, one read pipeline
  (HGETALL of its 7 hashes), one INSERT transaction, then MULTI/EXEC DEL of the
  keys.
* ``floor`` - one EVAL returning every hash of every date, then one
  transaction inserting every row. No validation, no claim, no delete, no
  ledger: the least any job must do.

Both build the same rows as rotate_stats (counts, breakdowns as JSON objects
with sorted keys) into a table created by ``python -m rotate_stats migrate``.
The database is an SQLite file (``synchronous=FULL``, as rotate_stats opens it)
or an rqlite node over its HTTP API. Prints one JSON line: the seconds of the
timed part (after start-up and connecting) and the rows written.

    python benchmarks/shapes.py per-date --redis-url redis://127.0.0.1:6379/0 \\
        --database sqlite:////tmp/x.sqlite3 --first 20000 --last 20364 \\
        --prefix stats:journal_chat_jobs:daily --events requested,failed_to_queue,...
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import redis

FLOOR_LUA = """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
"""

Row = tuple[object, ...]


class Sink(Protocol):
    def insert(self, rows: Sequence[Row]) -> None: ...

    def close(self) -> None: ...


def insert_sql(events: Sequence[str]) -> str:
    columns = ["retrieved_for", "retrieved_at"]
    columns += [c for e in events for c in (e, f"{e}_breakdown")]
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO journal_chat_job_stats ({', '.join(columns)}) VALUES ({marks})"


class SqliteSink:
    def __init__(self, path: str, sql: str) -> None:
        self.sql = sql
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA synchronous=FULL")

    def insert(self, rows: Sequence[Row]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(self.sql, rows)
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class RqliteSink:
    """``POST /db/execute?transaction`` on one keep-alive connection."""

    def __init__(self, host: str, port: int, sql: str) -> None:
        self.sql = sql
        self.conn = http.client.HTTPConnection(host, port, timeout=600)

    def insert(self, rows: Sequence[Row]) -> None:
        body = json.dumps([[self.sql, *row] for row in rows])
        self.conn.request(
            "POST", "/db/execute?transaction", body, {"Content-Type": "application/json"}
        )
        response = self.conn.getresponse()
        reply: dict[str, Any] = json.loads(response.read())
        errors = [r["error"] for r in reply.get("results", []) if "error" in r]
        if response.status != 200 or reply.get("error") or errors:
            raise RuntimeError(f"rqlite: {response.status} {reply.get('error') or errors[:1]}")

    def close(self) -> None:
        self.conn.close()


def open_sink(url: str, sql: str) -> Sink:
    if url.startswith("sqlite:///"):
        return SqliteSink(url[len("sqlite:///") :], sql)
    if url.startswith("rqlite://"):
        host, _, port = url[len("rqlite://") :].rstrip("/").rpartition(":")
        return RqliteSink(host, int(port), sql)
    raise SystemExit(f"unsupported database URL {url!r}")


def date_keys(prefix: str, events: Sequence[str], unix_date: int) -> list[str]:
    return [f"{prefix}:{unix_date}", *(f"{prefix}:{unix_date}:extra:{e}" for e in events)]


def as_ints(pairs: Iterable[tuple[bytes, bytes]]) -> dict[str, int]:
    return {field.decode(): int(value) for field, value in pairs}


def flat_pairs(flat: Sequence[bytes]) -> Iterable[tuple[bytes, bytes]]:
    return zip(flat[::2], flat[1::2], strict=True)


def build_row(
    unix_date: int, events: Sequence[str], hashes: Sequence[Mapping[str, int]], at: float
) -> Row:
    counts, breakdowns = hashes[0], hashes[1:]
    row: list[object] = [(dt.date(1970, 1, 1) + dt.timedelta(days=unix_date)).isoformat(), at]
    for event, breakdown in zip(events, breakdowns, strict=True):
        text = json.dumps(dict(breakdown), sort_keys=True, separators=(",", ":"))
        row += [counts.get(event, 0), text]
    return tuple(row)


def per_date(
    client: redis.Redis, sink: Sink, prefix: str, events: Sequence[str], dates: range
) -> int:
    for d in dates:
        keys = date_keys(prefix, events, d)
        read = client.pipeline(transaction=False)
        for key in keys:
            read.hgetall(key)
        hashes = [as_ints(h.items()) for h in read.execute()]
        sink.insert([build_row(d, events, hashes, time.time())])
        delete = client.pipeline(transaction=True)
        delete.delete(*keys)
        delete.execute()
    return len(dates)


def floor(client: redis.Redis, sink: Sink, prefix: str, events: Sequence[str], dates: range) -> int:
    keys = [k for d in dates for k in date_keys(prefix, events, d)]
    replies: list[list[bytes]] = client.eval(FLOOR_LUA, len(keys), *keys)
    width = 1 + len(events)
    at = time.time()
    rows = []
    for i, d in enumerate(dates):
        hashes = [as_ints(flat_pairs(flat)) for flat in replies[i * width : (i + 1) * width]]
        rows.append(build_row(d, events, hashes, at))
    sink.insert(rows)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shape", choices=("per-date", "floor"))
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--database", required=True, help="sqlite:///path or rqlite://host:port")
    parser.add_argument("--first", type=int, required=True, help="first unix date")
    parser.add_argument("--last", type=int, required=True, help="last unix date")
    parser.add_argument("--prefix", required=True, help="the live key prefix (family.LIVE_PREFIX)")
    parser.add_argument("--events", required=True, help="comma-separated family.EVENTS")
    args = parser.parse_args()
    events = args.events.split(",")
    client = redis.Redis.from_url(args.redis_url)
    client.ping()
    sink = open_sink(args.database, insert_sql(events))
    dates = range(args.first, args.last + 1)
    started = time.perf_counter()
    if args.shape == "per-date":
        rows = per_date(client, sink, args.prefix, events, dates)
    else:
        rows = floor(client, sink, args.prefix, events, dates)
    seconds = time.perf_counter() - started
    sink.close()
    print(json.dumps({"seconds": seconds, "rows": rows}))


if __name__ == "__main__":
    main()
