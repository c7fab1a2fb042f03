"""Records a conformance case from a real `ticker serve`: a WebSocket exchange whose
final expected state is the server's own `/v1/snapshot` at the same position.

It starts a server on 127.0.0.1 (or uses `--url`), subscribes over `/v1/ws`, records
the hello, the subscribe burst and live frames as they come, then asks `/v1/snapshot`
for the same patterns and keeps reading until the stream passes that document's
position. The case ends with the last frame at or before it; the state there is the
document's (see conformance/README.md, "Recorded cases", for why that is honest).
No client computes an expectation. Bounded: fixed frame counts, a deadline, the
server stopped on the way out.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import trio
from trio_websocket import open_websocket_url

from ticker.core.codec import decode_frame, encode_client, json_data
from ticker.core.messages import DataMessage, Heartbeat, Hello, ServerMessage, Subscribe

CASES_DIR = Path(__file__).resolve().parent / "cases"
TOPICS = ("quote.BTC-USD", "ticker.*", "trade.*", "book.SOL-USD")
LIVE_FRAMES = 40
"""Live frames to record before asking for the snapshot."""
MAX_FRAMES_AFTER = 400
"""Frames to read at most after the snapshot while looking for its position."""
DEADLINE_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(port: int) -> Iterator[None]:
    """A `ticker serve` on 127.0.0.1:port with frequent keyframes; stopped on exit."""
    cmd = [
        sys.executable,
        "-m",
        "ticker",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--venue-rate-per-s",
        "30",
        "--keyframe-interval",
        "5",
        "--log-level",
        "WARNING",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def _wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.05)
            continue
        await stream.aclose()
        return
    raise SystemExit(f"no server on 127.0.0.1:{port}")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _positions(messages: list[ServerMessage]) -> list[int]:
    """The offsets of a frame's messages that have a position (data, heartbeat)."""
    return [m.offset for m in messages if isinstance(m, DataMessage | Heartbeat)]


def _json_data(data: dict[str, Any]) -> dict[str, Any]:
    """The JSON form of message data; null fields dropped (null means gone)."""
    return {name: value for name, value in json_data(data).items() if value is not None}


def _note(frame: bytes) -> str:
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(frame)
    text = " ".join(json.dumps(m, separators=(",", ":")) for m in unpacker)
    return text if len(text) <= 300 else text[:297] + "..."


async def _record(base: str) -> dict[str, Any]:
    ws_url = base.replace("http://", "ws://") + "/v1/ws"
    frames: list[bytes] = []
    async with open_websocket_url(ws_url, subprotocols=["ticker.v1"]) as ws:
        await ws.send_message(encode_client(Subscribe(TOPICS, None)))
        hello_frame = await ws.get_message()
        assert isinstance(hello_frame, bytes)
        (hello,) = decode_frame(hello_frame)
        assert isinstance(hello, Hello), hello
        epoch = hello.epoch
        burst_frame = await ws.get_message()
        assert isinstance(burst_frame, bytes)
        burst = decode_frame(burst_frame)
        if not (len(burst) > 1 and isinstance(burst[-1], Heartbeat)):
            raise SystemExit("the first frame after the hello is not a burst: retry")
        while len(frames) < LIVE_FRAMES:
            frame = await ws.get_message()
            assert isinstance(frame, bytes)
            frames.append(frame)
        # The document is built without yielding: every snapshot in it reflects `position`.
        query = ",".join(TOPICS)
        document = await trio.to_thread.run_sync(_get_json, f"{base}/v1/snapshot?topics={query}")
        doc_epoch, doc_offset = (int(x) for x in document["position"].split("-"))
        if doc_epoch != epoch:
            raise SystemExit("the server's epoch changed: retry")
        for _ in range(MAX_FRAMES_AFTER):
            frame = await ws.get_message()
            assert isinstance(frame, bytes)
            frames.append(frame)
            if min(_positions(decode_frame(frame)), default=0) > doc_offset:
                break
        else:
            raise SystemExit("the stream did not pass the snapshot's position: retry")
    kept = frames[: _cut([_positions(decode_frame(f)) for f in frames], doc_offset)]
    return _case(hello_frame, burst_frame, kept, epoch, document)


def _cut(units: list[list[int]], doc_offset: int) -> int:
    """How many units lie wholly at or before the document's position; the next one
    (kept out) starts after it, so no message of these topics lies between the last
    kept unit and that position.

    Raises:
        SystemExit: a unit straddles the position, or none is before it (run again).
    """
    for i, positions in enumerate(units):
        if min(positions) > doc_offset:
            if i == 0:
                raise SystemExit("no live unit before the snapshot's position: retry")
            return i
        if max(positions) > doc_offset:
            raise SystemExit("a unit straddles the snapshot's position: retry")
    raise SystemExit("the stream did not pass the snapshot's position: retry")


