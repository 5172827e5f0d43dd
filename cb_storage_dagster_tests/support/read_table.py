"""A short script that reads Delta data and exits: ``python -m cb_storage_dagster_tests.support.read_table``.

It reads the ``ohlcv`` table of the ``CB_STORAGE_*`` storage through the storage manager
(range read, listings) and also with a threaded ``DeltaTable.to_pyarrow_table()``: the call
after which delta-rs most often aborts at interpreter exit (issue 2184). It prints one JSON
line and ends through :func:`cb_storage_dagster.entrypoint.run_and_exit`, as every entry point
of the product does; ``--plain-exit`` ends with a normal interpreter exit instead, to measure
the upstream abort.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

UTC = dt.timezone.utc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plain-exit", action="store_true")
    parser.parse_args(argv)  # --plain-exit is read before main() runs

    from deltalake import DeltaTable

    from cb_storage_dagster.storage import StorageConfig

    manager = StorageConfig.load().build_manager()
    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
    frame = manager.get_range(key, dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 2, 1, tzinfo=UTC))
    dates = manager.list_dates("binance", "BTC", "ohlcv")
    backend = manager.backend
    threaded = DeltaTable(manager.table_uri("ohlcv"), storage_options=backend.get_storage_options()).to_pyarrow_table()
    print(json.dumps({"rows": len(frame), "days": len(dates), "threaded_rows": threaded.num_rows}))
    return 0


if __name__ == "__main__":
    if "--plain-exit" in sys.argv:
        sys.exit(main())
    from cb_storage_dagster.entrypoint import run_and_exit

    run_and_exit(main)
