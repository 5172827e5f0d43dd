"""Independent SQL engines read exactly the rows the storage API reads (issue 19, extra ``[query]``).

DuckDB (``delta`` extension, through :func:`cb_storage_dagster.query.duckdb.connect`) and chDB
(ClickHouse's ``deltaLakeLocal``) query the product's Delta tables of both layouts
(``instrument``: exchange/coin/month partitions; ``exchange``: exchange/month, coin a data
column) after each stage of a table's life: day writes, a day replaced and a day cleared, a
merge (updates + inserts), then maintenance (compaction, checkpoint, vacuum of the old files).
After each stage both engines must return exactly ``get_range``'s rows (the whole table, and one
instrument's time range with partition/file pruning). DuckDB is also checked on Azurite with the
product's own credentials, and both on a table with a deletion vector (a feature the product's
fast reader leaves to delta-rs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from cb_storage_dagster import StorageConfig
from cb_storage_dagster.domain.errors import NotFoundError
from cb_storage_dagster.query.duckdb import connect
from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster.storage.maintenance import maintain_table
from cb_storage_dagster_tests.support.data import at, ohlcv, trades

DAYS = [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)]  # across a month boundary
INSTRUMENTS = [("binance", "BTC"), ("binance", "ETH"), ("coinbase", "BTC")]
START, END = at(2024, 1, 1), at(2024, 3, 1)
STAGES = ["written", "replaced", "merged", "maintained"]
TABLES = {"ohlcv": "ohlcv_1m", "trades": "trades"}
COLUMNS = {
    "ohlcv": ["exchange", "coin", "timestamp", "open", "high", "low", "close", "volume", "date"],
    "trades": ["exchange", "coin", "timestamp", "trade_id", "price", "amount", "side", "date"],
}
ORDER = {"ohlcv": "exchange, coin, timestamp", "trades": "exchange, coin, timestamp, trade_id"}
ONE_INSTRUMENT = ("binance", "BTC", at(2024, 1, 31, 0, 5), at(2024, 2, 1, 0, 3))


def canonical(table: pa.Table | pd.DataFrame, data_type: str) -> pa.Table:
    """The columns of ``data_type`` in one order and one type per column (engines differ in
    nullability and in how they spell UTC)."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    columns = COLUMNS[data_type]
    table = table.select(columns)
    fields = []
    for name in columns:
        kind = table.schema.field(name).type
        if name == "timestamp":
            kind = pa.timestamp("us", tz="UTC")
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
            kind = pa.string()
        fields.append(pa.field(name, kind))
    return table.cast(pa.schema(fields))


def expected_rows(manager: StorageManagerImpl, data_type: str, instruments=INSTRUMENTS,
                  start: dt.datetime = START, end: dt.datetime = END) -> pa.Table:
    frames = [manager.get_range({"data_type": data_type, "exchange": e, "coin": c}, start, end,
                                table=TABLES[data_type]) for e, c in instruments]
    return canonical(pd.concat(frames, ignore_index=True), data_type)


def sql_all(source: str, data_type: str) -> str:
    return f"SELECT {', '.join(COLUMNS[data_type])} FROM {source} ORDER BY {ORDER[data_type]}"


def sql_one_instrument(source: str, data_type: str, timestamp: Callable[[dt.datetime], str]) -> str:
    exchange, coin, start, end = ONE_INSTRUMENT
    return (f"SELECT {', '.join(COLUMNS[data_type])} FROM {source} WHERE exchange = '{exchange}' "
            f"AND coin = '{coin}' AND timestamp >= {timestamp(start)} AND timestamp < {timestamp(end)} "
            f"ORDER BY {ORDER[data_type]}")


def duckdb_time(moment: dt.datetime) -> str:
    return f"TIMESTAMPTZ '{moment.isoformat()}'"


def clickhouse_time(moment: dt.datetime) -> str:
    return f"toDateTime64('{moment:%Y-%m-%d %H:%M:%S}', 6, 'UTC')"


def read_with_duckdb(backend, data_type: str) -> dict[str, pa.Table]:
    con = connect(backend)
    try:
        view = TABLES[data_type]
        return {"all": canonical(con.sql(sql_all(view, data_type)).to_arrow_table(), data_type),
                "one": canonical(con.sql(sql_one_instrument(view, data_type, duckdb_time)).to_arrow_table(), data_type)}
    finally:
        con.close()


