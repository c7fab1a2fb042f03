from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ticker.cli import build_parser, main
from ticker.config import Config
from ticker.errors import ConfigError
from ticker.settings import env_name, parse_faults


def test_every_setting_is_a_documented_flag_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name in Config.names():
        assert "--" + name.replace("_", "-") in help_text
        assert env_name(name) in help_text
    assert "(env TICKER_OUTBOX_MAX_BYTES; default: 524288)" in help_text
    assert "--config FILE" in help_text
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


async def test_sigterm_drains_the_server_and_exits_within_the_deadline() -> None:
    """The real `ticker serve` process: SIGTERM sends a WS client the shutdown close and
    an SSE client its final event, refuses new connections, logs the drain and exits 0."""
    import re
    import signal

    import trio

    from tests.server.conftest import RawWebSocket, SseClient
    from ticker.errors import CLOSE_SHUTDOWN

    command = [sys.executable, "-m", "ticker.cli", "serve", "--port", "0"]
    command += ["--venue-rate-per-s", "50", "--drain-timeout-s", "4"]
    process = await trio.lowlevel.open_process(command, stderr=subprocess.PIPE)
    assert process.stderr is not None
    log = b""
    try:
        with trio.fail_after(30):
            while not (found := re.search(rb"listening on 127\.0\.0\.1:(\d+)", log)):
                log += await process.stderr.receive_some(65536)
            port = int(found.group(1))
            ws = await RawWebSocket.connect(port)
            await ws.messages()
            await ws.subscribe("quote.*")
            sse = await SseClient.connect(port, "topics=trade.*")
            assert sse.status == 200
            process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionAbortedError) as closed:
                while True:
                    await ws.messages()
            assert closed.value.args[0] == CLOSE_SHUTDOWN
            while (event := await sse.event()).get("event") != "end":
                pass
            assert json.loads(event["data"])["reason"] == "shutdown"
            while chunk := await process.stderr.receive_some(65536):
                log += chunk
            assert await process.wait() == 0
            await ws.close()
            await sse.stream.aclose()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stderr.aclose()
    text = log.decode()
    assert "SIGTERM: draining (deadline 4.0 s;" in text
    assert re.search(r"drain done in [\d.]+ s: 2 streams sent away, 0 cut", text), text


def test_a_port_in_use_is_a_clear_error_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--venues", "cbx"]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--log-level", "loud"],
        ["feeds", "--log-level", "loud"],
        ["tail", "ws://127.0.0.1:9", "--log-level", "loud"],
        ["record", "--out", "x.tcap", "--log-level", "loud"],
        ["replay", "x.tcap", "--validate", "--log-level", "loud"],
    ],
)
def test_a_bad_log_level_is_a_usage_error_of_that_command(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: ticker {argv[0]}" in err
    assert "unknown log level 'loud'; use one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in err
    assert "Traceback" not in err


def test_log_levels_are_taken_in_any_case() -> None:
    args = build_parser().parse_args(["serve", "--log-level", "debug"])
    assert args.log_level == "DEBUG"


@pytest.mark.parametrize("command", ["serve", "feeds", "tail", "record", "replay"])
def test_an_unknown_flag_shows_the_subcommands_usage(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    positional = {"tail": ["ws://127.0.0.1:9"], "replay": ["x.tcap"]}.get(command, [])
    with pytest.raises(SystemExit) as exited:
        main([command, *positional, "--rate-of-knots", "5"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: ticker {command} ")
    assert f"ticker {command}: error: unrecognized arguments: --rate-of-knots 5" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import ticker

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"ticker {ticker.__version__}"


def test_a_missing_certificate_file_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "chain.pem"
    assert main(["serve", "--port", "0", "--venues", "cbx", "--certfile", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"cannot read certfile {missing}: No such file or directory" in err
    assert "Traceback" not in err


def test_a_missing_key_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    chain = tmp_path / "chain.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(chain))
    key = tmp_path / "key.pem"
    argv = ["serve", "--port", "0", "--venues", "cbx", "--certfile", str(chain)]
    assert main([*argv, "--keyfile", str(key)]) == 2
    assert f"cannot read keyfile {key}: No such file or directory" in capsys.readouterr().err
    # A file that is not a certificate at all is named too.
    key.write_text("not a key")
    assert main([*argv, "--keyfile", str(key)]) == 2
    assert f"certfile {chain} and keyfile {key}: not a certificate" in capsys.readouterr().err
