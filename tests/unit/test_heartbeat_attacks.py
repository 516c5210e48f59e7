"""Adversarial heartbeat servers (issue 10, #15): a ping may fail in any way, but
never raise, never hang the run past its deadline, never log the URL's secret
path, never change the exit code."""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rotate_stats.errors import ConfigError
from rotate_stats.heartbeat import ping
from rotate_stats.monitor import RunMonitor
from tests.conftest import require_binary

SECRET = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

Handler = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """A loopback TCP server answering each connection with ``handler``."""

    def __init__(self, handler: Handler, wrap: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.wrap = wrap
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(30)
                try:
                    if self.wrap is not None:
                        with self.wrap.wrap_socket(conn, server_side=True) as tls:
                            self.handler(tls, self.stop)
                    else:
                        self.handler(conn, self.stop)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler, wrap: ssl.SSLContext | None = None) -> RawServer:
        servers.append(RawServer(handler, wrap))
        return servers[-1]

    yield start
    for s in servers:
        s.close()
    for t in threading.enumerate():  # a ping the run stopped waiting for: let it end
        if t.name.startswith("rotate-stats-heartbeat"):
            t.join(30)


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk


def garbage(conn: socket.socket, _: threading.Event) -> None:
    _read_request(conn)
    conn.sendall(b"HELLO I AM NOT HTTP\r\n\r\n")


def endless_header(conn: socket.socket, _: threading.Event) -> None:
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Filler: " + b"a" * 100_000 + b"\r\n\r\n")


def trickle(conn: socket.socket, stop: threading.Event) -> None:
    """Answers one header byte at a time, each well within the socket timeout,
    for as long as the test lets it: a per-read timeout never fires."""
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stop.wait(0.05):
        conn.sendall(b"X")


def silent(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    stop.wait(30)


@pytest.mark.parametrize(
    "handler", [garbage, endless_header], ids=["bad-status-line", "header-too-long"]
)
def test_a_broken_answer_is_a_warning_not_a_crash(
    serve: Callable[..., RawServer], handler: Handler, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(handler)
    with caplog.at_level(logging.WARNING, logger="rotate_stats"):
        assert ping(f"http://127.0.0.1:{server.port}/{SECRET}", True) is False
    assert "heartbeat" in caplog.text and SECRET not in caplog.text


def test_a_broken_answer_never_changes_the_exit_code(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    server = serve(garbage)
    monitor = RunMonitor(str(tmp_path / "m.prom"), f"http://127.0.0.1:{server.port}/{SECRET}")
    monitor.finish(0)  # must not raise: the CLI returns its code right after
    assert "rotate_stats_last_exit_code 0" in (tmp_path / "m.prom").read_text()


def test_a_trickling_server_cannot_hold_the_run(
    serve: Callable[..., RawServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Each byte comes within the socket timeout, so only a total deadline ends it:
    the ping returns while the server is still sending."""
    server = serve(trickle)
    with caplog.at_level(logging.WARNING, logger="rotate_stats"):
        assert ping(f"http://127.0.0.1:{server.port}/{SECRET}", True, timeout=0.5) is False
    assert not server.stop.is_set()  # still trickling: the ping did not wait for it
    assert "not waited for" in caplog.text and SECRET not in caplog.text


def test_a_server_that_never_answers_times_out(
    serve: Callable[..., RawServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(silent)
    with caplog.at_level(logging.WARNING, logger="rotate_stats"):
        assert ping(f"http://127.0.0.1:{server.port}/{SECRET}", False, timeout=0.3) is False
    assert not server.stop.is_set() and SECRET not in caplog.text


def test_a_bad_certificate_is_a_warning(
    serve: Callable[..., RawServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    openssl = require_binary("openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = serve(garbage, wrap=context)
    with caplog.at_level(logging.WARNING, logger="rotate_stats"):
        assert ping(f"https://127.0.0.1:{server.port}/{SECRET}", True) is False
    assert "certificate" in caplog.text.lower() and SECRET not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        f"https://hc-ping.com/{SECRET} x",  # a blank inside: http.client names the path
        f"https://hc-ping.com/{SECRET}\nx",
        f"https://hc-ping.com/{SECRET}\x7f",
    ],
)
def test_a_url_with_blanks_or_controls_never_logs_its_path(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="rotate_stats"):
        assert ping(url, True, timeout=0.3) is False
    assert "heartbeat" in caplog.text and SECRET not in caplog.text
    with pytest.raises(ConfigError) as info:
        RunMonitor.from_environment(None, {"ROTATE_STATS_HEARTBEAT_URL": url})
    assert "ROTATE_STATS_HEARTBEAT_URL" in str(info.value) and SECRET not in str(info.value)


@pytest.mark.parametrize("url", ["HTTPS://hc-ping.com/x", "Http://127.0.0.1:1/x"])
def test_the_scheme_is_case_insensitive(url: str) -> None:
    assert RunMonitor.from_environment(None, {"ROTATE_STATS_HEARTBEAT_URL": url}) is not None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/x",
        "file:///etc/passwd",
        "hc-ping.com/x",
        "http://",
        "http://[::1/x",  # urllib raises ValueError on it
        "http://hc-ping.com:99999/x",
        f"https://user:{SECRET}@hc-ping.com/x",  # urllib would take user:pw@host as the host
    ],
)
def test_what_is_not_an_http_url_with_a_host_is_refused_at_start(url: str) -> None:
    with pytest.raises(ConfigError, match="ROTATE_STATS_HEARTBEAT_URL"):
        RunMonitor.from_environment(None, {"ROTATE_STATS_HEARTBEAT_URL": url})


def test_a_redirect_elsewhere_than_http_is_not_followed(
    serve: Callable[..., RawServer], caplog: pytest.LogCaptureFixture
) -> None:
    def redirect(conn: socket.socket, _: threading.Event) -> None:
        _read_request(conn)
        conn.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n"
        )

    server = serve(redirect)
    with caplog.at_level(logging.WARNING, logger="rotate_stats"):
        assert ping(f"http://127.0.0.1:{server.port}/{SECRET}", True) is False
    assert SECRET not in caplog.text


def test_the_ping_body_is_masked_and_printable() -> None:
    """The body goes to a third party (healthchecks.io): an error that quotes a URL
    or a key with control characters is masked and escaped there too."""
    from rotate_stats.report import RotationReport

    monitor = RunMonitor(None, "https://hc-ping.com/x")
    monitor.report = RotationReport(
        run_id="r", started_at=0.0, error=f"cannot reach redis://:{SECRET}@h:1 key 'a\x1b[2Jb'\nx"
    )
    body = monitor.summary(1)
    assert SECRET not in body and "redis://:***@h:1" in body
    assert body.isprintable() and "\\x1b" in body


@pytest.mark.parametrize("url", ["http://[::1/x", "http://h:99999/x", "https://u:p@127.0.0.1:1/x"])
def test_a_url_urllib_cannot_parse_never_raises(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rotate_stats"):
        assert ping(url, True, timeout=0.3) is False
        assert ping(url, False, timeout=0.3) is False
    assert "heartbeat" in caplog.text
