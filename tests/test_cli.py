from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ticker.cli import build_parser, main, parse_faults
from ticker.config import Config
from ticker.errors import ConfigError


def test_every_setting_is_a_documented_flag_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name in Config.names():
        assert "--" + name.replace("_", "-") in help_text
    assert "(default: 524288)" in help_text  # outbox_max_bytes
    assert "Bytes queued for one connection" in help_text


def test_fault_plans_parse_and_bad_ones_are_refused() -> None:
    plan = parse_faults("drop=0.01, duplicate=0.02")
    assert (plan.drop, plan.duplicate) == (0.01, 0.02)
    with pytest.raises(ConfigError, match="unknown fault"):
        parse_faults("explode=1")
    with pytest.raises(ConfigError, match="needs a number"):
        parse_faults("drop=lots")
    with pytest.raises(ConfigError):
        parse_faults("drop=2")


def test_bad_settings_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--outbox-max-bytes", "0"]) == 2
    assert "outbox_max_bytes must be > 0" in capsys.readouterr().err
    assert main(["feeds", "--venues", "nasdaq"]) == 2
    assert main(["feeds", "--faults", "drop=x"]) == 2


def test_feeds_prints_normalized_events_as_json_lines() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticker",
            "feeds",
            "--duration",
            "1",
            "--venue-rate-per-s",
            "200",
            "--stats",
            "--faults",
            "drop=0.01",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert {e["venue"] for e in events} == {"cbx", "fxa", "itx"}
    assert {e["type"] for e in events} >= {"book", "quote", "trade"}
    assert all(isinstance(e["ts"], int) for e in events)
    book = next(e for e in events if e["type"] == "book")
    assert all(isinstance(price, str) for price, _ in book["bids"])
    assert "# itx:" in done.stderr
