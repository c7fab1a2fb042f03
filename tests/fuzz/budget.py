"""The fuzzers' budget: small and reproducible in CI, raised by an environment variable.

`TICKER_FUZZ_EXAMPLES` sets the examples per fuzzer (default 200). Runs are
derandomized (the same inputs every run, from the test's name) and keep no example
database, so CI fails or passes the same way each time; `TICKER_FUZZ_RANDOM=1` draws new
inputs each run instead (a failure prints the blob that reproduces it).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("TICKER_FUZZ_EXAMPLES", "200"))
RANDOM = os.environ.get("TICKER_FUZZ_RANDOM", "") == "1"

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

# msgpack-shaped values: what a hostile peer can put in any msgpack decoder we expose.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # what msgpack carries
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), inner, max_size=4)
    ),
    max_leaves=30,
)
