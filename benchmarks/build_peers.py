"""Builds the floor references for bench_fanout.py from ../shared/bench-peers (not committed).

Copies the C epoll server (servers/cfanout.c) and the raw trio server (servers/raw_trio.py,
servers/common.py) from the bench-peers folder (`--from`, or $TICKER_BENCH_PEERS, default
/work/shared/bench-peers) into a build folder outside the repository ($TMPDIR/
ticker-bench-peers-<uid>: their Python is not ours to lint or type-check) and compiles the
C server there with gcc -O2. The only change made to their code: cfanout's fixed payload
size (120 bytes) is set to ticker's quote delta size (PEER_PAYLOAD), so both send the same
bytes per message.

    .venv/bin/python benchmarks/build_peers.py [--from DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

OUT = Path(tempfile.gettempdir()) / f"ticker-bench-peers-{os.getuid()}"
DEFAULT_SOURCE = Path(os.environ.get("TICKER_BENCH_PEERS", "/work/shared/bench-peers"))
PEER_PAYLOAD = 56
"""Bytes per message: ticker's quote delta is 56 bytes of msgpack (see fanout_server.py)."""
CFANOUT_PAYLOAD_LINE = "#define PAYLOAD 120"


class PeersMissing(RuntimeError):
    """The bench-peers folder, or a file the build needs, is not there."""


@dataclass(frozen=True, slots=True)
class Peers:
    """Where the built references are."""

    cfanout: Path
    raw_trio: Path
    gcc: str


def build(source: Path = DEFAULT_SOURCE) -> Peers:
    """Copy and compile the references into the build folder (OUT).

    Args:
        source: the bench-peers folder (read only; nothing is written there).

    Returns:
        The paths of the C server binary and the raw trio server script, and gcc's version.

    Raises:
        PeersMissing: a source file is missing, or cfanout.c no longer has the line set.
        subprocess.CalledProcessError: gcc failed.
    """
    servers = source / "servers"
    wanted = [servers / name for name in ("cfanout.c", "raw_trio.py", "common.py")]
    missing = [str(path) for path in wanted if not path.is_file()]
    if missing:
        raise PeersMissing(f"bench-peers files missing: {', '.join(missing)}")
    OUT.mkdir(parents=True, exist_ok=True)
    c_source = servers.joinpath("cfanout.c").read_text()
    if CFANOUT_PAYLOAD_LINE not in c_source:
        raise PeersMissing(f"cfanout.c has no {CFANOUT_PAYLOAD_LINE!r} to set the payload size")
    patched = OUT / "cfanout.c"
    patched.write_text(
        c_source.replace(CFANOUT_PAYLOAD_LINE, f"#define PAYLOAD {PEER_PAYLOAD}  /* ticker's */")
    )
    binary = OUT / "cfanout"
    command = ["gcc", "-O2", "-Wall", "-o", str(binary), str(patched)]
    subprocess.run(command, check=True, timeout=120)
    for name in ("raw_trio.py", "common.py"):
        shutil.copyfile(servers / name, OUT / name)
    version = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True)
    return Peers(binary, OUT / "raw_trio.py", f"gcc {version.stdout.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", type=Path, default=DEFAULT_SOURCE)
    peers = build(parser.parse_args().source)
    print(f"{peers.cfanout}\n{peers.raw_trio}\n{peers.gcc}")


if __name__ == "__main__":
    main()