def read_with_chdb(root: Path, data_type: str) -> dict[str, pa.Table]:
    import chdb

    # chDB opens only files under its user_files_path, the working directory at query time.
    source = f"deltaLakeLocal('{root / TABLES[data_type]}')"
    with contextlib.chdir(root):
        return {"all": canonical(chdb.query(sql_all(source, data_type), "ArrowTable"), data_type),
                "one": canonical(chdb.query(sql_one_instrument(source, data_type, clickhouse_time), "ArrowTable"),
                                 data_type)}


def day_of(data_type: str, day: dt.date, exchange: str, coin: str, price: float, n: int = 12) -> pd.DataFrame:
    if data_type == "ohlcv":
        return ohlcv(day, n, exchange=exchange, coin=coin, price=price)
    return trades(day, n, exchange=exchange, coin=coin, price=price)


def run_stage(manager: StorageManagerImpl, stage: str) -> None:
    """One stage of a table's life, on both data types."""
    for data_type, table in TABLES.items():
        key = {"data_type": data_type, "exchange": "binance", "coin": "BTC"}
        if stage == "written":
            for i, (exchange, coin) in enumerate(INSTRUMENTS):
                for day in DAYS:
                    manager.save_entry({"data_type": data_type, "exchange": exchange, "coin": coin, "date": day},
                                       day_of(data_type, day, exchange, coin, 100.0 * (i + 1)), table=table)
        elif stage == "replaced":
            manager.save_entry({**key, "date": DAYS[1]}, day_of(data_type, DAYS[1], "binance", "BTC", 900.0, n=5),
                               table=table)
            empty = day_of(data_type, DAYS[2], "coinbase", "BTC", 1.0).iloc[0:0]
            manager.save_entry({"data_type": data_type, "exchange": "coinbase", "coin": "BTC", "date": DAYS[2]},
                               empty, table=table)
        elif stage == "merged":
            batch = day_of(data_type, DAYS[2], "binance", "BTC", 100.0, n=16)
            value = "close" if data_type == "ohlcv" else "price"
            batch.loc[2:5, value] = batch.loc[2:5, value] + 7.25  # 4 updates, 4 inserts (rows 12-15)
            result = manager.save_entry(key, batch, mode="merge", table=table)
            assert (result.rows_updated, result.rows_inserted) == (4, 4)
        else:
            maintain_table(manager.backend, table, retention_hours=0, min_retention_hours=0)


