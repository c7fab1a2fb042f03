"""Train ticker's zstd dictionary on messages from the simulated venues.

`python -m feeds.zdict` runs the three venues (seed 1) through the real adapters and
hub, and trains a 4 KiB dictionary on the encoded messages (deltas, keyframes and
trades as published), written to ticker/data/ticker-v1.zdict. Deterministic: the same
code gives the same bytes. Retrain only with a new dictionary id and file name, since
clients must hold the same dictionary.
"""

from __future__ import annotations

import sys
from pathlib import Path

from feeds.drive import make_run
from ticker.config import Config
from ticker.core.compression import DICTIONARY_FILE, train_dictionary
from ticker.core.hub import Hub
from ticker.model.events import NormalizedEvent

SAMPLES = 30_000


def sample_messages(count: int = SAMPLES, seed: int = 1) -> list[bytes]:
    """Encoded messages as the hub publishes them, from all three simulated venues."""
    hub = Hub(Config(), epoch=1)
    samples: list[bytes] = []

    def sink(event: NormalizedEvent, now_ns: int) -> None:
        samples.extend(item.payload for item in hub.publish(event, now_ns))

    runs = [make_run(venue, seed, sink=sink) for venue in ("cbx", "fxa", "itx")]
    while len(samples) < count:
        for run in runs:
            run.run(50)
    return samples[:count]


def main() -> int:
    target = Path(__file__).resolve().parent.parent / "ticker" / "data" / DICTIONARY_FILE
    dictionary = train_dictionary(sample_messages())
    target.write_bytes(dictionary)
    print(f"wrote {len(dictionary)} bytes to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
