"""`ticker tail`: JSON lines when piped, a table updating in place on a terminal."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest
import trio
from rich.console import Console

from tests.client.conftest import free_port, start_server, until
from ticker.cli import build_parser, main
from ticker.client import FeedConfigError, Position, Update, UpdateKind
from ticker.client.updates import Loss
from ticker.model.events import Quote, TakerSide, Trade
from ticker.server.process import ServerHandle
from ticker.tail import Board, JsonLines, LiveTable, tail, tail_urls, update_json


async def publish_quotes(server: ServerHandle, count: int) -> None:
    for i in range(count):
        await server.publish(
            Quote("cbx", "BTC-USD", i, 43_250_500_000_000 + i, 10**9, 43_251 * 10**9, 1)
        )
    await until(lambda: server.context.stats.ingest_events >= count)


async def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(30):
        return await trio.run_process(
            [sys.executable, "-m", "ticker", "tail", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


@pytest.mark.usefixtures("deadline")
@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_piped_tail_writes_one_json_line_per_update(
    nursery: trio.Nursery, transport: str
) -> None:
    server = await start_server(nursery)
    await publish_quotes(server, 1)
    extra = ["--sse"] if transport == "sse" else []
    url = f"ws://127.0.0.1:{server.port}"

    async def keep_publishing() -> None:
        for i in range(1000):
            side = TakerSide.BUY
            await server.publish(Trade("fxa", "BTC-USD", i, 43_250 * 10**9, 10**8, side, f"t{i}"))
            await trio.sleep(0.01)

    nursery.start_soon(keep_publishing)
    done = await run_cli(url, "--topics", "quote.*,trade.*", "--count", "4", *extra)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(lines) == 4
    first = lines[0]
    assert first["kind"] == "snapshot" and first["topic"] == "quote.BTC-USD"
    assert first["data"]["bid"] == "43250.5"  # exact decimal strings, never floats
    assert first["position"].startswith("7-")
    assert all(line["kind"] in ("snapshot", "delta") for line in lines)
    server.stop()


@pytest.mark.usefixtures("deadline")
async def test_on_a_terminal_tail_redraws_a_table_in_place(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    await publish_quotes(server, 3)
    screen = io.StringIO()
    table = LiveTable(Console(file=screen, force_terminal=True, width=140), "ticker tail")

    async def more() -> None:
        await trio.sleep(0.3)
        await publish_quotes(server, 6)

    nursery.start_soon(more)
    seen = await tail(f"ws://127.0.0.1:{server.port}", "quote.*", table, count=4)
    assert seen == 4
    text = screen.getvalue()
    assert "BTC-USD" in text and "43250.50000" in text
    assert "connected | position 7-" in text
    assert text.count("\x1b[2K") > 1  # lines erased and drawn again: updated in place
    server.stop()


def test_bad_arguments_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tail", "ws://127.0.0.1:9", "--topics", "qoute.*"]) == 2
    assert "unknown channel 'qoute'" in capsys.readouterr().err
    assert main(["tail", "ftp://127.0.0.1:9"]) == 2
    assert "scheme must be" in capsys.readouterr().err


def test_tail_takes_several_urls_of_one_transport() -> None:
    args = build_parser().parse_args(["tail", "ws://a:1", "ws://b:2/v1/ws", "--topics", "book.*"])
    assert args.url == ["ws://a:1", "ws://b:2/v1/ws"] and args.topics == "book.*"
    assert build_parser().parse_args(["tail", "ws://a:1"]).url == ["ws://a:1"]
    assert tail_urls(args.url) == ["ws://a:1", "ws://b:2/v1/ws"]
    # --sse reads each one's SSE endpoint (ws and http URLs alike).
    assert tail_urls(["ws://a:1", "http://b:2"], sse=True) == [
        "http://a:1/v1/sse",
        "http://b:2/v1/sse",
    ]
    with pytest.raises(FeedConfigError, match="TLS"):
        tail_urls(["wss://a", "ws://b"], sse=True)


def test_tail_refuses_urls_that_mix_transports(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tail", "ws://127.0.0.1:9", "http://127.0.0.1:9"]) == 2
    assert "same transport" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: at least one URL
        build_parser().parse_args(["tail", "--topics", "quote.*"])


@pytest.mark.usefixtures("deadline")
async def test_piped_tail_passes_over_a_dead_first_url(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    await publish_quotes(server, 3)
    dead = f"ws://127.0.0.1:{free_port()}"
    done = await run_cli(
        dead, f"ws://127.0.0.1:{server.port}", "--topics", "quote.*", "--count", "1"
    )
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert line["kind"] == "snapshot" and line["topic"] == "quote.BTC-USD"
    server.stop()


@pytest.mark.usefixtures("deadline")
async def test_the_table_says_which_url_it_is_connected_to(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    await publish_quotes(server, 3)
    screen = io.StringIO()
    table = LiveTable(Console(file=screen, force_terminal=True, width=250), "ticker tail")
    live = f"ws://127.0.0.1:{server.port}/v1/ws"
    seen = await tail([f"ws://127.0.0.1:{free_port()}", live], "quote.*", table, count=1)
    assert seen == 1
    assert f"connected to {live} | position 7-" in screen.getvalue()
    server.stop()


def update(kind: UpdateKind, topic: str, state: dict[str, object], **extra: object) -> Update:
    fields: dict[str, object] = {
        "kind": kind,
        "topic": topic,
        "seq": 5,
        "position": Position(8, 40),
        "ts_us": 1,
        "latency_s": 0.0012,
        "data": state,
        "state": state,
    }
    fields.update(extra)
    return Update(**fields)  # type: ignore[arg-type]


def test_json_lines_say_what_was_lost_and_the_board_marks_the_row() -> None:
    loss = Loss(Position(7, 10), Position(8, 40), "other_epoch")
    reset = update(UpdateKind.RESET, "quote.ETH-USD", {"bid": 3_120_250_000_000}, loss=loss)
    line = json.loads(update_json(reset, with_state=True))
    assert line["kind"] == "reset"
    assert line["loss"] == {"after": "7-10", "until": "8-40", "reason": "other_epoch"}
    assert line["data"] == line["state"] == {"bid": "3120.25"}
    assert line["latency_ms"] == 1.2
    out = io.StringIO()
    JsonLines(out).add(reset)
    assert out.getvalue().endswith("}\n")
    now = [100.0]
    board = Board(clock=lambda: now[0])
    board.add(reset)
    board.add(update(UpdateKind.DELTA, "ticker.ETH-USD", {"change": -5 * 10**8, "last": 10**9}))
    board.add(update(UpdateKind.DELTA, "book.ETH-USD", {"bids": [[1, 2], [0, 1]], "asks": []}))

    def render() -> str:
        console = Console(file=io.StringIO(), width=160)
        console.print(board.table("t", "c"))
        assert isinstance(console.file, io.StringIO)
        return console.file.getvalue()

    text = render()
    assert "ETH-USD RESET" in text and "3120.25" in text and "-0.5" in text and "2x0" in text
    now[0] += 10  # the mark fades after RESET_MARK_S
    assert "RESET" not in render()


def _market_board() -> Board:
    """A board as the default topics fill it: quote, ticker and trade, no book."""
    board = Board(clock=lambda: 0.0)
    n = 10**9
    rows = {
        # symbol: bid, ask, sizes, last, change, volume (nanos)
        "BTC-USD": (63_990_010_000_000, 63_999_620_000_000, 1_234_500_000, 63_995 * n, -5_010 * n // 1000, 16_543_210_000_000),  # noqa: E501
        "DOGE-USD": (123_450_000, 123_470_000, 2_150_000 * n, 123_460_000, 10_000, 987_654_321 * n),
        "ETH-USD": (3_199_010_000_000, 3_199_600_000_000, 30 * n, 3_199_300_000_000, 0, 1_234_567 * n),  # noqa: E501
        "XRP-USD": (519_800_000, 520_000_000, 55_000 * n, 519_900_000, -100_000, 75_000_000 * n),
    }  # fmt: skip
    for symbol, (bid, ask, size, last, change, volume) in rows.items():
        quote: dict[str, object] = {"bid": bid, "bid_size": size, "ask": ask, "ask_size": size + n}
        board.add(update(UpdateKind.SNAPSHOT, f"quote.{symbol}", quote))
        ticker: dict[str, object] = {"last": last, "change": change, "volume": volume}
        board.add(update(UpdateKind.SNAPSHOT, f"ticker.{symbol}", ticker))
        trade: dict[str, object] = {"price": ask, "size": size // 5, "side": "buy"}
        board.add(update(UpdateKind.SNAPSHOT, f"trade.{symbol}", trade))
    return board


def _render(board: Board, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, force_terminal=False)
    console.print(board.table("ticker tail ws://127.0.0.1:8080", "connected", width))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_a_narrow_terminal_drops_columns_and_never_cuts_a_price(width: int) -> None:
    lines = _render(_market_board(), width)
    text = "\n".join(lines)
    assert all(len(line) <= width for line in lines)
    assert "…" not in text and "..." not in text
    # Every price whole, with its symbol's decimals (BTC to the cent, DOGE to 5).
    for price in ("63990.01", "63999.62", "0.12345", "0.12347", "3199.01", "3199.60"):
        assert price in text, (width, price)
    # With the default topics there is no book: no empty book column.
    assert " book" not in text
    header = next(line for line in lines if "symbol" in line)
    if width == 80:
        assert "ms" not in header.split() and "bid" in header.split()
    else:
        assert "last" in header.split() and "volume" in header.split()


def test_prices_are_aligned_on_the_decimal_point() -> None:
    lines = _render(_market_board(), 120)
    rows = [line for line in lines if line.split() and line.split()[0].endswith("-USD")]
    assert len(rows) == 4
    # BTC 63990.01, DOGE 0.12345, ETH 3199.01, XRP 0.5198: one column for the points.
    points = {row.index(".") for row in rows}
    assert len(points) == 1, rows
    # Sizes too: 1.2345 above 2150000 (whose point would follow its last digit).
    btc, doge = rows[0], rows[1]
    size_point = btc.index(".", btc.index(".") + 1)
    assert doge[size_point - 7 : size_point] == "2150000" and doge[size_point] == " "


async def signal_tail(
    args: list[str], ready: Callable[[bytes, bytes], bool], signum: signal.Signals
) -> tuple[int, str, str]:
    """Start `ticker tail ARGS`, send `signum` once `ready(stdout, stderr)`; the exit
    code, stdout and stderr (the process is killed if it has not ended by the deadline)."""
    command = [sys.executable, "-m", "ticker", "tail", *args]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out = {"stdout": b"", "stderr": b""}
    got = trio.Event()

    async def read(name: str, stream: trio.abc.ReceiveStream) -> None:
        nonlocal got
        while chunk := await stream.receive_some(65536):
            out[name] += chunk
            got.set()
            got = trio.Event()

    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                assert process.stdout is not None and process.stderr is not None
                nursery.start_soon(read, "stdout", process.stdout)
                nursery.start_soon(read, "stderr", process.stderr)
                while not ready(out["stdout"], out["stderr"]):
                    await got.wait()
                process.send_signal(signum)
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return code, out["stdout"].decode(), out["stderr"].decode()


@pytest.mark.usefixtures("deadline")
@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "interrupted (SIGINT)"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
)
async def test_a_signal_stops_a_streaming_tail_with_its_exit_code_and_a_message(
    nursery: trio.Nursery, signum: signal.Signals, code: int, said: str
) -> None:
    # Taken through trio's signal receiver: not a KeyboardInterrupt that a finalizer
    # could swallow, nor SIGTERM's default (killed, no message, no last table).
    server = await start_server(nursery)
    await publish_quotes(server, 1)
    url = f"ws://127.0.0.1:{server.port}"
    ended, out, err = await signal_tail(
        [url, "--topics", "quote.*"], lambda stdout, _: b"\n" in stdout, signum
    )
    assert ended == code, err
    assert err.strip().splitlines()[-1] == f"ticker tail: {said}"
    assert "Traceback" not in err
    assert json.loads(out.splitlines()[0])["topic"] == "quote.BTC-USD"
    server.stop()


@pytest.mark.usefixtures("deadline")
async def test_sigint_stops_a_tail_waiting_between_dead_urls() -> None:
    # Nothing listens: the feed connects, fails, moves to the next URL and backs off.
    dead = [f"ws://127.0.0.1:{free_port()}" for _ in range(2)]
    ended, out, err = await signal_tail(
        [*dead, "--log-level", "INFO"],
        lambda _, stderr: stderr.count(b"feed: moving from") >= 2,
        signal.SIGINT,
    )
    assert ended == 130, err
    assert err.strip().splitlines()[-1] == "ticker tail: interrupted (SIGINT)"
    assert "Traceback" not in err and out == ""