def _case(
    hello_frame: bytes, burst_frame: bytes, live: list[bytes], epoch: int, document: Any
) -> dict[str, Any]:
    burst = decode_frame(burst_frame)
    closing = burst[-1]
    assert isinstance(closing, Heartbeat)
    snaps = [m for m in burst if isinstance(m, DataMessage)]
    steps: list[dict[str, Any]] = [
        {"connect": {"resume": None}},
        {
            "ws": base64.b64encode(hello_frame).decode(),
            "note": _note(hello_frame),
            "expect": {
                "updates": [],
                "resync": False,
                "refusal": None,
                "resume": None,
                "state": {},
            },
        },
        {
            "ws": base64.b64encode(burst_frame).decode(),
            "note": _note(burst_frame),
            # The burst is the server's own snapshot at its heartbeat's position.
            "expect": {
                "updates": [_update(m, epoch) for m in snaps],
                "resync": False,
                "refusal": None,
                "resume": f"{epoch}-{closing.offset}",
                "state": {m.topic: {"seq": m.seq, "data": _state(m.data)} for m in snaps},
            },
        },
    ]
    steps += [{"ws": base64.b64encode(f).decode(), "note": _note(f)} for f in live[:-1]]
    last = live[-1]
    messages = decode_frame(last)
    state = _document_state(document)
    steps.append(
        {
            "ws": base64.b64encode(last).decode(),
            "note": _note(last),
            "expect": {
                "updates": [_update(m, epoch) for m in messages if isinstance(m, DataMessage)],
                "resync": False,
                "refusal": None,
                "resume": f"{epoch}-{_positions(messages)[-1]}",
                "state": state,
            },
        }
    )
    steps.append({"connect": {"resume": f"{epoch}-{_positions(messages)[-1]}"}})
    live_messages = [m for f in live for m in decode_frame(f) if isinstance(m, DataMessage)]
    keyframes = sum(1 for m in live_messages if m.snapshot)
    return {
        "name": "recorded-ws-live",
        "about": (
            f"Recorded from a real `ticker serve` (conformance/record.py, --keyframe-interval "
            f"5) subscribing to {','.join(TOPICS)}: the hello, the subscribe burst "
            f"({len(snaps)} snapshots, resume at its heartbeat), then {len(live)} live "
            f"frames ({len(live_messages)} messages, {keyframes} of them snapshots in the "
            f"stream: keyframes or topics' first messages). The burst's expected state is "
            f"the burst itself; the final state is the server's /v1/snapshot at "
            f"{document['position']}: no message of these topics lies between the last "
            f"frame and that position (the next frame starts after it)."
        ),
        "transport": "ws",
        "steps": steps,
    }


def _state(data: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's data as a client holds it: JSON form, without a book's checksum
    (carried by the message, not part of the state)."""
    return {k: v for k, v in _json_data(data).items() if k != "checksum"}


def _document_state(document: Any) -> dict[str, Any]:
    """The expected state: /v1/snapshot's own snapshots (null fields: gone; a book's
    checksum is not part of the state)."""
    return {
        s["topic"]: {
            "seq": s["seq"],
            "data": {k: v for k, v in s["data"].items() if v is not None and k != "checksum"},
        }
        for s in document["snapshots"]
    }


def _update(message: DataMessage, epoch: int) -> dict[str, Any]:
    """A live stream without loss: a snapshot (burst, first message, keyframe) or delta."""
    return {
        "kind": "snapshot" if message.snapshot else "delta",
        "topic": message.topic,
        "seq": message.seq,
        "position": f"{epoch}-{message.offset}",
        "skipped": 0,
        "loss": None,
    }


# -- SSE ------------------------------------------------------------------------------


class _SseReader:
    """Events of an HTTP/1.0 event stream (no chunks: the body is the events as sent)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._buffer = b""
        self._head_done = False

    async def event(self) -> str:
        """The next event's text, blank-line terminated (`retry:` included as one)."""
        while True:
            if not self._head_done and b"\r\n\r\n" in self._buffer:
                head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
                if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
                    raise SystemExit(f"SSE refused: {head[:200]!r}")
                self._head_done = True
            if self._head_done and b"\n\n" in self._buffer:
                text, self._buffer = self._buffer.split(b"\n\n", 1)
                return text.decode("utf-8") + "\n\n"
            data = await self._stream.receive_some(65536)
            if not data:
                raise SystemExit("the SSE stream ended")
            self._buffer += data


