"""Writes and reads of MarketDataChunks (issue 17, part 1): many small chunks store exactly
what one big chunk stores, in one commit; a bad chunk in the middle commits nothing; a
failed instrument-day keeps its stored rows."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cb_storage_dagster.domain.chunks import InstrumentFailure, MarketDataChunks
from cb_storage_dagster.domain.errors import InvalidDataError, PartitionMismatchError
from cb_storage_dagster.domain.keys import PartitionSlot
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.sources.synthetic import SyntheticMarketDataSource
from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster.storage.spool import ArrowSpool

DAYS = [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
COINS = [f"C{i:02d}" for i in range(7)]
SOURCE = SyntheticMarketDataSource(trades_per_day=60)


def day_trades(day: dt.date, coins=COINS, *, seed_shift: int = 0) -> pa.Table:
    source = SyntheticMarketDataSource(trades_per_day=60, seed=seed_shift)
    return pa.Table.from_pandas(source.fetch_trades_many("binance", coins, day), preserve_index=False)


def chunks_of(size: int, days=DAYS) -> MarketDataChunks:
    """The run's trades as blocks of ``size`` coins x one day."""
    def opened():
        for day in days:
            for i in range(0, len(COINS), size):
                yield day_trades(day, COINS[i:i + size])
    return MarketDataChunks(opened)


def scope(days=DAYS) -> WriteScope:
    return WriteScope.of_exchange_days(("binance", d) for d in days)


def stored(manager: StorageManagerImpl) -> pa.Table:
    return manager.read_partitions("trades", None)


@pytest.fixture
def manager(tmp_path) -> StorageManagerImpl:
    return StorageManagerImpl(LocalFileBackend(str(tmp_path)))


@pytest.mark.parametrize("layout", ["instrument", "exchange"])
def test_many_small_chunks_store_exactly_what_one_big_chunk_stores(tmp_path, layout):
    small = StorageManagerImpl(LocalFileBackend(str(tmp_path / "small")), default_layout=layout)
    big = StorageManagerImpl(LocalFileBackend(str(tmp_path / "big")), default_layout=layout)
    in_chunks = small.write_partitions("trades", chunks_of(2), scope())  # 4 blocks x 2 days
    in_one = big.write_partitions("trades", pa.concat_tables([day_trades(d) for d in DAYS]), scope())
    assert in_chunks.rows_per_partition == in_one.rows_per_partition
    assert in_chunks.row_count == in_one.row_count == 2 * 7 * 60
    assert in_chunks.version == in_one.version == 1  # one commit after the create
    assert stored(small).equals(stored(big))
    assert small.delta.open("trades").version() == 1


def test_chunks_read_back_in_blocks_hold_the_same_rows(manager):
    manager.write_partitions("trades", chunks_of(3), scope())
    chunks = manager.read_chunks("trades", scope(), chunk_instruments=3)
    tables = list(chunks)
    assert len(tables) == 6 and max(t.num_rows for t in tables) == 3 * 60  # 3 blocks x 2 days
    assert pa.concat_tables(tables).sort_by([("date", "ascending"), ("coin", "ascending"), ("timestamp", "ascending")]) \
        .equals(stored(manager).sort_by([("date", "ascending"), ("coin", "ascending"), ("timestamp", "ascending")]))


@pytest.mark.parametrize("layout", ["instrument", "exchange"])
def test_chunks_read_back_come_out_in_instrument_and_time_order(tmp_path, layout):
    manager = StorageManagerImpl(LocalFileBackend(str(tmp_path)), default_layout=layout)
    manager.write_partitions("trades", chunks_of(2), scope())
    keys = [("exchange", "ascending"), ("coin", "ascending"), ("timestamp", "ascending"), ("trade_id", "ascending")]
    for chunk in manager.read_chunks("trades", scope(), chunk_instruments=3):
        assert chunk.num_rows and chunk.equals(chunk.sort_by(keys))


