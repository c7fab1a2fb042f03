"""Settings precedence: flag, then TICKER_* environment variable, then TOML file, then
the embedded default; every bad value names where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticker.config import Config
from ticker.errors import ConfigError
from ticker.settings import env_name, load_config


def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    file = tmp_path / "ticker.toml"
    file.write_text('port = 7001\nheartbeat_s = 5\nvenues = ["cbx"]\nwrite-timeout-s = 4\n')
    environ = {"TICKER_PORT": "7002", "TICKER_HEARTBEAT_S": "6.5"}
    config = load_config({"port": 7003}, environ, str(file))
    assert config.port == 7003  # flag
    assert config.heartbeat_s == 6.5  # environment over file
    assert config.venues == ("cbx",)  # file
    assert config.write_timeout_s == 4.0  # file, dashed key
    assert config.outbox_max_bytes == Config().outbox_max_bytes  # default


def test_the_file_can_be_named_by_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "t.toml"
    file.write_text("seed = 9\n")
    assert load_config({}, {"TICKER_CONFIG": str(file)}).seed == 9


def test_environment_values_are_typed_like_the_default() -> None:
    environ = {
        "TICKER_VENUES": "itx, fxa",
        "TICKER_MAX_CONNECTIONS": "10",
        "TICKER_PUBLISH_TOKEN": "s3cret",
    }
    config = load_config({}, environ)
    assert config.venues == ("itx", "fxa")
    assert config.max_connections == 10
    assert config.publish_token == "s3cret"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TICKER_PORT": "eighty"}, "TICKER_PORT='eighty'"),
        ({"TICKER_PORT": "70000"}, "port must be in 0..65535"),
        ({"TICKER_VENUES": "nyse"}, "venues must be a non-empty subset"),
    ],
)
def test_bad_environment_values_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({}, environ)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense = 1\n", "unknown setting 'nonsense'"),
        ('port = "80"\n', "port: expected int"),
        ("heartbeat_s = true\n", "heartbeat_s: expected float"),
        ("port = \n", "not valid TOML"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config({}, {}, str(file))


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config({}, {}, str(tmp_path / "absent.toml"))


def test_every_setting_has_an_environment_variable() -> None:
    for name in Config.names():
        assert env_name(name) == "TICKER_" + name.upper()
        default = getattr(Config(), name)
        text = ",".join(default) if isinstance(default, tuple) else str(default)
        assert getattr(load_config({}, {env_name(name): text}), name) == default