def _fields(event: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in event.splitlines():
        name, _, value = line.partition(": ")
        out[name] = value
    return out


async def _unit(reader: _SseReader) -> list[str]:
    """Events up to and including the next one with an `id:` (a resumable unit)."""
    events = []
    for _ in range(10_000):
        event = await reader.event()
        events.append(event)
        if "id" in _fields(event):
            return events
    raise SystemExit("10,000 events without an id:")


def _sse_positions(events: list[str]) -> list[int]:
    out = []
    for event in events:
        fields = _fields(event)
        if fields.get("event") in ("snapshot", "delta", "heartbeat"):
            out.append(int(json.loads(fields["data"])["offset"]))
    return out


def _sse_updates(events: list[str], epoch: int) -> list[dict[str, Any]]:
    out = []
    for event in events:
        fields = _fields(event)
        if fields.get("event") in ("snapshot", "delta"):
            data = json.loads(fields["data"])
            out.append(
                {
                    "kind": fields["event"],
                    "topic": data["topic"],
                    "seq": data["seq"],
                    "position": f"{epoch}-{data['offset']}",
                    "skipped": 0,
                    "loss": None,
                }
            )
    return out


async def _record_sse(base: str) -> dict[str, Any]:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        query = ",".join(TOPICS)
        request = f"GET /v1/sse?topics={query} HTTP/1.0\r\nHost: {host}\r\n\r\n"
        await stream.send_all(request.encode())
        reader = _SseReader(stream)
        opening = [await reader.event(), await reader.event()]  # retry:, hello
        hello = json.loads(_fields(opening[1])["data"])
        epoch = int(hello["epoch"])
        burst = await _unit(reader)
        if _fields(burst[-1]).get("event") != "heartbeat" or len(burst) < 2:
            raise SystemExit("the first unit after the hello is not a burst: retry")
        units = [await _unit(reader) for _ in range(LIVE_FRAMES)]
        document = await trio.to_thread.run_sync(_get_json, f"{base}/v1/snapshot?topics={query}")
        doc_epoch, doc_offset = (int(x) for x in document["position"].split("-"))
        if doc_epoch != epoch:
            raise SystemExit("the server's epoch changed: retry")
        for _ in range(MAX_FRAMES_AFTER):
            units.append(await _unit(reader))
            if min(_sse_positions(units[-1])) > doc_offset:
                break
    kept = units[: _cut([_sse_positions(u) for u in units], doc_offset)]
    burst_position = _sse_positions(burst)[-1]
    burst_state = {}
    for event in burst[:-1]:
        data = json.loads(_fields(event)["data"])
        clean = {k: v for k, v in data["data"].items() if v is not None}
        burst_state[data["topic"]] = {"seq": data["seq"], "data": clean}
    last = kept[-1]
    resume = f"{epoch}-{_sse_positions(last)[-1]}"
    steps: list[dict[str, Any]] = [
        {"connect": {"resume": None}},
        {"sse": "".join(opening), "expect": _expect([], None, {})},
        {
            "sse": "".join(burst),
            "expect": _expect(_sse_updates(burst, epoch), f"{epoch}-{burst_position}", burst_state),
        },
    ]
    steps += [{"sse": "".join(u)} for u in kept[:-1]]
    steps.append(
        {
            "sse": "".join(last),
            "expect": _expect(_sse_updates(last, epoch), resume, _document_state(document)),
        }
    )
    steps.append({"connect": {"resume": resume}})
    return {
        "name": "recorded-sse-live",
        "about": (
            f"Recorded from a real `ticker serve` (conformance/record.py) over SSE "
            f"(HTTP/1.0, so the body is the events as sent) for {query}: the retry: and "
            f"hello events, the subscribe burst ({len(burst) - 1} snapshot events without "
            f"id:, a heartbeat with one), then {len(kept)} live units. The burst's "
            f"expected state is the burst itself; the final state is the server's "
            f"/v1/snapshot at {document['position']}: no event of these topics lies "
            f"between the last unit and that position (the next unit starts after it)."
        ),
        "transport": "sse",
        "steps": steps,
    }


def _expect(updates: list[dict[str, Any]], resume: str | None, state: Any) -> dict[str, Any]:
    return {"updates": updates, "resync": False, "refusal": None, "resume": resume, "state": state}


async def _main(url: str | None) -> list[dict[str, Any]]:
    with trio.fail_after(DEADLINE_S):
        if url is not None:
            base = url.rstrip("/")
            return [await _record(base), await _record_sse(base)]
        port = _free_port()
        with _server(port):
            await _wait_listening(port)
            await trio.sleep(2.0)  # let the venues publish a first state of every topic
            base = f"http://127.0.0.1:{port}"
            return [await _record(base), await _record_sse(base)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an already running server, e.g. http://127.0.0.1:8080")
    args = parser.parse_args()
    for case in trio.run(_main, args.url):
        path = CASES_DIR / f"{case['name']}.json"
        path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path} ({len(case['steps'])} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
