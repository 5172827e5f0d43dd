"""The dagster-deltalake-pandas side of the benchmark (runs in its own virtualenv).

dagster-deltalake-pandas needs pandas<3, so it cannot share the product's environment:
``bench.py`` builds ``benchmarks/.venv-ddl`` and runs this script there, on the same
generated data (a Parquet file it wrote), and reads one JSON object from stdout.

Usage: python ddl_side.py SPEC.json   (see ``bench.py: run_ddl_side``)
"""

import json
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    import dagster as dg
    import pandas as pd
    from dagster_deltalake import LocalConfig
    from dagster_deltalake_pandas import DeltaLakePandasIOManager

    frame = pd.read_parquet(spec["data"])  # one instrument, `days` days of 1-minute candles
    frame["instrument"] = frame["exchange"] + ":" + frame["coin"]
    frame["date"] = frame["timestamp"].dt.tz_convert("UTC").dt.date  # a Delta `date` column
    days = sorted({d.isoformat() for d in frame["date"]})
    day_keys = frame["date"].map(lambda d: d.isoformat())
    instrument = frame["instrument"].iloc[0]
    parts = dg.MultiPartitionsDefinition({
        "date": dg.DailyPartitionsDefinition(start_date=days[0], timezone="UTC"),
        "instrument": dg.StaticPartitionsDefinition([instrument]),
    })

    @dg.asset(partitions_def=parts, key_prefix=["bench"],
              metadata={"partition_expr": {"date": "date", "instrument": "instrument"}})
    def candles(context: dg.AssetExecutionContext) -> pd.DataFrame:
        keys = context.partition_keys
        wanted = {k.split("|")[0] for k in keys}
        return frame[day_keys.isin(wanted)].reset_index(drop=True)

    io_manager = DeltaLakePandasIOManager(root_uri=spec["root"], storage_options=LocalConfig())
    instance = dg.DagsterInstance.ephemeral()

    def materialize_day(day: str) -> None:
        result = dg.materialize([candles], partition_key=f"{day}|{instrument}",
                                resources={"io_manager": io_manager}, instance=instance,
                                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        assert result.success

    out: dict = {}
    materialize_day(days[0])  # warm-up (creates the table)
    samples = []
    for i in range(spec["repeats"]):
        day = days[(i + 1) % len(days)]
        start = time.perf_counter()
        materialize_day(day)
        samples.append((time.perf_counter() - start) * 1000)
    out["write_one_day_ms"] = statistics.median(samples)
    out["write_one_day_samples"] = samples

    # Reads: load a range of days through the IO manager's load_input (correctness check).
    for day in days[: spec["read_days"]]:
        materialize_day(day)
    reads = {}
    loader = io_manager.create_io_manager(dg.build_init_resource_context())
    for n in spec["read_sizes"]:
        if n > spec["read_days"]:
            continue
        up = dg.build_output_context(asset_key=dg.AssetKey(["bench", "candles"]),
                                     definition_metadata={"partition_expr": {"date": "date", "instrument": "instrument"}})
        ctx = dg.build_input_context(
            upstream_output=up, asset_key=dg.AssetKey(["bench", "candles"]), asset_partitions_def=parts,
            asset_partition_key_range=dg.PartitionKeyRange(f"{days[0]}|{instrument}", f"{days[n - 1]}|{instrument}"),
            dagster_type=dg.DagsterType(lambda _, __: True, name="Any"),
            definition_metadata={"partition_expr": {"date": "date", "instrument": "instrument"}},
            resource_config={"root_uri": spec["root"], "storage_options": {"local": {}}},
        )
        times, rows = [], None
        for _ in range(spec["read_repeats"]):
            start = time.perf_counter()
            try:
                loaded = loader.load_input(ctx)
                rows = len(loaded)
            except Exception as exc:  # report, do not hide: the row check shows it
                rows = f"error: {type(exc).__name__}: {str(exc)[:200]}"
            times.append((time.perf_counter() - start) * 1000)
        reads[str(n)] = {"ms": statistics.median(times), "rows": rows}
    out["reads"] = reads
    import importlib.metadata as md

    out["versions"] = {p: md.version(p) for p in ("dagster", "dagster-deltalake-pandas", "deltalake", "pandas", "pyarrow")}
    print("DDL-RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
