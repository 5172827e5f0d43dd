r"""One Delta JSON commit file as the rows it adds to a file index and the paths it drops.

A commit of an exchange-day in the instrument layout adds one file per instrument: 2,000
``add`` actions, each with a JSON ``stats`` string inside the JSON line. Parsed by Python's
``json`` that is ~45 ms a commit (a new process replaying ten of them after the stored index
spent ~450 ms there); Arrow's JSON reader parses the lines, then the ``stats`` strings, in C++
(:func:`parse_commit`). A commit the Arrow path cannot take exactly (a line that is not one
action object, a statistic that does not convert, an unusual layout) is parsed by Python, with
the same result; either way an action the replay does not implement raises
:class:`Unreplayable`.

>>> import pyarrow as pa
>>> schema = pa.schema([("path", pa.string()), ("size_bytes", pa.int64()), ("num_records", pa.int64())])
>>> commit = (b'{"remove":{"path":"a.parquet"}}\n'
...           b'{"add":{"path":"b.parquet","size":20,"partitionValues":{},"stats":"{\\"numRecords\\":3}"}}')
>>> adds, gone = parse_commit(commit, schema)
>>> adds.to_pylist(), sorted(gone)
([{'path': 'b.parquet', 'size_bytes': 20, 'num_records': 3}], ['a.parquet', 'b.parquet'])
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

__all__ = ["REPLAYED_ACTIONS", "Unreplayable", "parse_commit"]

REPLAYED_ACTIONS = frozenset({"add", "remove", "commitInfo", "txn", "cdc", "domainMetadata"})
"""Commit actions a replay understands: ``add``/``remove`` change the files; the others do not
change what a read sees (``cdc`` files are change data, never read as table data)."""

_ACTION = re.compile(rb'[ \t]*\{[ \t]*"([A-Za-z]+)"[ \t]*:')
"""The action of a commit line: a Delta commit has one action object per line."""
_OTHER_ACTIONS = ("metaData", "protocol", "checkpointMetadata", "sidecar")
"""Delta actions the replay refuses, counted when the Arrow path checks one action per line."""


class Unreplayable(Exception):
    """A commit the replay does not implement: the caller opens the table through delta-rs."""


class _NotForArrow(Exception):
    """The commit is parsed by Python instead (same result, slower)."""


def parse_commit(raw: bytes, schema: pa.Schema) -> tuple[pa.Table, set[str]]:
    """The ``add`` actions of the commit ``raw`` as index rows of ``schema`` (columns of
    delta-rs' flattened add actions: ``path``, ``size_bytes``, ``num_records``,
    ``partition.<column>``, ``min.<column>``/``max.<column>``; a missing value is null), and
    the paths (unquoted) the commit removes or adds anew (their older entries go)."""
    try:
        return _parsed_by_arrow(raw, schema)
    except _NotForArrow:
        return _parsed_by_python(raw, schema)


def _parsed_by_arrow(raw: bytes, schema: pa.Schema) -> tuple[pa.Table, set[str]]:
    lines = [line for line in raw.splitlines() if line.strip()]
    found = [_ACTION.match(line) for line in lines]
    if not all(found):
        raise _NotForArrow  # a line that is not "{"action": ...}" as delta writers write them
    kinds = {match.group(1) for match in found if match is not None}
    unknown = {kind.decode() for kind in kinds} - REPLAYED_ACTIONS
    if unknown:
        raise Unreplayable(f"a commit has {sorted(unknown)}")
    if b"add" not in kinds and b"remove" not in kinds:
        return schema.empty_table(), set()
    partitions = [name.removeprefix("partition.") for name in schema.names if name.startswith("partition.")]
    add_fields = [("path", pa.string()), ("size", pa.int64()), ("stats", pa.string()),
                  ("deletionVector", pa.struct([("storageType", pa.string())]))]
    if partitions:
        add_fields.append(("partitionValues", pa.struct([(name, pa.string()) for name in partitions])))
    counted = [*sorted(REPLAYED_ACTIONS - {"add", "remove"}), *_OTHER_ACTIONS]
    actions = _read_json(b"\n".join(lines), pa.schema(
        [("add", pa.struct(add_fields)), ("remove", pa.struct([("path", pa.string())]))]
        + [(name, pa.struct([])) for name in counted]))
    if actions.num_rows != len(lines) or not _one_action_per_row(actions):
        raise _NotForArrow  # a line with several actions: the Python path reads every key
    removes = actions.column("remove").combine_chunks()
    gone = {unquote(path) for path in removes.field("path").filter(removes.is_valid()).to_pylist()}
    adds = actions.column("add").combine_chunks()
    adds = adds.filter(adds.is_valid())
    if pc.any(adds.field("deletionVector").is_valid()).as_py():
        raise Unreplayable("a commit adds a file with a deletion vector")
    gone |= {unquote(path) for path in adds.field("path").to_pylist()}
    return (_index_rows(adds, schema) if len(adds) else schema.empty_table()), gone


def _one_action_per_row(actions: pa.Table) -> bool:
    """Whether each row (line) of ``actions`` holds exactly one of its action columns."""
    present = [pc.cast(column.is_valid(), pa.int8()) for column in actions.columns]
    total = present[0]
    for flags in present[1:]:
        total = pc.add(total, flags)
    return bool(pc.all(pc.equal(total, 1)).as_py())


def _index_rows(adds: pa.StructArray, schema: pa.Schema) -> pa.Table:
    stats = adds.field("stats")
    statistics = [name.split(".", 1)[1] for name in schema.names if name.startswith("min.")]
    bounds = pa.struct([(name, pa.string()) for name in statistics]) if statistics else None
    parsed = _read_json("\n".join(text or "{}" for text in stats.to_pylist()).encode(), pa.schema(
        [("numRecords", pa.int64())] + ([("minValues", bounds), ("maxValues", bounds)] if bounds else [])))
    if parsed.num_rows != len(adds):
        raise _NotForArrow  # a statistics string over several lines: not one JSON line each
    columns = []
    for field in schema:
        name = field.name
        if name == "path":
            column = adds.field("path")
        elif name == "size_bytes":
            column = adds.field("size")
        elif name == "num_records":
            column = parsed.column("numRecords")
        elif name.startswith("partition."):
            column = adds.field("partitionValues").field(name.removeprefix("partition."))
        elif name.startswith(("min.", "max.")):
            bound, statistic = name.split(".", 1)
            column = pc.struct_field(parsed.column("minValues" if bound == "min" else "maxValues"), statistic)
        else:
            column = pa.nulls(len(adds), field.type)
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise _NotForArrow from error  # e.g. a timestamp statistic without its zone
    return pa.Table.from_arrays(columns, schema=schema)


def _read_json(data: bytes, schema: pa.Schema) -> pa.Table:
    """Newline-delimited JSON objects as ``schema`` (other fields ignored)."""
    try:
        return pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=max(len(data), 1 << 20)),
                            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise _NotForArrow from error


def _parsed_by_python(raw: bytes, schema: pa.Schema) -> tuple[pa.Table, set[str]]:
    adds: list[dict[str, Any]] = []
    gone: set[str] = set()
    for line in raw.decode().splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        kinds = set(action) - REPLAYED_ACTIONS
        if kinds:
            raise Unreplayable(f"a commit has {sorted(kinds)}")
        if "add" in action:
            add = action["add"]
            if add.get("deletionVector"):
                raise Unreplayable("a commit adds a file with a deletion vector")
            adds.append(add)
            gone.add(unquote(add["path"]))
        elif "remove" in action:
            gone.add(unquote(action["remove"]["path"]))
    return _rows_of(adds, schema), gone


def _rows_of(adds: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Index rows of JSON ``add`` actions, typed like ``schema`` (a missing statistic is null)."""
    stats = [json.loads(a["stats"]) if a.get("stats") else {} for a in adds]
    columns: dict[str, list[Any]] = {}
    for field in schema:
        name = field.name
        if name == "path":
            values: list[Any] = [a["path"] for a in adds]
        elif name == "size_bytes":
            values = [int(a["size"]) for a in adds]
        elif name == "num_records":
            values = [s.get("numRecords") for s in stats]
        elif name.startswith("partition."):
            column = name.removeprefix("partition.")
            values = [(a.get("partitionValues") or {}).get(column) for a in adds]
        elif name.startswith(("min.", "max.")):
            bound, column = name.split(".", 1)
            key = "minValues" if bound == "min" else "maxValues"
            values = [_statistic((s.get(key) or {}).get(column), field.type) for s in stats]
        else:
            values = [None] * len(adds)
        columns[name] = values
    return pa.table({name: pa.array(columns[name], schema.field(name).type) for name in schema.names}, schema=schema)


def _statistic(value: Any, typ: pa.DataType) -> Any:
    """A JSON min/max statistic as a value of ``typ`` (``None`` if absent)."""
    if value is None:
        return None
    if pa.types.is_timestamp(typ):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)
    if pa.types.is_date(typ):
        return dt.date.fromisoformat(value)
    return value
