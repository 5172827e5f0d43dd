"""Every data file the product writes stores prices, volumes and times as plain values and
keys (coin, date) with a dictionary (``storage/delta/writer_settings.py``): day writes in
both layouts, merges and compaction, all of them uncompressed (decoding is most of a read).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cb_storage_dagster.storage import LocalFileBackend, StorageManagerImpl
from cb_storage_dagster.storage import maintenance as mt
from cb_storage_dagster_tests.support.data import ohlcv

DAYS = [dt.date(2024, 3, 1), dt.date(2024, 3, 2)]
PLAIN = {"timestamp", "open", "high", "low", "close", "volume"}


def data_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*.parquet") if "_delta_log" not in path.parts and "_cb_registry" not in path.parts]


def encodings(root: Path) -> dict[str, set[tuple[str, bool, str]]]:
    """Per column of every data file under ``root``: (encodings, dictionary page, codec)."""
    seen: dict[str, set[tuple[str, bool, str]]] = {}
    for path in data_files(root):
        group = pq.ParquetFile(path).metadata.row_group(0)
        for i in range(group.num_columns):
            chunk = group.column(i)
            seen.setdefault(chunk.path_in_schema, set()).add(
                (",".join(sorted(chunk.encodings)), chunk.has_dictionary_page, chunk.compression))
    return seen


def dictionary_encoded(seen: dict[str, set[tuple[str, bool, str]]], column: str) -> bool:
    return all(has_dictionary for _, has_dictionary, _ in seen[column])


@pytest.mark.parametrize("layout", ["exchange", "instrument"])
def test_prices_and_times_are_plain_and_keys_keep_a_dictionary_in_day_writes_merges_and_compaction(tmp_path, layout):
    manager = StorageManagerImpl(LocalFileBackend(tmp_path), default_layout=layout)
    for day in DAYS:
        for coin in ("BTC", "ETH"):
            manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": coin, "date": day},
                               ohlcv(day, n=120, coin=coin, price=100.0))
    written = encodings(tmp_path / "ohlcv")
    assert {name for name in written if not dictionary_encoded(written, name)} == PLAIN
    assert dictionary_encoded(written, "date")

    before = set(data_files(tmp_path))
    result = manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "BTC", "date": DAYS[0]},
                                ohlcv(DAYS[0], n=130, coin="BTC", price=101.0), mode="merge")
    assert result.rows_inserted == 10 and set(data_files(tmp_path)) - before  # the merge wrote files
    merged = encodings(tmp_path / "ohlcv")
    assert {name for name in merged if not dictionary_encoded(merged, name)} == PLAIN
    mt.maintain_table(manager.backend, "ohlcv", retention_hours=0, min_retention_hours=0)
    maintained = encodings(tmp_path / "ohlcv")
    assert {name for name in maintained if not dictionary_encoded(maintained, name)} == PLAIN
    assert {codec for name in maintained for _, _, codec in maintained[name]} == {"UNCOMPRESSED"}


def test_day_files_of_both_layouts_are_written_uncompressed(tmp_path):
    from cb_storage_dagster.domain.schemas import normalize
    from cb_storage_dagster.domain.scope import WriteScope

    for layout in ("exchange", "instrument"):
        manager = StorageManagerImpl(LocalFileBackend(tmp_path / layout), default_layout=layout)
        data = normalize(ohlcv(DAYS[0], n=60, coin="BTC"), "ohlcv")
        manager.write_partitions("ohlcv", data, WriteScope.of_exchange_days([("binance", DAYS[0])]))
    codecs = {layout: {codec for column in encodings(tmp_path / layout / "ohlcv").values() for _, _, codec in column}
              for layout in ("exchange", "instrument")}
    assert codecs == {"exchange": {"UNCOMPRESSED"}, "instrument": {"UNCOMPRESSED"}}


def test_an_exchange_day_delivered_in_chunks_per_instrument_is_stored_in_coin_order(tmp_path):
    """delta-rs writes the batches of a table in parallel; the writer hands it one chunk, so
    the stored file keeps the rows' (coin, time) order."""
    import pyarrow as pa

    from cb_storage_dagster.domain.schemas import normalize
    from cb_storage_dagster.domain.scope import WriteScope

    manager = StorageManagerImpl(LocalFileBackend(tmp_path), default_layout="exchange")
    coins = ["ADA", "BTC", "ETH", "SOL", "XRP"]
    chunks = pa.concat_tables([normalize(ohlcv(DAYS[0], n=200, coin=coin), "ohlcv") for coin in coins])
    assert chunks.column("coin").num_chunks == len(coins)
    manager.write_partitions("ohlcv", chunks, WriteScope.of_exchange_days([("binance", DAYS[0])]))

    [path] = data_files(tmp_path / "ohlcv")
    stored = pq.read_table(path).column("coin").to_pylist()
    assert stored == [coin for coin in coins for _ in range(200)]