def test_selected_columns_of_chunks_read_back_are_the_same_rows_narrowed(manager):
    manager.write_partitions("trades", chunks_of(3), scope())
    chunks = manager.read_chunks("trades", scope(), chunk_instruments=3)
    narrow = chunks.select(["coin", "timestamp", "price"])
    for whole, part in zip(chunks, narrow, strict=True):
        assert part.column_names == ["coin", "timestamp", "price"]
        assert part.equals(whole.select(["coin", "timestamp", "price"]))


def test_selecting_columns_of_chunks_held_in_memory_projects_each_chunk():
    chunks = chunks_of(3).select(["price", "coin"])
    assert [t.column_names for t in chunks] == [["price", "coin"]] * 6
    with pytest.raises(KeyError, match="no column"):
        list(chunks_of(3).select(["volume"]))


def test_a_bad_chunk_in_the_middle_commits_nothing(manager):
    manager.write_partitions("trades", chunks_of(7), scope())
    before = stored(manager)

    def opened():
        yield day_trades(DAYS[0], COINS[:3], seed_shift=1)
        bad = day_trades(DAYS[0], COINS[3:], seed_shift=1)
        yield bad.set_column(bad.schema.get_field_index("price"), "price",
                             pc.multiply(bad.column("price"), -1.0))
        yield day_trades(DAYS[1], seed_shift=1)

    with pytest.raises(InvalidDataError, match="price"):
        manager.write_partitions("trades", MarketDataChunks(opened), scope())
    assert manager.delta.open("trades").version() == 1
    assert stored(manager).equals(before)


def test_a_chunk_outside_the_scope_or_repeating_an_instrument_day_commits_nothing(manager):
    manager.write_partitions("trades", chunks_of(7), scope())
    outside = MarketDataChunks.of([day_trades(DAYS[0]), day_trades(dt.date(2024, 1, 9))])
    with pytest.raises(PartitionMismatchError):
        manager.write_partitions("trades", outside, scope())
    twice = MarketDataChunks.of([day_trades(DAYS[0], COINS[:2]), day_trades(DAYS[0], COINS[1:])])
    with pytest.raises(InvalidDataError, match="both hold rows of binance/C01/2024-01-02"):
        manager.write_partitions("trades", twice, scope())
    assert manager.delta.open("trades").version() == 1


def test_a_failed_instrument_day_keeps_its_stored_rows(manager):
    manager.write_partitions("trades", chunks_of(7), scope())
    old = stored(manager)
    failed = InstrumentFailure("binance", "C03", DAYS[1], "SourceRequestError", "refused")

    def opened():  # new data for everything but C03 on the second day
        yield day_trades(DAYS[0], seed_shift=2)
        yield day_trades(DAYS[1], [c for c in COINS if c != "C03"], seed_shift=2)

    result = manager.write_partitions("trades", MarketDataChunks(opened, failures=(failed,)), scope())
    now = stored(manager)
    kept = pc.and_(pc.equal(now["coin"], "C03"), pc.equal(now["date"], pa.scalar(DAYS[1], pa.date32())))
    was = pc.and_(pc.equal(old["coin"], "C03"), pc.equal(old["date"], pa.scalar(DAYS[1], pa.date32())))
    assert now.filter(kept).equals(old.filter(was)) and now.filter(kept).num_rows == 60
    assert "binance/C03/2024-01-03" not in result.rows_per_partition
    new_rows = pa.concat_tables([day_trades(DAYS[0], seed_shift=2),
                                 day_trades(DAYS[1], [c for c in COINS if c != "C03"], seed_shift=2)])
    assert set(now.filter(pc.invert(kept))["trade_id"].to_pylist()) == set(new_rows["trade_id"].to_pylist())
    assert sorted(now.filter(pc.invert(kept))["price"].to_pylist()) == sorted(new_rows["price"].to_pylist())


def test_the_spool_reads_back_each_chunk_as_written(tmp_path):
    spool = ArrowSpool(str(tmp_path))
    for day in DAYS:
        spool.append(day_trades(day))
    again = [list(spool.chunks()), list(spool.chunks())]
    assert [t.num_rows for t in again[0]] == [420, 420] and again[0][1].equals(again[1][1])
    spool.close()
    assert not list(tmp_path.iterdir())


