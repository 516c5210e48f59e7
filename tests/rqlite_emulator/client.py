"""A minimal stdlib HTTP client for talking to the emulator (or a real rqlited) in tests."""

from __future__ import annotations

import base64
import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    """A complete HTTP response; header names are lower-cased."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """Sends one request per connection (``keep_alive=True`` reuses one connection)."""

    def __init__(
        self,
        url: str,
        *,
        auth: tuple[str, str] | None = None,
        timeout: float = 10.0,
        keep_alive: bool = False,
    ) -> None:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"expected http://host:port, got {url!r}")
        self.host, self.port = parts.hostname, parts.port
        self.timeout = timeout
        self.auth = auth
        self._keep_alive = keep_alive
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        target: str,
        body: bytes | str | list[Any] | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """``body``: bytes/str as is, lists and dicts JSON-encoded."""
        sent = dict(headers or {})
        if self.auth is not None and "Authorization" not in sent:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            sent["Authorization"] = f"Basic {token}"
        data: bytes | None
        if isinstance(body, (list, dict)):
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        conn = self._conn or http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, target, body=data, headers=sent)
            resp = conn.getresponse()
            payload = resp.read()
        except BaseException:
            conn.close()
            self._conn = None
            raise
        if self._keep_alive:
            self._conn = conn
        else:
            conn.close()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)

    def get(self, target: str, **kw: Any) -> Response:
        return self.request("GET", target, **kw)

    def post(self, target: str, body: Any = None, **kw: Any) -> Response:
        return self.request("POST", target, body, **kw)

    def execute(self, stmts: list[Any], flags: str = "") -> Any:
        """POST ``/db/execute?flags``; returns the decoded JSON (asserts status 200)."""
        resp = self.post(f"/db/execute{'?' + flags if flags else ''}", stmts)
        if resp.status != 200:
            raise AssertionError(f"execute: HTTP {resp.status}: {resp.body!r}")
        return resp.json()

    def query(self, stmts: list[Any], flags: str = "") -> Any:
        """POST ``/db/query?flags``; returns the decoded JSON (asserts status 200)."""
        resp = self.post(f"/db/query{'?' + flags if flags else ''}", stmts)
        if resp.status != 200:
            raise AssertionError(f"query: HTTP {resp.status}: {resp.body!r}")
        return resp.json()