@pytest.fixture(scope="module", params=["instrument", "exchange"])
def life(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Per layout: what get_range, DuckDB and chDB return after each stage."""
    root = tmp_path_factory.mktemp(f"sql-{request.param}")
    backend = LocalFileBackend(root)
    manager = StorageManagerImpl(backend, default_layout=request.param)
    seen: dict = {}
    for stage in STAGES:
        run_stage(manager, stage)
        for data_type in TABLES:
            seen[stage, data_type, "expected"] = {
                "all": expected_rows(manager, data_type),
                "one": expected_rows(manager, data_type, [ONE_INSTRUMENT[:2]], *ONE_INSTRUMENT[2:]),
            }
            seen[stage, data_type, "duckdb"] = read_with_duckdb(backend, data_type)
            seen[stage, data_type, "chdb"] = read_with_chdb(root, data_type)
    seen["layout"] = request.param
    from deltalake import DeltaTable

    seen["partition_columns"] = {table: DeltaTable(manager.table_uri(data_type, table)).metadata().partition_columns
                                 for data_type, table in TABLES.items()}
    return seen


@pytest.mark.parametrize("engine", ["duckdb", "chdb"])
@pytest.mark.parametrize("data_type", list(TABLES))
@pytest.mark.parametrize("stage", STAGES)
def test_engines_return_exactly_get_ranges_rows(life: dict, stage: str, data_type: str, engine: str) -> None:
    expected, got = life[stage, data_type, "expected"], life[stage, data_type, engine]
    assert expected["all"].num_rows > 0 and expected["one"].num_rows > 0
    for query in ("all", "one"):
        assert got[query].equals(expected[query]), (
            f"{engine} after {stage} ({life['layout']} layout, {query}): {got[query].num_rows} rows, "
            f"get_range {expected[query].num_rows}")


def test_the_stages_changed_what_is_stored(life: dict) -> None:
    """The comparison above is not vacuous: the layout is the one named, and each stage changed
    the rows both engines saw."""
    partitions = ["exchange", "coin", "month"] if life["layout"] == "instrument" else ["exchange", "month"]
    assert life["partition_columns"] == {table: partitions for table in TABLES.values()}
    counts = [life[stage, "ohlcv", "expected"]["all"].num_rows for stage in STAGES]
    assert counts == [3 * 3 * 12, 3 * 3 * 12 - 12 + 5 - 12, 3 * 3 * 12 - 12 + 5 - 12 + 4, 3 * 3 * 12 - 12 + 5 - 12 + 4]
    closes = life["merged", "ohlcv", "duckdb"]["one"].column("close").to_pylist()
    assert life["replaced", "ohlcv", "duckdb"]["one"].column("close").to_pylist() != closes


def test_unknown_table_is_a_not_found_error(tmp_path: Path) -> None:
    manager = StorageManagerImpl(LocalFileBackend(tmp_path))
    manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}, ohlcv(DAYS[0], 3))
    with pytest.raises(NotFoundError, match=r"No Delta table \['ohlcv_1h'\].*the tables there are \['ohlcv'\]"):
        connect(manager, tables=["ohlcv_1h"])
    con = connect(StorageConfig(backend_type="local", local_root_path=tmp_path), tables=["ohlcv"])
    try:
        assert con.sql("SELECT count(*) FROM ohlcv").fetchone() == (3,)
    finally:
        con.close()


# -- Azure (Azurite), the product's own credentials ---------------------------------------------
def test_duckdb_reads_azurite_with_the_products_credentials(azurite) -> None:
    from cb_storage_dagster_tests.support.azurite import new_container_backend

    backend = new_container_backend(azurite)
    config = StorageConfig(backend_type="azure", azure_container_name=backend.container_name,
                           azure_account_name=azurite.account_name, azure_account_key=azurite.account_key,
                           azure_endpoint=azurite.blob_endpoint)
    manager = config.build_manager()
    for stage in ("written", "replaced", "merged"):
        run_stage(manager, stage)
    for data_type in TABLES:
        got = read_with_duckdb(config.build_backend(), data_type)
        assert got["all"].equals(expected_rows(manager, data_type))
        assert got["one"].equals(expected_rows(manager, data_type, [ONE_INSTRUMENT[:2]], *ONE_INSTRUMENT[2:]))


# -- a feature the product's fast reader does not handle: deletion vectors -------------------------
def test_both_engines_apply_a_deletion_vector(tmp_path: Path) -> None:
    from deltalake import DeltaTable

    from cb_storage_dagster_tests.support.foreign_tables import delete_rows_with_deletion_vector

    manager = StorageManagerImpl(LocalFileBackend(tmp_path))
    key = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
    manager.save_entry(key, ohlcv(DAYS[0], 6), table="ohlcv_1m")
    uri = manager.table_uri("ohlcv", "ohlcv_1m")
    DeltaTable(uri).alter.set_table_properties({"delta.enableDeletionVectors": "true"})
    (path,) = pa.table(DeltaTable(uri).get_add_actions(flatten=True)).column("path").to_pylist()
    delete_rows_with_deletion_vector(tmp_path / "ohlcv_1m", path, [1, 3])

    expected = canonical(manager.get_range(key, START, END, table="ohlcv_1m"), "ohlcv")
    assert expected.column("close").to_pylist() == [100.5, 102.5, 104.5, 105.5]
    assert read_with_duckdb(LocalFileBackend(tmp_path), "ohlcv")["all"].equals(expected)
    assert read_with_chdb(tmp_path, "ohlcv")["all"].equals(expected)


# -- the README's worked queries, verbatim ---------------------------------------------------------
README_MONTH = """
SELECT timestamp, open, high, low, close, volume
FROM ohlcv_1m
WHERE exchange = 'binance' AND coin = 'BTC' AND month = '2024-01'
ORDER BY timestamp"""

README_CROSS_SECTION = """
SELECT exchange, coin, close
FROM ohlcv_1m
WHERE month = '2024-01' AND date = DATE '2024-01-02' AND timestamp = TIMESTAMPTZ '2024-01-02 01:00:00+00'
ORDER BY exchange, coin"""

README_HOURLY = """
SELECT exchange, coin, time_bucket(INTERVAL 1 HOUR, timestamp) AS hour,
       arg_min(open, timestamp) AS open, max(high) AS high, min(low) AS low,
       arg_max(close, timestamp) AS close, sum(volume) AS volume
FROM ohlcv_1m
WHERE exchange = 'binance' AND coin = 'BTC' AND month = '2024-01' AND date = DATE '2024-01-02'
GROUP BY ALL
ORDER BY hour"""

README_CHDB_HOURLY = """
SELECT exchange, coin, toStartOfHour(timestamp) AS hour,
       argMin(open, timestamp) AS open, max(high) AS high, min(low) AS low,
       argMax(close, timestamp) AS close, sum(volume) AS volume
FROM deltaLakeLocal('{path}')
WHERE exchange = 'binance' AND coin = 'BTC' AND month = '2024-01' AND date = '2024-01-02'
GROUP BY exchange, coin, hour
ORDER BY hour
SETTINGS prefer_column_name_to_alias = 1"""


@pytest.fixture(scope="module")
def three_hours(tmp_path_factory: pytest.TempPathFactory) -> StorageManagerImpl:
    """3 instruments x 2 days x 3 hours of one-minute candles (with a gap), in ``ohlcv_1m``."""
    manager = StorageManagerImpl(LocalFileBackend(tmp_path_factory.mktemp("readme")))
    for i, (exchange, coin) in enumerate(INSTRUMENTS):
        for day in (dt.date(2024, 1, 2), dt.date(2024, 1, 3)):
            frame = ohlcv(day, 180, exchange=exchange, coin=coin, price=100.0 * (i + 1)).drop(index=[70, 71])
            manager.save_entry({"data_type": "ohlcv", "exchange": exchange, "coin": coin}, frame, table="ohlcv_1m")
    return manager


def test_the_readme_queries_return_what_the_storage_api_computes(three_hours: StorageManagerImpl) -> None:
    from cb_storage_dagster.transforms import resample_ohlcv

    btc = {"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}
    con = connect(three_hours)
    try:
        month = con.sql(README_MONTH).to_arrow_table().to_pandas()
        cross = con.sql(README_CROSS_SECTION).to_arrow_table().to_pandas()
        hourly = con.sql(README_HOURLY).to_arrow_table().to_pandas()
    finally:
        con.close()

    expected_month = three_hours.get_range(btc, at(2024, 1, 1), at(2024, 2, 1), table="ohlcv_1m")
    assert len(month) == 2 * 178
    pd.testing.assert_frame_equal(month, expected_month[list(month.columns)], check_dtype=False)

    moment = pd.Timestamp("2024-01-02 01:00", tz="UTC")
    assert cross.to_dict("records") == [
        {"exchange": e, "coin": c, "close": 100.0 * (i + 1) + 60 + 0.5} for i, (e, c) in enumerate(INSTRUMENTS)]
    assert all(three_hours.get_range({**btc, "exchange": e, "coin": c}, moment, moment + pd.Timedelta("1min"),
                                     table="ohlcv_1m")["close"].tolist() == [row["close"]]
               for (e, c), row in zip(INSTRUMENTS, cross.to_dict("records")))

    day = three_hours.get_range(btc, at(2024, 1, 2), at(2024, 1, 3), table="ohlcv_1m")
    expected_hourly = resample_ohlcv(day, "1h").rename(columns={"timestamp": "hour"})
    columns = ["hour", "open", "high", "low", "close", "volume"]
    assert len(hourly) == 3
    pd.testing.assert_frame_equal(hourly[columns].reset_index(drop=True),
                                  expected_hourly[columns].reset_index(drop=True), check_dtype=False)

    import chdb

    root = Path(three_hours.table_uri("ohlcv", "ohlcv_1m").removeprefix("file://")).parent
    with contextlib.chdir(root):
        chdb_hourly = chdb.query(README_CHDB_HOURLY.format(path=root / "ohlcv_1m"), "ArrowTable").to_pandas()
    # ClickHouse's toStartOfHour gives a DateTime (seconds, UTC)
    chdb_hourly["hour"] = pd.to_datetime(chdb_hourly["hour"].astype("int64"), unit="s", utc=True)
    pd.testing.assert_frame_equal(chdb_hourly[columns], hourly[columns], check_dtype=False)
