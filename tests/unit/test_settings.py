"""Settings from environment and flags; database URL parsing; password masking."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotate_stats.errors import ConfigError
from rotate_stats.settings import (
    ENVIRONMENT,
    FILE_VARIABLES,
    DatabaseUrl,
    Settings,
    mask_url,
    parse_database_url,
)

SETTINGS = settings(database=None, deadline=None, max_examples=200)
SECRET = "s3cr3t-Pa55"


# -- from_env -------------------------------------------------------------------------------------


def test_defaults_from_empty_environment() -> None:
    s = Settings.from_env({})
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.database_url is None
    assert s.batch_size == 31
    assert s.lock_ttl == 300.0
    assert s.max_backlog_days == 3660
    assert s.database_timeout == 10.0
    assert s.database_retry_for == 60.0
    assert s.strict is False
    assert s.log_level == "INFO"


def test_every_known_variable_is_read() -> None:
    env = {
        "ROTATE_STATS_REDIS_URL": "redis://cache:6380/2",
        "ROTATE_STATS_DATABASE_URL": "rqlite://db:4001",
        "ROTATE_STATS_BATCH_SIZE": "7",
        "ROTATE_STATS_LOCK_TTL": "12.5",
        "ROTATE_STATS_MAX_BACKLOG_DAYS": "40",
        "ROTATE_STATS_DATABASE_TIMEOUT": "2.5",
        "ROTATE_STATS_DATABASE_RETRY_FOR": "0",
        "ROTATE_STATS_STRICT": "1",
        "ROTATE_STATS_LOG_LEVEL": "debug",
        "ROTATE_STATS_RQLITE_CA_FILE": __file__,
        "ROTATE_STATS_RQLITE_INSECURE": "yes",
        "ROTATE_STATS_SCAN_ORPHANS": "off",
        "ROTATE_STATS_MAX_CLOCK_SKEW": "30",
        "ROTATE_STATS_ALLOW_EVICTION": "1",
        "ROTATE_STATS_REDIS_FENCE": "replicas:2",
        "ROTATE_STATS_REDIS_FENCE_TIMEOUT": "2.5",
        "ROTATE_STATS_METRICS_FILE": "/var/lib/node_exporter/rotate_stats.prom",
        "ROTATE_STATS_HEARTBEAT_URL": "https://hc-ping.com/secret-uuid",
        "ROTATE_STATS_STALE_AFTER_DAYS": "5",
        "ROTATE_STATS_ALERT_BACKLOG_DAYS": "4",
        "ROTATE_STATS_STUCK_CLAIM_AFTER": "600",
        "ROTATE_STATS_PRUNE_MIN_AGE": "0.5",
        "ROTATE_STATS_LOG_FORMAT": "JSON",
        "ROTATE_STATS_COMMAND": "runuser -u rotate-stats -- /opt/rotate-stats/cron/run",
    }
    assert set(env) == set(ENVIRONMENT) - set(FILE_VARIABLES)
    s = Settings.from_env(env)
    assert s.redis_url == "redis://cache:6380/2"
    assert s.database_url == "rqlite://db:4001"
    assert s.batch_size == 7 and isinstance(s.batch_size, int)
    assert s.lock_ttl == 12.5
    assert s.max_backlog_days == 40
    assert s.database_timeout == 2.5
    assert s.database_retry_for == 0
    assert s.strict is True
    assert s.log_level == "DEBUG"
    assert s.rqlite_ca_file == __file__ and s.rqlite_insecure is True
    assert s.scan_orphans is False
    assert s.max_clock_skew == 30 and s.allow_eviction is True
    assert s.metrics_file == "/var/lib/node_exporter/rotate_stats.prom"
    assert s.heartbeat_url == "https://hc-ping.com/secret-uuid" and "secret" not in repr(s)
    assert (s.stale_after_days, s.alert_backlog_days, s.stuck_claim_after) == (5, 4, 600)
    assert s.redis_fence == "replicas:2" and s.redis_fence_timeout == 2.5
    assert s.log_format == "json"
    assert s.prune_min_age == 0.5
    assert s.command == "runuser -u rotate-stats -- /opt/rotate-stats/cron/run"


def test_missing_ca_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ROTATE_STATS_RQLITE_CA_FILE": "/nonexistent/ca.pem"})
    assert "/nonexistent/ca.pem" in str(info.value)


@pytest.mark.parametrize(
    "name", ["ROTATE_STATS_BATCHSIZE", "ROTATE_STATS_REDIS", "ROTATE_STATS_", "ROTATE_STATS_X"]
)
def test_unknown_variable_is_an_error_naming_it(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: "1"})
    assert info.value.name == name
    assert name in str(info.value)


def test_test_variables_and_other_variables_are_ignored() -> None:
    env = {
        "ROTATE_STATS_TEST_REDIS_URL": "not a url",
        "ROTATE_STATS_TEST_ANYTHING": "x",
        "PATH": "/bin",
        "rotate_stats_batch_size": "nonsense",
        "REDIS_URL": "garbage",
    }
    assert Settings.from_env(env) == Settings()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("ROTATE_STATS_BATCH_SIZE", "abc"),
        ("ROTATE_STATS_BATCH_SIZE", "1.5"),
        ("ROTATE_STATS_BATCH_SIZE", ""),
        ("ROTATE_STATS_MAX_BACKLOG_DAYS", "ten"),
        ("ROTATE_STATS_LOCK_TTL", "5s"),
        ("ROTATE_STATS_LOCK_TTL", ""),
        ("ROTATE_STATS_DATABASE_TIMEOUT", "1,5"),
        ("ROTATE_STATS_STRICT", "maybe"),
        ("ROTATE_STATS_STRICT", "2"),
        ("ROTATE_STATS_STRICT", "y"),
    ],
)
def test_bad_number_or_bool_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: raw})
    assert info.value.name == name
    assert name in str(info.value)
    assert info.value.value == raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        (" 1 ", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("Off", False),
        ("", False),
    ],
)
def test_strict_booleans(raw: str, expected: bool) -> None:
    assert Settings.from_env({"ROTATE_STATS_STRICT": raw}).strict is expected


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("ROTATE_STATS_BATCH_SIZE", "0"),
        ("ROTATE_STATS_BATCH_SIZE", "1001"),
        ("ROTATE_STATS_LOCK_TTL", "0.5"),
        ("ROTATE_STATS_LOCK_TTL", "nan"),
        ("ROTATE_STATS_MAX_BACKLOG_DAYS", "0"),
        ("ROTATE_STATS_DATABASE_TIMEOUT", "0"),
        ("ROTATE_STATS_DATABASE_TIMEOUT", "inf"),
        ("ROTATE_STATS_LOG_LEVEL", "verbose"),
        ("ROTATE_STATS_REDIS_URL", "http://cache:6379"),
        ("ROTATE_STATS_DATABASE_URL", "postgres://db:5432/x"),
    ],
)
def test_out_of_range_values_are_config_errors(name: str, raw: str) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({name: raw})


def test_flags_override_environment() -> None:
    env = {
        "ROTATE_STATS_BATCH_SIZE": "7",
        "ROTATE_STATS_STRICT": "1",
        "ROTATE_STATS_DATABASE_URL": "sqlite:///env.db",
    }
    s = Settings.from_env(env, batch_size=99, strict=False, database_url="sqlite:///flag.db")
    assert s.batch_size == 99
    assert s.strict is False
    assert s.database_url == "sqlite:///flag.db"


def test_none_flags_do_not_override_environment() -> None:
    env = {"ROTATE_STATS_BATCH_SIZE": "7", "ROTATE_STATS_STRICT": "yes"}
    s = Settings.from_env(env, batch_size=None, strict=None, log_level=None)
    assert s.batch_size == 7
    assert s.strict is True
    assert s.log_level == "INFO"


def test_flags_are_validated_too() -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({}, batch_size=0)


@SETTINGS
@given(st.integers(min_value=1, max_value=1000))
def test_batch_size_round_trips_through_environment(n: int) -> None:
    assert Settings.from_env({"ROTATE_STATS_BATCH_SIZE": str(n)}).batch_size == n


@pytest.mark.parametrize(
    ("redis_url", "database_url"),
    [
        (f"redis://:{SECRET}@cache:6379/0", None),
        (f"redis://user:{SECRET}@cache:6379/0", f"rqlite://admin:{SECRET}@db:4001"),
        ("redis://cache:6379/0", f"rqlites://admin:{SECRET}@db:4001"),
    ],
)
def test_repr_masks_passwords(redis_url: str, database_url: str | None) -> None:
    s = Settings(redis_url=redis_url, database_url=database_url)
    text = repr(s)
    assert SECRET not in text
    assert "***" in text
    assert "cache:6379" in text
    if database_url is not None:
        assert "db:4001" in text
    # the settings themselves keep the real URLs
    assert s.redis_url == redis_url


def test_config_error_for_bad_redis_url_masks_password() -> None:
    with pytest.raises(ConfigError) as info:
        Settings(redis_url=f"http://u:{SECRET}@cache:6379")
    assert SECRET not in str(info.value)


def test_config_error_for_malformed_database_url_in_environment() -> None:
    # A typo in the URL is a configuration error (exit 2), never a bare ValueError.
    env = {"ROTATE_STATS_DATABASE_URL": f"rqlite://admin:{SECRET}@[db:4001"}
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert SECRET not in str(info.value)


# -- parse_database_url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///rel.db", DatabaseUrl("sqlite", path="rel.db")),
        ("sqlite:///dir/rel.db", DatabaseUrl("sqlite", path="dir/rel.db")),
        ("sqlite:////abs/x.db", DatabaseUrl("sqlite", path="/abs/x.db")),
        ("rqlite://h:4001", DatabaseUrl("rqlite", hosts=(("h", 4001),))),
        ("rqlite://h:4001/", DatabaseUrl("rqlite", hosts=(("h", 4001),))),
        (
            "rqlites://u:p@h:4001",
            DatabaseUrl("rqlite", hosts=(("h", 4001),), user="u", password="p", tls=True),
        ),
        (
            "rqlite://u%40x:p%3Aw@db.example:4002",
            DatabaseUrl("rqlite", hosts=(("db.example", 4002),), user="u@x", password="p:w"),
        ),
        (
            "rqlite://u:p@a:4001,b.example:4002,[::1]:4003",
            DatabaseUrl(
                "rqlite",
                hosts=(("a", 4001), ("b.example", 4002), ("::1", 4003)),
                user="u",
                password="p",
            ),
        ),
    ],
)
def test_parse_database_url_accepts(url: str, expected: DatabaseUrl) -> None:
    assert parse_database_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "rqlite://h",
        "rqlites://h",
        "rqlite://:4001",
        "rqlite://h:4001/db",
        "rqlite://h:notaport",
        "rqlite://h:99999",
        "rqlite://h:4001,",
        "rqlite://h:4001,g",
        "postgres://h:5432",
        "http://h:4001",
        "h:4001",
        "",
        "sqlite://x.db",
        "sqlite://",
        "sqlite:///",
        "sqlite:",
    ],
)
def test_parse_database_url_rejects(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_database_url(url)


@pytest.mark.parametrize(
    "url",
    [
        f"rqlite://admin:{SECRET}@h",
        f"rqlites://admin:{SECRET}@h",
        f"rqlite://admin:{SECRET}@h:4001/db",
        f"rqlite://admin:{SECRET}@h:notaport",
        f"rqlite://admin:{SECRET}@h:99999",
        f"postgres://admin:{SECRET}@h:5432/x",
        f"rqlite://:{SECRET}@h",
    ],
)
def test_parse_database_url_error_never_contains_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_database_url(url)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.value)


def test_parse_database_url_malformed_host_is_config_error_without_password() -> None:
    url = f"rqlite://admin:{SECRET}@[db:4001"
    with pytest.raises(ConfigError) as info:
        parse_database_url(url)
    assert SECRET not in str(info.value)


def test_parse_database_url_sqlite_error_never_contains_password() -> None:
    url = f"sqlite://admin:{SECRET}@host/x.db"
    with pytest.raises(ConfigError) as info:
        parse_database_url(url)
    assert SECRET not in str(info.value)


# -- mask_url -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://u:pw@h:6379/0", "redis://u:***@h:6379/0"),
        ("rqlites://admin:p%40ss@db:4001", "rqlites://admin:***@db:4001"),
        ("rqlite://admin:a@b@db:4001", "rqlite://admin:***@db:4001"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://u@h:6379/0", "redis://u@h:6379/0"),
        ("sqlite:///rel.db", "sqlite:///rel.db"),
        ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


password_text = st.text(
    alphabet=st.characters(
        codec="ascii", categories=["L", "N"], include_characters="-_.~!$&'()*+,;="
    ),
    min_size=6,
    max_size=20,
)


@SETTINGS
@given(
    st.sampled_from(["redis", "rediss", "rqlite", "rqlites"]),
    st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
    password_text,
    st.from_regex(r"[a-z][a-z0-9.-]{0,15}", fullmatch=True),
    st.integers(min_value=1, max_value=65535),
)
def test_mask_url_never_leaks_the_password(
    scheme: str, user: str, password: str, host: str, port: int
) -> None:
    url = f"{scheme}://{user}:{password}@{host}:{port}"
    masked = mask_url(url)
    assert masked == f"{scheme}://{user}:***@{host}:{port}"


# -- masking in every ConfigError, whatever the variable's name (issue 10, item 2) ------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROTATE_STATS_REDIS_ULR", f"redis://:{SECRET}@cache:6379/0"),
        ("ROTATE_STATS_DATABSE_URL", f"rqlite://admin:{SECRET}@db:4001"),
        ("ROTATE_STATS_CACHE", f"user:{SECRET}@cache:6379"),
        ("ROTATE_STATS_URL", f"redis://cache:6379/0?password={SECRET}"),
        ("ROTATE_STATS_REDIS_PASSWORD", SECRET),
        ("ROTATE_STATS_AUTH_TOKEN", SECRET),
        ("ROTATE_STATS_SECRET", SECRET),
        ("ROTATE_STATS_REDIS_URL", f"redis://:{SECRET}@cache:99999/0"),
        ("ROTATE_STATS_REDIS_URL", f"http://:{SECRET}@cache:6379/0"),
        ("ROTATE_STATS_REDIS_URL", f"redis://:pa/ss{SECRET}@cache:6379/0"),
    ],
)
def test_no_config_error_echoes_a_password(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.value)


def test_config_error_masks_whatever_the_call_site_passes() -> None:
    error = ConfigError(
        "anything", f"see rediss://u:{SECRET}@h:1 and x", f"not rediss://u:{SECRET}@h"
    )
    assert SECRET not in str(error) and "rediss://u:***@h:1" in str(error)
    assert ConfigError("--db-password", SECRET, "x").value == "***"


# -- unknown variables suggest the closest known name (issue 10, item 3) ----------------------


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("ROTATE_STATS_REDIS_ULR", "ROTATE_STATS_REDIS_URL"),
        ("ROTATE_STATS_DATABASEURL", "ROTATE_STATS_DATABASE_URL"),
        ("ROTATE_STATS_BATCHSIZE", "ROTATE_STATS_BATCH_SIZE"),
        ("ROTATE_STATS_LOGLEVEL", "ROTATE_STATS_LOG_LEVEL"),
    ],
)
def test_unknown_variable_suggests_the_closest_name(typo: str, meant: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({typo: "1"})
    assert f"did you mean {meant}?" in str(info.value)


@pytest.mark.parametrize(
    "name", ["ROTATE_STATS_ENV_FILE", "ROTATE_STATS_VENV", "ROTATE_STATS_FLOCK_FILE"]
)
def test_the_wrappers_variables_stay_errors_saying_whose_they_are(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: "/etc/rotate-stats/rotate-stats.env"})
    assert name in str(info.value) and "cron wrapper" in str(info.value)


# -- a bad port is a bad port, not a bad scheme (issue 10, item 14) ---------------------------


@pytest.mark.parametrize("url", ["redis://cache:99999/0", "redis://:pw@cache:port/0"])
def test_bad_redis_port_is_reported_as_a_port(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ROTATE_STATS_REDIS_URL": url})
    assert "port" in info.value.expected and "scheme" not in info.value.expected
    assert "redis://" not in info.value.expected  # not the list of schemes


# -- URLs read from files (issue 10, item 17) -------------------------------------------------


@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_urls_are_read_from_files(tmp_path: Path, ending: str) -> None:
    (tmp_path / "redis").write_text(f"redis://:{SECRET}@cache:6379/1{ending}")
    (tmp_path / "db").write_text(f"rqlite://u:{SECRET}@db:4001{ending}")
    s = Settings.from_env(
        {
            "ROTATE_STATS_REDIS_URL_FILE": str(tmp_path / "redis"),
            "ROTATE_STATS_DATABASE_URL_FILE": str(tmp_path / "db"),
        }
    )
    assert s.redis_url == f"redis://:{SECRET}@cache:6379/1"
    assert s.database_url == f"rqlite://u:{SECRET}@db:4001"


@pytest.mark.parametrize("variable", sorted(FILE_VARIABLES))
def test_a_url_and_its_file_together_are_an_error(tmp_path: Path, variable: str) -> None:
    (tmp_path / "f").write_text("sqlite:///x.db")
    env = {variable: str(tmp_path / "f"), FILE_VARIABLES[variable]: "sqlite:///y.db"}
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert variable in str(info.value) and FILE_VARIABLES[variable] in str(info.value)


@pytest.mark.parametrize("problem", ["missing", "empty", "blank", "unreadable", "directory"])
def test_a_bad_secret_file_names_variable_and_path_never_content(
    tmp_path: Path, problem: str
) -> None:
    path = tmp_path / "secret"
    if problem == "empty":
        path.write_text("")
    elif problem == "blank":
        path.write_text("\n")
    elif problem == "unreadable":
        if os.geteuid() == 0:  # root reads any mode: make open() fail another way
            (tmp_path / "not-a-dir").write_text(f"redis://:{SECRET}@h:1")
            path = tmp_path / "not-a-dir" / "secret"  # ENOTDIR
        else:
            path.write_text(f"redis://:{SECRET}@h:1")
            path.chmod(0)
    elif problem == "directory":
        path.mkdir()
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ROTATE_STATS_REDIS_URL_FILE": str(path)})
    message = str(info.value)
    assert "ROTATE_STATS_REDIS_URL_FILE" in message and str(path) in message
    assert SECRET not in message


def test_a_bad_url_in_a_file_is_masked(tmp_path: Path) -> None:
    (tmp_path / "redis").write_text(f"http://:{SECRET}@cache:6379\n")
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ROTATE_STATS_REDIS_URL_FILE": str(tmp_path / "redis")})
    assert "ROTATE_STATS_REDIS_URL_FILE" in str(info.value) and SECRET not in str(info.value)


def test_log_format_is_validated() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ROTATE_STATS_LOG_FORMAT": "xml"})
    assert "ROTATE_STATS_LOG_FORMAT" in str(info.value) and "text or json" in str(info.value)


def test_data_shaped_like_userinfo_is_left_alone_outside_setting_values() -> None:
    """A breakdown key such as ``sync:llm:bad@x`` in a data error stays readable (an
    operator must find it to repair it); a URL's password is hidden everywhere."""
    from rotate_stats.errors import DataError, mask_text

    text = str(DataError("stats key", "sync:llm:bad@x", "abc", "an integer"))
    assert mask_text(text) == text
    assert mask_text(f"see redis://:{SECRET}@h:1") == "see redis://:***@h:1"
