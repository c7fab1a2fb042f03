"""Settings for the whole suite.

Hypothesis' per-example deadline is a timed assertion: on a shared, loaded machine a
correct example can take 300 ms, and the test would fail for the machine's sake. The
house rule is no timed assertions, so no test has a deadline; bounds on work are
counts (max_examples), not time.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("ticker", deadline=None)
settings.load_profile("ticker")
