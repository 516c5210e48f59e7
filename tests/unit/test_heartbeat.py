"""Heartbeat pings against a tiny local HTTP server: success, /fail, errors never raise."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator

import pytest

from rotate_stats.heartbeat import mask_ping_url, ping, ping_url


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records (method, path, body); answers 200, or 404 under /missing, or hangs
    (reads, then never answers within the client's timeout) under /slow."""

    seen: list[tuple[str, str, str]] = []
    release = threading.Event()

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        self.seen.append(("POST", self.path, body))
        if self.path.startswith("/slow"):
            self.release.wait(10)
        code = 404 if self.path.startswith("/missing") else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.seen = []
    Recorder.release = threading.Event()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    Recorder.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


def test_success_pings_the_url(server: str) -> None:
    assert ping(f"{server}/ping/abc-123", ok=True, body="exit 0") is True
    assert Recorder.seen == [("POST", "/ping/abc-123", "exit 0")]


def test_failure_pings_url_slash_fail(server: str) -> None:
    assert ping(f"{server}/ping/abc-123/", ok=False, body="exit 1: boom") is True
    assert Recorder.seen == [("POST", "/ping/abc-123/fail", "exit 1: boom")]


def test_http_error_is_a_warning_with_the_url_masked(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="rotate_stats"):
        assert ping(f"{server}/missing/secret-uuid", ok=True) is False
    assert "HTTP 404" in caplog.text and "secret-uuid" not in caplog.text
    assert f"{server}/***" in caplog.text


def test_unreachable_server_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="rotate_stats"):
        assert ping(f"http://127.0.0.1:{port}/secret-uuid", ok=False) is False
    assert "heartbeat" in caplog.text and "secret-uuid" not in caplog.text


def test_slow_server_times_out(server: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rotate_stats"):
        assert ping(f"{server}/slow/secret", ok=True, timeout=0.5) is False
    assert "timed out" in caplog.text and "secret" not in caplog.text


def test_masking_and_fail_url() -> None:
    assert mask_ping_url("https://hc-ping.com/0b1c-uuid") == "https://hc-ping.com/***"
    assert (
        mask_ping_url("https://u:pw@example.com:8443/p?k=v") == "https://u:***@example.com:8443/***"
    )
    assert ping_url("https://hc-ping.com/key/slug?create=1", ok=False) == (
        "https://hc-ping.com/key/slug/fail?create=1"
    )
