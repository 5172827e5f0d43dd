"""Benchmark: one UTC day fetched by the ccxt source from the local fake exchange.

For Binance spot and Kraken formats: requests made (as the fake exchange counted them, per
endpoint), wall time and rows, for the day's one-minute candles and its trades, with ccxt's
rate limiter at the exchange's own spacing (what a real run waits) and at 1 ms (the cost of
paging, parsing and de-duplication alone). Nothing leaves 127.0.0.1.

    python benchmarks/ccxt_fetch.py [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cb_storage_dagster.sources.ccxt.source import CcxtMarketDataSource  # noqa: E402
from cb_storage_dagster_tests.support.fake_exchange import FakeExchange  # noqa: E402

DAY = dt.date(2024, 3, 1)
VENUES = {"binance": {}, "kraken": {"kraken:BTC": "BTC/USD"}}


def measure(exchange: str, overrides: dict[str, str], rate_limit_ms: float | None) -> list[dict]:
    results = []
    with FakeExchange() as fake:
        source = CcxtMarketDataSource(api_urls=fake.api_urls(), symbol_overrides=overrides, rate_limit_ms=rate_limit_ms)
        source.symbol_for(exchange, "BTC")
        for what, fetch in (("candles", source.fetch_ohlcv), ("trades", source.fetch_trades)):
            before = dict(fake.requests)
            start = time.perf_counter()
            rows = len(fetch(exchange, "BTC", DAY))
            seconds = time.perf_counter() - start
            made = {k: v - before.get(k, 0) for k, v in fake.requests.items() if v - before.get(k, 0)}
            results.append({"exchange": exchange, "data": what, "rate_limit_ms": rate_limit_ms or "ccxt default",
                            "rows": rows, "requests": sum(made.values()), "by_endpoint": made,
                            "seconds": round(seconds, 3)})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    import ccxt  # noqa: F401  (imported once up front: ~0.7 s that no fetch should be charged)

    results = []
    for exchange, overrides in VENUES.items():
        for rate_limit in (None, 1):
            results.extend(measure(exchange, overrides, rate_limit))
    print(f"\nA day ({DAY}) from the fake exchange through CcxtMarketDataSource (first call loads the markets)")
    print(f"{'exchange':<9} {'data':<8} {'rate limit':>13} {'rows':>6} {'requests':>9} {'seconds':>8}  endpoints")
    for r in results:
        print(f"{r['exchange']:<9} {r['data']:<8} {r['rate_limit_ms']!s:>13} {r['rows']:>6} {r['requests']:>9} "
              f"{r['seconds']:>8.2f}  {r['by_endpoint']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
