"""How believable the default simulated market is: crosses, locks and trade-throughs.

Runs the real venue pipeline (the three venue simulators -> their adapters -> the
consolidator) in simulated time for several seeds and prints, per symbol, the share of
quoted time the consolidated quote is crossed and locked, the duration of crosses
(p50, p99, max, in simulated ms), the share of trades printing through the
consolidated touch, and the mean consolidated spread (bp of the mid). Deterministic:
the same arguments print the same figures.

    .venv/bin/python benchmarks/bench_market.py \\
        [--seeds 1,2,3] [--minutes 10] [--rate 20]
"""

from __future__ import annotations

import argparse

from feeds.quality import SymbolQuality, measure_session


def _merge(into: SymbolQuality, more: SymbolQuality) -> None:
    into.quoted_ns += more.quoted_ns
    into.crossed_ns += more.crossed_ns
    into.locked_ns += more.locked_ns
    into.spread_bps_ns += more.spread_bps_ns
    into.crosses.extend(more.crosses)
    into.trades += more.trades
    into.trade_throughs += more.trade_throughs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated simulator seeds")
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes per seed")
    parser.add_argument("--rate", type=float, default=20.0, help="messages/s per venue")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    total: dict[str, SymbolQuality] = {}
    for seed in seeds:
        for symbol, quality in measure_session(
            seed, rate_per_s=args.rate, duration_s=args.minutes * 60
        ).items():
            _merge(total.setdefault(symbol, SymbolQuality()), quality)
    print(f"seeds {args.seeds}, {args.minutes:g} simulated min each, {args.rate:g} msg/s per venue")
    print(
        f"{'symbol':<9} {'crossed':>8} {'locked':>8} {'crosses':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'trades':>7} {'through':>8} {'spread bp':>9}"
    )
    overall = SymbolQuality()
    for symbol, q in sorted(total.items()):
        _merge(overall, q)
        print(_row(symbol, q))
    print(_row("all", overall))


def _row(name: str, q: SymbolQuality) -> str:
    return (
        f"{name:<9} {q.crossed_fraction:>8.2%} {q.locked_fraction:>8.2%} {len(q.crosses):>8} "
        f"{q.cross_percentile_ns(0.5) / 1e6:>7.0f} {q.cross_percentile_ns(0.99) / 1e6:>7.0f} "
        f"{max(q.crosses, default=0) / 1e6:>7.0f} {q.trades:>7} {q.trade_through_fraction:>8.1%} "
        f"{q.mean_spread_bps:>9.2f}"
    )


if __name__ == "__main__":
    main()
