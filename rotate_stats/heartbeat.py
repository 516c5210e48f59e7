"""Dead man's switch pings (``ROTATE_STATS_HEARTBEAT_URL``, issue 10 #15).

The healthchecks.io convention: a request to the URL says "ran and succeeded",
to ``<url>/fail`` "ran and failed"; a monitor that hears nothing in time
alerts. A ping never fails the run: any error is a logged warning. The URL's
path usually is the secret (a check's UUID or ping key), so logs show only
scheme, host and port.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse

# urllib.request and http.client are imported by the functions that send: they cost
# ~20 ms of every run's start-up, and most runs have no heartbeat URL.

log = logging.getLogger("rotate_stats")

TIMEOUT = 5.0
"""Seconds a ping may take; the run has finished its work by then."""


def mask_ping_url(url: str) -> str:
    """The URL with its password, path and query hidden: ``https://hc-ping.com/***``."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a bad port: show nothing but the scheme
        return url.partition("://")[0] + "://***"
    user = f"{parts.username}:***@" if parts.password else ""
    return f"{parts.scheme}://{user}{host}{port}/***"


def url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as a ping URL, or None: it must be http(s) with a
    host and a valid port, without ``user:password@`` (urllib would take it for
    part of the host) and without blanks or control characters."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "the URL holds a blank or control character"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:
        return "the URL cannot be parsed (its host or port)"
    if parts.scheme.lower() not in ("http", "https"):
        return "not an http(s) URL"
    if not parts.hostname:
        return "the URL has no host"
    if "@" in parts.netloc:
        return "user:password@ in the URL is not supported (put the secret in the path)"
    return None


def ping_url(url: str, ok: bool) -> str:
    """``url`` on success, ``url/fail`` on failure (a trailing slash is not doubled)."""
    if ok:
        return url
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/") + "/fail"
    return urllib.parse.urlunsplit(parts._replace(path=path))


def ping(
    url: str, ok: bool, body: str = "", timeout: float = TIMEOUT, deadline: float | None = None
) -> bool:
    """POST ``body`` (a one-line summary, shown by healthchecks) to the success or
    failure URL; True when the server answered 2xx. Never raises.

    ``timeout`` bounds each connect and read; ``deadline`` (default twice that)
    bounds the whole ping, so a server sending a byte now and then cannot hold
    the run: the request goes on in a daemon thread the process does not wait for.
    """
    shown = mask_ping_url(url) + ("" if ok else " (/fail)")
    problem = url_problem(url)
    if problem is not None:
        log.warning("heartbeat %s: %s; not pinged", shown, problem)
        return False
    target = ping_url(url, ok)
    answered: list[bool] = []
    worker = threading.Thread(
        target=lambda: answered.append(_send(target, shown, body, timeout)),
        name="rotate-stats-heartbeat",
        daemon=True,
    )
    worker.start()
    limit = 2 * timeout if deadline is None else deadline
    worker.join(limit)
    if worker.is_alive():
        log.warning(
            "heartbeat %s: no complete answer within %gs; not waited for, the run's result stands",
            shown,
            limit,
        )
        return False
    return bool(answered and answered[0])


def _send(target: str, shown: str, body: str, timeout: float) -> bool:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        target,
        data=body.encode("utf-8")[:10_000],
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "rotate-stats"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(1024)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        log.warning("heartbeat %s: HTTP %d; the run's result stands", shown, exc.code)
        return False
    except Exception as exc:  # noqa: BLE001 - URLError, timeouts, a server speaking garbage
        log.warning("heartbeat %s failed: %s; the run's result stands", shown, _reason(exc, target))
        return False
    if not 200 <= status < 300:
        log.warning("heartbeat %s: HTTP %d; the run's result stands", shown, status)
        return False
    log.debug("heartbeat %s: HTTP %d", shown, status)
    return True


def _reason(exc: Exception, target: str) -> str:
    """What went wrong, without the URL's path (its secret): http.client's own
    messages about a malformed URL quote it, so those are not echoed."""
    import http.client

    if isinstance(exc, ValueError | http.client.InvalidURL):  # a blank or control character
        return f"{type(exc).__name__}: the URL is malformed (a blank or control character?)"
    reason = getattr(exc, "reason", exc)
    text = str(reason) or type(reason).__name__
    path = urllib.parse.urlsplit(target).path
    if len(path) > 1:
        text = text.replace(path, "/***")
    return f"{type(reason).__name__}: {text}" if isinstance(reason, Exception) else text
