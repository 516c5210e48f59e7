"""Adversarial attempts to get a secret printed by a ConfigError or a mask
(issue 10, item 2): passwords holding reserved characters or blanks, a URL
missing its host, the heartbeat URL (whose path is the secret)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from rotate_stats.errors import ConfigError, mask_url, mask_value
from rotate_stats.logs import setup_logging
from rotate_stats.settings import Settings

SECRET = "s3cr3t"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # a '/', '?' or '#' in a raw password ends urllib's host part: the "port"
        # it then finds is the start of the password
        ("ROTATE_STATS_REDIS_URL", f"redis://:{SECRET}/x@cache:6379/0"),
        ("ROTATE_STATS_REDIS_URL", f"redis://:{SECRET}?x@cache:6379/0"),
        ("ROTATE_STATS_REDIS_URL", f"redis://u:{SECRET}#x@cache:6379/0"),
        # a URL whose host was forgotten: what follows the colon is a password
        ("ROTATE_STATS_REDIS_URL", f"redis://:{SECRET}"),
        # blanks inside a password (an env file keeps them)
        ("ROTATE_STATS_REDIS_URL", f"redis://:{SECRET} x@cache:7x/0"),
        ("ROTATE_STATS_REDIS_ULR", f"redis://:{SECRET} x@cache:6379/0"),
        ("ROTATE_STATS_REDIS_ULR", f"redis://:x {SECRET}@cache:6379/0"),
        ("ROTATE_STATS_REDIS_ULR", f"redis://:{SECRET}\t@cache:6379/0"),
        ("ROTATE_STATS_DATABASE_URL", f"rqlite://u:{SECRET} x@h1:4001,u:pw@h2:40x1"),
        ("ROTATE_STATS_DATABSE_URL", f"rqlite://u:{SECRET} x@h1:4001"),
        # the heartbeat's secret is its path (a check's UUID), under a mistyped name
        ("ROTATE_STATS_HEARTBEAT_ULR", f"https://hc-ping.com/{SECRET}"),
        ("ROTATE_STATS_HEARTBAET_URL", f"https://hc-ping.com/ping/key/{SECRET}?create=1"),
    ],
)
def test_no_config_error_echoes_a_secret(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.value)
    assert SECRET not in info.value.expected


def test_the_port_is_still_shown_when_it_is_the_problem() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ROTATE_STATS_REDIS_URL": "redis://:pw@cache:63x79/0"})
    assert "'63x79'" in str(info.value) and "pw" not in str(info.value.value)


def test_a_reserved_character_in_a_password_is_explained() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ROTATE_STATS_REDIS_URL": f"redis://:{SECRET}/x@cache:6379/0"})
    assert "percent-encode" in info.value.expected


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (f"redis://:{SECRET} x@host", "redis://:***@host"),
        (f"redis://:{SECRET}\n@host", "redis://:***@host"),
        (f"rediss://u:{SECRET}@x@host:1", "rediss://u:***@host:1"),
        (f"rediss://user:{SECRET}%40x@host", "rediss://user:***@host"),
        (f"redis://:{SECRET}@x@host", "redis://:***@host"),
        (f"unix:///run/redis.sock?password={SECRET}", "unix:///run/redis.sock?password=***"),
        (f"redis://host?db=1&Password={SECRET}", "redis://host?db=1&Password=***"),
        (f"rqlite://u:{SECRET}@h1:4001,h2:4001", "rqlite://u:***@h1:4001,h2:4001"),
        (f"redis://:{SECRET}", "redis://:***"),
    ],
)
def test_mask_url_takes_the_whole_string_as_the_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_an_http_value_loses_its_path_and_query() -> None:
    shown = mask_value("ROTATE_STATS_X", f"https://hc-ping.com:8443/{SECRET}?k={SECRET}")
    assert shown == "https://hc-ping.com:8443/***"
    assert mask_value("ROTATE_STATS_X", "https://hc-ping.com") == "https://hc-ping.com"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_log_extras_and_tracebacks_are_masked(
    log_format: str, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever a future call passes as ``extra=`` or ``exc_info`` is masked too."""
    setup_logging("INFO", log_format, "run1")
    log = logging.getLogger("rotate_stats")
    url = f"redis://:{SECRET}@cache:6379/0"
    try:
        raise RuntimeError(f"cannot reach {url}")
    except RuntimeError:
        log.error("failed", exc_info=True, extra={"url": url, "nested": {"urls": [url]}})
    err = capsys.readouterr().err
    assert "failed" in err and "redis://:***@cache" in err
    assert SECRET not in err


def test_a_huge_value_is_not_echoed_whole() -> None:
    """An environment value can be ~128 KiB: the error shows its start and its length,
    masked first (a URL's password is never cut in two and left half visible)."""
    value = f"redis://:{SECRET}@cache:6379/0?" + "x" * 100_000
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ROTATE_STATS_REDIS_ULR": value})
    assert len(str(info.value)) < 1000 and SECRET not in str(info.value)
    assert "redis://:***@cache" in str(info.value) and "characters" in str(info.value)
