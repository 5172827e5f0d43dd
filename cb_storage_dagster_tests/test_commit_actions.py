"""A Delta commit file is read into file-index rows the same way whichever parser takes it
(``storage/delta/commit_actions.py``): Arrow's JSON reader for commits as delta writers write
them, Python's ``json`` for anything else, and an action the replay does not implement stops
both."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from cb_storage_dagster.storage.delta import commit_actions
from cb_storage_dagster.storage.delta.commit_actions import Unreplayable, parse_commit
from cb_storage_dagster.storage.delta.file_index import index_columns
from cb_storage_dagster.storage.delta.log_replay import replay

COINS = ["BTC", "ETH", "A B%=/x"]  # the last one needs quoting in file paths


def rows(day: dt.date, coins: list[str], price: float) -> pa.Table:
    times = [dt.datetime.combine(day, dt.time(h), dt.timezone.utc) for h in range(3)]
    return pa.table({
        "exchange": pa.array(["binance"] * 3 * len(coins)),
        "coin": pa.array([coin for coin in coins for _ in times]),
        "timestamp": pa.array(times * len(coins), pa.timestamp("us", "UTC")),
        "date": pa.array([day] * 3 * len(coins), pa.date32()),
        "close": pa.array([price] * 3 * len(coins)),
    })


def commits(root: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((root / "_delta_log").glob("*.json"))]


def index_of(table: DeltaTable) -> pa.Table:
    return index_columns(pa.table(table.get_add_actions(flatten=True)))


@pytest.fixture
def history(tmp_path) -> tuple[Path, pa.Table]:
    """A partitioned table through appends, a replace, a delete, a merge and a compaction,
    and the index of its first version."""
    root = tmp_path / "ohlcv"
    write_deltalake(root, rows(dt.date(2024, 3, 1), COINS, 1.0), partition_by=["exchange", "coin"])
    first = index_of(DeltaTable(root))
    write_deltalake(root, rows(dt.date(2024, 3, 2), COINS, 2.0), mode="append", partition_by=["exchange", "coin"])
    write_deltalake(root, rows(dt.date(2024, 3, 2), ["ETH"], 3.0), mode="overwrite",
                    predicate="coin = 'ETH' AND date = '2024-03-02'::date")
    DeltaTable(root).delete("coin = 'BTC' AND date = '2024-03-01'::date")
    (DeltaTable(root).merge(rows(dt.date(2024, 3, 3), COINS, 4.0), "s.coin = t.coin AND s.timestamp = t.timestamp",
                            source_alias="s", target_alias="t").when_not_matched_insert_all().execute())
    DeltaTable(root).optimize.compact()
    return root, first


def test_every_commit_of_a_real_table_parses_alike_by_arrow_and_by_python(history):
    root, first = history
    for raw in commits(root)[1:]:
        by_arrow = commit_actions._parsed_by_arrow(raw, first.schema)
        by_python = commit_actions._parsed_by_python(raw, first.schema)
        assert by_arrow[0].equals(by_python[0]) and by_arrow[1] == by_python[1]


def test_replaying_the_commits_gives_the_files_delta_rs_lists(history):
    root, first = history
    replayed = replay(first, commits(root)[1:])
    expected = index_of(DeltaTable(root))
    assert sorted(replayed.column("path").to_pylist()) == sorted(expected.column("path").to_pylist())
    assert replayed.sort_by("path").drop_columns(["path"]).equals(expected.sort_by("path").drop_columns(["path"]))
    assert any("%" in path for path in replayed.column("path").to_pylist())  # the quoted coin's files


def test_commits_written_differently_are_parsed_by_python_with_the_same_rows(history):
    root, first = history
    raw = commits(root)[1]
    actions = [json.loads(line) for line in raw.splitlines()]
    for action in actions:  # statistics spread over several lines, JSON with spaces
        if "add" in action:
            action["add"]["stats"] = json.dumps(json.loads(action["add"]["stats"]), indent=1)
    spaced = "\n".join(json.dumps(action, separators=(", ", " : ")) for action in actions).encode()
    pretty_stats = "\n".join(json.dumps(action) for action in actions).encode()
    expected = commit_actions._parsed_by_python(raw, first.schema)
    for variant in (spaced, pretty_stats):
        adds, gone = parse_commit(variant, first.schema)
        assert adds.equals(expected[0]) and gone == expected[1]


def test_a_timestamp_statistic_without_its_zone_is_read_as_utc_as_before():
    schema = pa.schema([("path", pa.string()), ("size_bytes", pa.int64()), ("num_records", pa.int64()),
                        ("min.timestamp", pa.timestamp("us", "UTC")), ("max.timestamp", pa.timestamp("us", "UTC"))])
    stats = {"numRecords": 2, "minValues": {"timestamp": "2024-03-01T00:00:00"},
             "maxValues": {"timestamp": "2024-03-01T01:00:00.000Z"}}
    raw = json.dumps({"add": {"path": "a.parquet", "size": 9, "partitionValues": {}, "stats": json.dumps(stats)}})
    adds, _ = parse_commit(raw.encode(), schema)
    assert adds.to_pylist() == [{
        "path": "a.parquet", "size_bytes": 9, "num_records": 2,
        "min.timestamp": dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc),
        "max.timestamp": dt.datetime(2024, 3, 1, 1, tzinfo=dt.timezone.utc)}]


@pytest.mark.parametrize("action", [
    {"metaData": {"id": "x", "format": {"provider": "parquet"}, "schemaString": "{}", "partitionColumns": []}},
    {"protocol": {"minReaderVersion": 3, "minWriterVersion": 7}},
    {"add": {"path": "a.parquet", "size": 1, "partitionValues": {}, "dataChange": True,
             "deletionVector": {"storageType": "u", "pathOrInlineDv": "ab", "offset": 1, "sizeInBytes": 3,
                                "cardinality": 1}}},
], ids=["metaData", "protocol", "deletion vector"])
def test_a_commit_the_replay_does_not_implement_is_refused_by_both_parsers(action):
    schema = pa.schema([("path", pa.string()), ("size_bytes", pa.int64())])
    raw = (json.dumps({"commitInfo": {"operation": "X"}}) + "\n" + json.dumps(action)).encode()
    for parse in (commit_actions._parsed_by_arrow, commit_actions._parsed_by_python, parse_commit):
        with pytest.raises(Unreplayable):
            parse(raw, schema)


@pytest.mark.parametrize("second", [
    {"metaData": {"id": "x", "format": {"provider": "parquet"}, "schemaString": "{}", "partitionColumns": []}},
    {"remove": {"path": "b.parquet", "dataChange": True}},
], ids=["an unreplayable action", "a second file action"])
def test_a_line_with_two_actions_is_read_by_python_which_sees_every_key(second):
    schema = pa.schema([("path", pa.string()), ("size_bytes", pa.int64())])
    line = {"add": {"path": "a.parquet", "size": 1, "partitionValues": {}, "dataChange": True}, **second}
    raw = json.dumps(line).encode()
    with pytest.raises(commit_actions._NotForArrow):
        commit_actions._parsed_by_arrow(raw, schema)
    if "metaData" in second:
        with pytest.raises(Unreplayable):
            parse_commit(raw, schema)
    else:
        assert parse_commit(raw, schema) == commit_actions._parsed_by_python(raw, schema)