def test_an_exclusion_is_a_partition_slot():
    assert WriteScope.of_exchange_days([("binance", DAYS[0])]).excluding(
        [PartitionSlot("binance", "C01", DAYS[0])]).describe()[-1] == "not binance/C01/2024-01-02"


def test_an_exchange_profile_run_in_small_chunks_stores_and_reports_what_one_chunk_does(tmp_path):
    """2 exchange-days x 7 instruments in chunks of 2 (8 chunks, each far under the run) and
    in chunks of 1,000 (one per day): the same rows, the same metadata, one commit per table."""
    import dagster as dg

    from cb_storage_dagster.orchestration import build_pipeline
    from cb_storage_dagster.orchestration.io_manager import MarketDataIOManager
    from cb_storage_dagster.orchestration.resources import LocalStorageResource

    pipeline = build_pipeline("exchange", [f"binance:{c}" for c in COINS])
    assets = [a for a in pipeline.assets.all if a.key.to_user_string() != "order_book"]
    outcomes = {}
    for chunk in (2, 1000):
        root = tmp_path / f"chunk{chunk}"
        io_manager = MarketDataIOManager(storage=LocalStorageResource(root_path=str(root)), chunk_instruments=chunk)
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                [*assets, *pipeline.checks.all], selection=[a.key for a in assets], instance=instance,
                resources={"market_data_io_manager": io_manager, "market_data_source": SOURCE},
                tags={"dagster/asset_partition_range_start": "2024-01-02|binance",
                      "dagster/asset_partition_range_end": "2024-01-03|binance"},
            )
            assert result.success
            metadata = {}
            for name in ("trades", "ohlcv_1m", "ohlcv_1d"):
                for event in result.asset_materializations_for_node(name):
                    kept = {k: v for k, v in event.metadata.items() if k not in ("chunk_instruments", "dagster/uri")}  # the roots differ
                    metadata[(name, event.partition)] = kept
            checks = {(e.asset_key.to_user_string(), e.check_name): (e.passed, e.metadata)
                      for e in result.get_asset_check_evaluations()}
        manager = StorageManagerImpl(LocalFileBackend(str(root)))
        tables = {t: manager.read_partitions("trades" if t == "trades" else "ohlcv", None, table=t)
                  for t in ("trades", "ohlcv_1m", "ohlcv_1d")}
        versions = {t: manager.table_version("trades" if t == "trades" else "ohlcv", table=t) for t in tables}
        outcomes[chunk] = (metadata, checks, tables, versions)
    small, big = outcomes[2], outcomes[1000]
    assert small[0] == big[0]  # metadata per asset and partition, exact both ways
    assert small[0][("trades", "2024-01-02|binance")]["dagster/row_count"].value == 7 * 60
    assert small[1] == big[1]
    for table in small[2]:
        assert small[2][table].equals(big[2][table]), table
    assert small[3] == big[3] == {"trades": 1, "ohlcv_1m": 1, "ohlcv_1d": 1}  # one commit per table


def test_the_rule_check_of_chunks_counts_what_the_check_of_one_frame_counts():
    from cb_storage_dagster.domain.keys import DataType
    from cb_storage_dagster.orchestration.check_results import rules_result

    good, bad = day_trades(DAYS[0], COINS[:3]), day_trades(DAYS[0], COINS[3:]).to_pandas()
    bad.loc[[2, 5], "price"] = -1.0
    bad.loc[7, "side"] = "hold"
    slots = [PartitionSlot("binance", c, DAYS[0]) for c in COINS]
    frame = pa.concat_tables([good, pa.Table.from_pandas(bad, preserve_index=False)]).to_pandas()
    in_chunks = rules_result(MarketDataChunks.of([good, bad]), DataType.TRADES, slots)
    in_one = rules_result(frame, DataType.TRADES, slots)
    assert not in_chunks.passed and in_chunks.metadata == in_one.metadata
    assert in_chunks.metadata["non_positive_price"].value == 2 and in_chunks.metadata["unknown_side"].value == 1
    assert "hold" in in_chunks.metadata["first_offending_rows"].value
    assert rules_result(MarketDataChunks.of([good]), DataType.TRADES, slots).passed
