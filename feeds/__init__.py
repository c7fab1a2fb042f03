"""Synthetic venues for ticker: deterministic market simulators and fault injection.

`feeds.universe` is the instrument table, `feeds.market` the shared price path and
per-venue book dynamics, `feeds.simulator.make_simulator` builds one venue speaking
its native wire format, `feeds.faults` wraps it with reproducible faults. Pure: no
clocks, no global randomness, no I/O.
"""
