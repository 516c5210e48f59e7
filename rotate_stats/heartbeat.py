"""Dead man's switch pings (``ROTATE_STATS_HEARTBEAT_URL``, issue 10 #15).

The healthchecks.io convention: a request to the URL says "ran and succeeded",
to ``<url>/fail`` "ran and failed"; a monitor that hears nothing in time
alerts. A ping never fails the run: any error is a logged warning. The URL's
path usually is the secret (a check's UUID or ping key), so logs show only
scheme, host and port.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.parse
import urllib.request

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


def ping_url(url: str, ok: bool) -> str:
    """``url`` on success, ``url/fail`` on failure (a trailing slash is not doubled)."""
    if ok:
        return url
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/") + "/fail"
    return urllib.parse.urlunsplit(parts._replace(path=path))


def ping(url: str, ok: bool, body: str = "", timeout: float = TIMEOUT) -> bool:
    """POST ``body`` (a one-line summary, shown by healthchecks) to the success or
    failure URL; True when the server answered 2xx. Never raises."""
    target = ping_url(url, ok)
    shown = mask_ping_url(url) + ("" if ok else " (/fail)")
    if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
        log.warning("heartbeat %s: not an http(s) URL; not pinged", shown)
        return False
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
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
        reason = getattr(exc, "reason", exc)
        log.warning("heartbeat %s failed: %s; the run's result stands", shown, reason)
        return False
    if not 200 <= status < 300:
        log.warning("heartbeat %s: HTTP %d; the run's result stands", shown, status)
        return False
    log.debug("heartbeat %s: HTTP %d", shown, status)
    return True
