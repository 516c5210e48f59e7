"""HTTP handling of one emulated node: routing, auth, the endpoints (reference §1-§9).

Every response has a ``Content-Length`` (clients such as pyrqlite keep one HTTP/1.1
connection alive), ``X-Rqlite-Version`` and v8's CORS headers (``addAllowHeaders``).
``X-Rqlite-Served-By`` is set only on a request forwarded to the leader, as v8 does.
Handlers check the permission first, then the method, like ``svc`` does.
Where rqlite versions differ, this follows v8.43.4 (``docs/EMULATOR.md``).
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .cluster import ForwardError, LeaderUnreachable, forward, probe, reachable
from .encoding import BodyError, JSONValue, Statement, UnsupportedValue, dumps, parse_body
from .protocol import ParamError, QueryParams
from .results import Entry, render_results
from .store import check_pragmas

if TYPE_CHECKING:
    from .server import EmulatorServer

VERSION = "v8.43.4"
MAX_REQUEST_LINE = 1 << 20  # Go's default MaxHeaderBytes; the stdlib stops at 64 KiB
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received (for tests that check what a client sent)."""

    method: str
    path: str
    query: str
    body: bytes


class Handler(BaseHTTPRequestHandler):
    """Serves one connection; ``self.server.emulator`` is the node."""

    protocol_version = "HTTP/1.1"
    server_version = "rqlite-emulator"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        """Status line and ``Date``; no ``Server`` header, as Go's net/http sends none."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    @property
    def node(self) -> EmulatorServer:
        return self.server.emulator  # type: ignore[attr-defined, no-any-return]

    def handle_one_request(self) -> None:
        """Like the stdlib's, but allows request lines up to 1 MiB (long ``q=`` queries)."""
        try:
            line = self.rfile.readline(MAX_REQUEST_LINE + 1)
        except TimeoutError:
            self.close_connection = True
            return
        if not line:
            self.close_connection = True
            return
        if len(line) > MAX_REQUEST_LINE:
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(431)
            return
        self.raw_requestline = line
        if not self.parse_request():
            return
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.send_error(405)
            return
        method()
        self.wfile.flush()

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    # --- plumbing --------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._started = time.perf_counter()
        self._ctype: str | None = None
        self._extra_headers: dict[str, str] = {}
        try:
            self._body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._http_error(400, "invalid request body")
            return
        target = self.path
        if "://" in target.split("?", 1)[0]:  # absolute-form target (§1)
            parts = urlsplit(target)
            self._raw_path, self._raw_query = parts.path or "/", parts.query
        else:
            self._raw_path, _, self._raw_query = target.partition("?")
        self._path = unquote(self._raw_path)
        self.node.record(RecordedRequest(self.command, self._path, self._raw_query, self._body))
        if self.command == "OPTIONS":
            self._reply(200)
            return
        try:
            self._params = QueryParams(self._raw_query)
        except ParamError as exc:
            self._http_error(400, str(exc))
            return
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the emulator: make it visible, keep serving
            traceback.print_exc(file=sys.stderr)
            self._http_error(500, f"rqlite emulator: {exc!r}")

    def _route(self) -> None:
        if self._path in ("", "/"):  # Go's http.Redirect to /status (v10: /console/)
            if self.command == "GET":
                body = b'<a href="/status">Found</a>.\n\n'
                self._reply(302, body, "text/html; charset=utf-8", {"Location": "/status"})
            else:
                self._reply(302, headers={"Location": "/status"})
            return
        routes = (
            ("/db/execute", self._execute),
            ("/db/query", self._query),
            ("/db/request", self._request),
            ("/status", self._status),
            ("/nodes", self._nodes),
            ("/readyz", self._readyz),
        )
        for prefix, handler in routes:
            if self._path.startswith(prefix):
                handler()
                return
        self._reply(404)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("X-Rqlite-Version", VERSION)
        # v8's addAllowHeaders; its credential store is a typed nil interface without
        # -auth, so it always takes the "auth on" branch. No WWW-Authenticate (v10 has one).
        self.send_header("Access-Control-Allow-Methods", "OPTIONS, GET, POST")
        self.send_header("Access-Control-Allow-Headers", "Content-Type, Authorization")
        self.send_header("Access-Control-Allow-Credentials", "true")
        ctype = content_type or self._ctype
        if ctype:
            self.send_header("Content-Type", ctype)
        for key, value in {**self._extra_headers, **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _http_error(self, status: int, message: str) -> None:
        """Go's ``http.Error``: plain text ending in a newline."""
        self._reply(
            status, (message + "\n").encode(), TEXT_TYPE, {"X-Content-Type-Options": "nosniff"}
        )

    def _drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True

    def _allowed(self, *perms: str) -> bool:
        creds = self.node.credentials
        auth = self.headers.get("Authorization")
        return creds is None or all(creds.allowed(auth, p) for p in perms)

    def _check(self, perms: tuple[str, ...], methods: tuple[str, ...]) -> bool:
        """Permission (401), then method (405), then an injected failure; True to go on."""
        if not self._allowed(*perms):
            self._reply(401)
            return False
        if self.command not in methods:
            self._reply(405)
            return False
        return True

    def _take_failure(self) -> bool:
        failure = self.node.faults.take_failure()
        if failure is None:
            return False
        if failure.status is None:
            self._drop()
        elif failure.status == 200:
            self._send_results([], error=failure.message)
        else:
            self._http_error(failure.status, failure.message)
        return True

    def _send_results(
        self,
        entries: list[Entry],
        *,
        error: str = "",
        sequence_number: int = 0,
        raft_index: int = 0,
        rows_flags: bool = True,
    ) -> None:
        """200 with ``{"results": ...}``; ``rows_flags=False`` ignores ``associative`` and
        ``blob_array`` (v8's ``/db/execute`` never sets them on its response)."""
        p = self._params
        doc: dict[str, JSONValue] = {
            "results": []
            if error
            else render_results(
                entries,
                associative=rows_flags and p.has("associative"),
                blob_array=rows_flags and p.has("blob_array"),
            )
        }
        if error:
            doc["error"] = error
        if p.has("timings"):
            doc["time"] = round(time.perf_counter() - self._started, 9)  # Go: whole ns
        if sequence_number:
            doc["sequence_number"] = sequence_number
        if raft_index and p.has("raft_index") and not error:
            doc["raft_index"] = raft_index
        try:
            body = dumps(doc, indent=4 if p.has("pretty") else None)
        except UnsupportedValue as exc:
            marshal = "json: error calling MarshalJSON for type *http.DBResults"
            self._http_error(500, f"{marshal}: {exc}")
            return
        self._reply(200, body.encode(), JSON_TYPE)

    def _statements(self, *, allow_plain: bool) -> list[Statement] | None:
        """The body's statements, or None after answering 400."""
        plain = allow_plain and self.headers.get("Content-Type", "").startswith("text/plain")
        try:
            return parse_body(self._body, plain_text=plain)
        except BodyError as exc:
            self._http_error(400, str(exc))
            return None

    # --- leader handling (§7) ----------------------------------------------------------

    def _no_leader(self) -> None:
        """v8.43.4's answer when the node knows no leader: ``LeaderAddr`` fails with the
        store's ``ErrLeaderNotFound``, which is not the ``http`` package's, so the 503
        branch is never taken (fixed after v10.2.7, rqlite PR #2731)."""
        self._http_error(500, "leader address: leader not found")

    def _not_leader(self, kind: str) -> None:
        """This node cannot serve the request itself: redirect, no leader, or forward."""
        if self._params.has("redirect"):
            url = self.node.leader_url()
            # FormRedirect asks the leader for its API address: none known or no answer
            if url is None or (self.node.leader is not None and not reachable(self.node.leader)):
                self._http_error(500, "leader not found")
                return
            query = f"?{self._raw_query}" if self._raw_query else ""
            self._reply(301, headers={"Location": f"{url}{self._path}{query}"})
            return
        if self.node.leader is None or not self.node.faults.has_leader:
            self._no_leader()
            return
        self._forward(kind)

    def _forward(self, kind: str, *, local: bool = False) -> None:
        """Send the request to the leader and answer with its response.

        ``local``: the request stands for one rqlite serves from the follower's own replica
        (``level=none`` reads, queued writes), so no ``X-Rqlite-Served-By`` is added.
        """
        leader = self.node.leader
        assert leader is not None
        headers = {
            k: v
            for k in ("Authorization", "Content-Type")
            if (v := self.headers.get(k)) is not None
        }
        target = self._raw_path + (f"?{self._raw_query}" if self._raw_query else "")
        try:
            res = forward(
                leader, self.command, target, self._body, headers, timeout=self._params.timeout()
            )
        except (LeaderUnreachable, ForwardError) as exc:
            # What v8 answers while it still believes in a leader that went away (until
            # Raft notices, about 2 s; then it is _no_leader, see faults.set_leader).
            where = leader.hostport
            detail = str(exc)
            if isinstance(exc, LeaderUnreachable):
                detail = f"pool get: dial tcp {where}: connect: connection refused"
            failed = "Query" if kind == "query" else kind
            if not local:
                self._extra_headers["X-Rqlite-Served-By"] = where
            error = f"node failed to process {failed} on remote node at {where}: {detail}"
            self._send_results([], error=error)
            return
        if not local:  # v8 names the leader by Raft address, as the leader reports it
            authorization = self.headers.get("Authorization")
            self._extra_headers["X-Rqlite-Served-By"] = self.node.leader_identity(authorization)[1]
        if res.status == 401:
            self._http_error(401, f"remote {kind} not authorized")
            return
        ctype = res.headers.pop("Content-Type", None)
        res.headers.pop("X-Rqlite-Served-By", None)
        self._reply(res.status, res.body, ctype, res.headers)

    def _has_leader(self) -> bool:
        return self.node.faults.has_leader

    # --- endpoints ---------------------------------------------------------------------

    def _execute(self) -> None:
        self._ctype = JSON_TYPE
        if not self._check(("execute",), ("POST",)) or self._take_failure():
            return
        if self._params.has("queue"):
            self._queued()
            return
        stmts = self._statements(allow_plain=True)
        if stmts is None:
            return
        if (err := check_pragmas(stmts)) is not None:
            self._send_results([], error=err)
            return
        if self.node.is_follower or not self._has_leader():
            self._not_leader("Execute")
            return
        p = self._params
        store = self.node.store
        entries, err = store.execute(
            stmts, transaction=p.has("transaction"), timings=p.has("timings")
        )
        if self.node.faults.take_drop():
            self._drop()
            return
        self._send_results(entries, error=err, raft_index=store.raft_index, rows_flags=False)

    def _queued(self) -> None:
        p = self._params
        if not p.has("noleader") and not self._has_leader():
            self._no_leader()
            return
        if self.node.is_follower:
            self._forward("Execute", local=True)
            return
        try:
            stmts = parse_body(self._body)
        except BodyError as exc:
            if str(exc) == "no statements" and not p.has("wait"):
                self._http_error(400, str(exc))
                return
            stmts = []
        seq, done = self.node.queue.write(stmts)
        if p.has("wait") and not done.wait(p.timeout()):
            self._http_error(408, "queue wait timeout")
            return
        self._send_results([], sequence_number=seq)

    def _query(self) -> None:
        self._ctype = JSON_TYPE
        if not self._check(("query",), ("GET", "POST")) or self._take_failure():
            return
        p = self._params
        if self.command == "GET":
            stmts: list[Statement] | None = [Statement(p.get("q"))]
        else:
            stmts = self._statements(allow_plain=True)
        if stmts is None:
            return
        if (err := check_pragmas(stmts)) is not None:
            self._send_results([], error=err)
            return
        level = p.level()
        if self.node.is_follower and level == "none":
            if p.has("freshness") and not self._has_leader():
                self._send_results([], error="stale read")
            else:
                self._forward("query", local=True)
            return
        if self.node.is_follower or (level != "none" and not self._has_leader()):
            self._not_leader("query")
            return
        store = self.node.store
        entries, err = store.query(
            stmts, transaction=p.has("transaction"), timings=p.has("timings")
        )
        # only a strong read goes through the Raft log, so only it has an index
        raft_index = store.log_read() if level == "strong" else 0
        self._send_results(entries, error=err, raft_index=raft_index)

    def _request(self) -> None:
        self._ctype = JSON_TYPE
        if not self._check(("query", "execute"), ("POST",)) or self._take_failure():
            return
        stmts = self._statements(allow_plain=False)
        if stmts is None:
            return
        if (err := check_pragmas(stmts)) is not None:
            self._send_results([], error=err)
            return
        p = self._params
        level = p.level()
        store = self.node.store
        if self.node.is_follower:
            if level == "none":
                self._forward("Request", local=True)
            else:
                self._not_leader("Request")
            return
        if not self._has_leader() and not (level == "none" and store.all_readonly(stmts)):
            self._not_leader("Request")
            return
        logged = level == "strong" or not store.all_readonly(stmts)  # else served as a query
        entries, err = store.request(
            stmts,
            transaction=p.has("transaction"),
            timings=p.has("timings"),
            strong=level == "strong",
        )
        if self.node.faults.take_drop():
            self._drop()
            return
        self._send_results(entries, error=err, raft_index=store.raft_index if logged else 0)

    def _readyz(self) -> None:
        if not self._check(("ready",), ("GET",)):
            return
        if self._params.has("noleader"):
            self._reply(200, b"[+]node ok", TEXT_TYPE)
            return
        if not self._has_leader():  # v8.43.4 (after v10.2.7: 503 "[+]leader does not exist")
            self._no_leader()
            return
        leader = self.node.leader
        if leader is not None:
            problem = probe(leader, self.headers.get("Authorization"))
            if problem:
                text = f"[+]node ok\n[+]leader not contactable: {problem}"
                self._reply(503, text.encode(), TEXT_TYPE)
                return
        message = "[+]node ok\n[+]leader ok\n[+]store ok"  # v8: no "[+]db ok" line (v10)
        if self._params.has("sync"):
            message += "\n[+]sync ok"
        self._reply(200, message.encode(), TEXT_TYPE)

    def _status(self) -> None:
        self._ctype = JSON_TYPE
        if not self._check(("status",), ("GET",)):
            return
        doc: Any = self.node.status(self.headers.get("Authorization"))
        key = self._params.get("key")
        for part in key.split(".") if key else []:
            if not isinstance(doc, dict):
                break
            if part not in doc:
                doc = {}
                break
            doc = doc[part]
        indent = 4 if self._params.has("pretty") and not key else None
        self._reply(200, dumps(doc, indent=indent).encode())

    def _nodes(self) -> None:
        self._ctype = JSON_TYPE
        if not self._check(("status",), ("GET",)):
            return
        nodes: Any = self.node.nodes(self.headers.get("Authorization"))
        doc: JSONValue
        if self._params.get("ver") == "2":
            doc = {"nodes": nodes}
        else:
            doc = {str(n["id"]): n for n in nodes}
        indent = 4 if self._params.has("pretty") else None
        self._reply(200, (dumps(doc, indent=indent) + "\n").encode())
