"""`ticker record` and `ticker replay`: flags, environment variables, exit codes, reports."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import trio

from feeds.simulator import EPOCH_NS
from ticker.capture.format import CaptureHeader, CaptureReader, CaptureWriter, RecordKind
from ticker.capture.options import REPLAY_OPTIONS, parse_duration, parse_time_ns
from ticker.capture.record import Recorder, SimulatedVenues, record_live, simulated_header
from ticker.capture.sample import write_sample
from ticker.cli import build_parser, main
from ticker.config import Config
from ticker.server.process import ServerHandle, serve

from .conftest import DEADLINE_S


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("captures") / "sample.tcap"
    with path.open("wb") as file:
        write_sample(file)
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_sample_capture_is_deterministic_clean_and_has_a_disconnect(sample: Path) -> None:
    again = io.BytesIO()
    write_sample(again)
    assert again.getvalue() == sample.read_bytes()
    reader = CaptureReader(io.BytesIO(sample.read_bytes()))
    assert reader.header.created_at == "2024-01-01T00:00:00.000Z"
    assert any(r.kind is RecordKind.DISCONNECT for r in reader.records())


def test_help_names_every_environment_variable_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in REPLAY_OPTIONS:
        assert option.flag in text
        assert "TICKER_REPLAY_" + option.dest.upper() in text
    assert "3 a capture file is missing, not a capture, corrupt or truncated" in text


def test_validate_a_clean_capture_exits_0_with_statistics(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["replay", str(sample), "--validate", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["records"] == 3000 and report["problems"] == 0
    assert set(report["venues"]) == {"cbx", "fxa", "itx"}
    assert "replayed 3,000 records" in err


def test_validate_with_faults_finds_problems_and_exits_1(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["replay", str(sample), "--validate", "--drop", "0.02", "--corrupt", "0.01", "--json"],
        capsys,
    )
    assert code == 1
    report = json.loads(out)
    assert report["faults"]["drop"] > 0 and report["problems"] > 0
    assert "validation found" in err


def test_environment_variables_stand_in_for_flags(
    sample: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKER_REPLAY_VALIDATE", "yes")
    monkeypatch.setenv("TICKER_REPLAY_SYMBOLS", "ETH-USD")
    monkeypatch.setenv("TICKER_REPLAY_JSON", "1")
    code, out, _ = run(["replay", str(sample)], capsys)
    assert code == 0
    assert json.loads(out)["filtered_events"] > 0
    monkeypatch.setenv("TICKER_REPLAY_SPEED", "fast")
    code, _, err = run(["replay", str(sample)], capsys)
    assert code == 2 and "TICKER_REPLAY_SPEED: not a number: 'fast'" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--speed", "0"], "must be > 0"),
        (["--drop", "2"], "a rate must be in [0, 1]"),
        (["--from", "yesterday"], "not an ISO-8601 time"),
        (["--loop", "0"], "must be in 1..1000000"),
    ],
)
def test_bad_flags_exit_2_with_the_reason(
    sample: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(sample), "--validate", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "choose exactly one of --serve, --target URL, --validate"),
        (["--serve", "--validate"], "choose exactly one"),
        (["--target", "ws://127.0.0.1:1"], "needs a publish token"),
        (["--target", "ftp://x", "--token", "t"], "target must look like ws://HOST:PORT"),
        (["--validate", "--venues", "nasdaq"], "no capture holds venue nasdaq"),
        (["--validate", "--from", "2024-01-02T00:00:00Z", "--to", "2024-01-01T00:00:00Z"],
         "--to is before --from"),
        (["--validate", "--drop", "0.6", "--corrupt", "0.6"], "sum to at most 1"),
        (["--validate", "--from", "2030-01-01T00:00:00Z"],
         "--from 2030-01-01T00:00:00.000Z is after the last record (2024-01-01T"),
        (["--validate", "--to", "2020-01-01T00:00:00Z"],
         "--to 2020-01-01T00:00:00.000Z is before the first record (2024-01-01T"),
        (["--serve", "--speed", "5", "--topspeed"],
         "--speed and --topspeed say different things: give one of them"),
    ],
)  # fmt: skip
def test_inconsistent_flags_exit_2(
    sample: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(["replay", str(sample), *argv], capsys)
    assert code == 2 and message in err


def test_bad_files_exit_3_naming_the_byte_offset(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a capture at all, just some text")
    code, _, err = run(["replay", str(text), "--validate"], capsys)
    assert code == 3 and f"{text}: byte 0: not a ticker capture" in err
    code, _, err = run(["replay", str(tmp_path / "missing.tcap"), "--validate"], capsys)
    assert code == 3 and "cannot open" in err and "No such file" in err


def test_a_truncated_capture_is_replayed_up_to_the_damage_then_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "long.tcap"
    with path.open("wb") as file:
        write_sample(file, arrivals=20_000)
    reader = CaptureReader(io.BytesIO(path.read_bytes()))
    blocks = list(reader.blocks())
    assert len(blocks) >= 3
    cut = blocks[2].offset + 3
    path.write_bytes(path.read_bytes()[:cut])
    code, out, err = run(["replay", str(path), "--validate", "--json"], capsys)
    assert code == 3
    expected = f"byte {blocks[2].offset}: the file ends at byte {cut} inside the block descriptor"
    assert expected in err
    assert json.loads(out)["records"] == blocks[0].records + blocks[1].records


def test_an_unreachable_target_exits_4(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = probe.getsockname()[1]
        code, _, err = run(
            ["replay", str(sample), "--target", f"ws://127.0.0.1:{port}", "--token", "t"], capsys
        )
    assert code == 4 and "cannot connect to ws://127.0.0.1" in err


def test_serve_replays_into_an_embedded_server(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["replay", str(sample), "--serve", "--port", "0", "--topspeed", "--linger", "0",
         "--json", "--loop", "2", "--rebase-time"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["loops"] == 2 and report["published_events"] == report["events"] > 0
    assert report["target"].startswith("the embedded server at 127.0.0.1:")


async def test_replay_into_a_running_server_and_a_refused_token(sample: Path) -> None:
    config = Config(port=0, heartbeat_s=3600, publish_token="the-token")
    command = [sys.executable, "-m", "ticker", "replay", str(sample), "--topspeed", "--json"]
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle: ServerHandle = await nursery.start(
                partial(serve, replace(config), run_venues=False, epoch=3)
            )
            target = ["--target", f"ws://127.0.0.1:{handle.port}"]
            refused = await trio.run_process(
                [*command, *target], capture_stdout=True, capture_stderr=True, check=False,
                env={"TICKER_REPLAY_TOKEN": "not-the-token", "PATH": ""},
            )  # fmt: skip
            assert refused.returncode == 4
            assert b"refused the token (HTTP 401)" in refused.stderr
            done = await trio.run_process(
                [*command, *target], capture_stdout=True, capture_stderr=True, check=False,
                env={"TICKER_REPLAY_TOKEN": "the-token", "PATH": ""},
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            report = json.loads(done.stdout)
            assert report["publish"]["events_acked"] == report["events"] > 0
            assert handle.context.stats.ingest_events == report["events"]
            handle.stop()


def test_record_writes_a_capture_that_replays_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rec.tcap"
    argv = ["record", "--venues", "cbx,itx", "--symbols", "BTC-USD,ETH-USD",
            "--duration", "1s", "--rate", "300", "--out", str(out)]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert "recorded" in err and "MB per million records" in err
    reader = CaptureReader(io.BytesIO(out.read_bytes()))
    assert reader.header.venues == ("cbx", "itx")
    assert reader.header.options["rate_per_s"] == 300
    records = list(reader.records())
    assert len(records) > 100
    assert [r.recv_ns for r in records] == sorted(r.recv_ns for r in records)
    code, _, err = run(argv, capsys)
    assert code == 2 and "exists; give --force" in err
    code, _, err = run(["replay", str(out), "--validate"], capsys)
    assert code == 0, err


def test_duration_and_time_parsers() -> None:
    assert parse_duration("60s") == 60 and parse_duration("5m") == 300
    assert parse_duration("500ms") == 0.5 and parse_duration("2") == 2
    with pytest.raises(ValueError):
        parse_duration("0s")
    assert parse_time_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_time_ns("1970-01-01T01:00:00+01:00") == 0
    assert parse_time_ns("1970-01-01T00:00:02") == 2_000_000_000


async def test_record_a_running_servers_stream(tmp_path: Path) -> None:
    out = tmp_path / "stream.tcap"
    config = Config(port=0, heartbeat_s=3600, venue_rate_per_s=200)
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            handle: ServerHandle = await nursery.start(partial(serve, config))
            done = await trio.run_process(
                [sys.executable, "-m", "ticker", "record", "--source",
                 f"ws://127.0.0.1:{handle.port}", "--duration", "1s", "--out", str(out)],
                capture_stderr=True, check=False,
            )  # fmt: skip
            handle.stop()
    assert done.returncode == 0, done.stderr
    assert b"from stream ws://127.0.0.1:" in done.stderr
    reader = CaptureReader(io.BytesIO(out.read_bytes()))
    assert reader.header.kind == "normalized"
    assert sum(1 for r in reader.records() if r.kind is RecordKind.EVENT) > 10


def test_record_from_an_unreachable_stream_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        out = tmp_path / "none.tcap"
        argv = ["record", "--source", f"ws://127.0.0.1:{port}", "--duration", "1s",
                "--out", str(out)]  # fmt: skip
        code, _, err = run(argv, capsys)
    assert code == 4 and "cannot open the stream" in err
    assert f"all attempts to connect to 127.0.0.1:{port} failed" in err
    assert "OSError(" not in err  # the reason, not an exception's repr
    # Nothing was recorded: no empty capture is left to be mistaken for a recording.
    assert f"nothing recorded, {out} not kept" in err
    assert not out.exists()


async def test_an_interrupted_recording_leaves_a_complete_capture(tmp_path: Path) -> None:
    import signal

    out = tmp_path / "interrupted.tcap"
    command = [sys.executable, "-m", "ticker", "record", "--duration", "60s", "--rate", "500",
               "--out", str(out), "--no-progress"]  # fmt: skip
    with trio.fail_after(DEADLINE_S):
        process = await trio.lowlevel.open_process(command, stderr=subprocess.DEVNULL)
        try:
            # The recorder writes a block at least every second: wait for the first.
            while not out.exists() or out.stat().st_size < 2_000:  # noqa: ASYNC110
                await trio.sleep(0.05)
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 130
        finally:
            process.kill()
    reader = CaptureReader(io.BytesIO(out.read_bytes()))
    records = list(reader.records())  # complete: the end marker is there
    assert reader.end is not None and reader.end.records == len(records) > 0


async def test_ctrl_c_on_a_lingering_embedded_server_exits_130_without_a_traceback(
    sample: Path,
) -> None:
    import signal

    command = [sys.executable, "-m", "ticker", "replay", str(sample), "--serve", "--port", "0",
               "--topspeed", "--linger", "inf", "--no-progress"]  # fmt: skip
    with trio.fail_after(DEADLINE_S):
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert process.stderr is not None
        err = b""
        try:
            while b"replay done; serving" not in err:
                chunk = await process.stderr.receive_some(4096)
                assert chunk, err.decode()
                err += chunk
            process.send_signal(signal.SIGINT)
            while chunk := await process.stderr.receive_some(4096):
                err += chunk
            code = await process.wait()
        finally:
            process.kill()
    text = err.decode()
    assert code == 130, text
    assert "Traceback" not in text and "ExceptionGroup" not in text
    assert "ticker replay: interrupted" in text


def test_a_raw_capture_of_a_venue_without_an_adapter_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "zzz.tcap"
    with path.open("wb") as file:
        writer = CaptureWriter(file, CaptureHeader("t", "test", ("zzz",), ("BTC-USD",)))
        writer.add(RecordKind.RAW, 1, "zzz", b"{}")
        writer.close()
    code, _, err = run(["replay", str(path), "--validate"], capsys)
    assert code == 3
    assert f"{path}: byte 0: raw records of venue zzz need an adapter" in err


def test_a_token_with_a_line_break_exits_2_without_showing_it(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["replay", str(sample), "--target", "ws://127.0.0.1:9", "--token", "s3cret\r\n"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "line break" in err and "s3cret" not in err


async def test_a_quiet_live_recording_is_still_flushed_on_time() -> None:
    sim = SimulatedVenues(("cbx",), ("BTC-USD",), seed=1, rate_per_s=0.001, start_ns=EPOCH_NS)
    header = simulated_header(
        sim, created_ns=EPOCH_NS, seed=1, rate_per_s=0.001, faults=None, normalized=False
    )
    writer = CaptureWriter(io.BytesIO(), header)
    recorder = Recorder(writer, sim, normalized=False, sink=lambda event: None)
    flushes: list[int] = []
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            record = partial(
                record_live, recorder, 3600.0, start_ns=EPOCH_NS,
                progress=lambda r: flushes.append(r.writer.bytes_written), flush_interval_s=0.02,
            )  # fmt: skip
            nursery.start_soon(record)
            while len(flushes) < 3:  # noqa: ASYNC110  # an arrival is due only every ~1000 s
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()


async def _replay_serving_until_signalled(
    sample: Path, *flags: str, wait_for: bytes
) -> tuple[int, str]:
    import signal

    command = [sys.executable, "-m", "ticker", "replay", str(sample), "--serve", "--port", "0",
               "--no-progress", *flags]  # fmt: skip
    with trio.fail_after(DEADLINE_S):
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert process.stderr is not None
        err = b""
        try:
            while wait_for not in err:
                chunk = await process.stderr.receive_some(4096)
                assert chunk, err.decode()
                err += chunk
            process.send_signal(signal.SIGTERM)
            while chunk := await process.stderr.receive_some(4096):
                err += chunk
            code = await process.wait()
        finally:
            process.kill()
    return code, err.decode()


async def test_sigterm_on_a_lingering_embedded_server_drains_it(sample: Path) -> None:
    code, text = await _replay_serving_until_signalled(
        sample, "--topspeed", "--linger", "inf", wait_for=b"replay done; serving"
    )
    assert code == 0, text
    assert "SIGTERM: draining (deadline" in text
    assert "drain done in" in text
    assert "replayed 3,000 records" in text
    assert "Traceback" not in text


async def test_sigterm_during_the_replay_drains_and_says_the_replay_was_cut(sample: Path) -> None:
    code, text = await _replay_serving_until_signalled(
        sample, "--speed", "0.01", wait_for=b"embedded server: ws://"
    )
    assert code == 130, text
    assert "SIGTERM: draining (deadline" in text and "drain done in" in text
    assert "ticker replay: SIGTERM before the replay was done; the server drained" in text
    assert "Traceback" not in text
