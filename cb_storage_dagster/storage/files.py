"""Parquet and JSON formats: one object per exchange/coin/day under a Hive-style path.

``{table}/exchange=binance/coin=BTC/date=2024-01-01/data.parquet`` (or ``data.json``,
newline-delimited). Every object is written with the backend's atomic ``save_bytes``. A
``{table}/_cb_format`` marker records the format so a table is never written in two
formats (and Spark/pyarrow ignore it, as they ignore every ``_``-prefixed file).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from abc import abstractmethod

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from cb_storage_dagster.domain.errors import (
    CorruptTableError,
    NotFoundError,
    SchemaMismatchError,
    StorageError,
)
from cb_storage_dagster.domain.keys import DataType, PartitionSlot
from cb_storage_dagster.domain.results import WriteResult
from cb_storage_dagster.domain.schemas import DATE_COLUMN, MONTH_COLUMN, storage_schema
from cb_storage_dagster.domain.scope import WriteScope
from cb_storage_dagster.storage.delta.sorting import sort_rows
from cb_storage_dagster.storage.format import FormatStore, ReadRequest, rows_per_partition

FORMAT_MARKER = "_cb_format"


def slot_prefix(table: str, exchange: str, coin: str, date: dt.date | None = None) -> str:
    prefix = f"{table}/exchange={exchange}/coin={coin}"
    return prefix if date is None else f"{prefix}/date={date.isoformat()}"


def _parse_object_path(table: str, identifier: str) -> PartitionSlot | None:
    parts = identifier[len(table) + 1 :].split("/")
    if len(parts) != 4:
        return None
    try:
        values = dict(p.split("=", 1) for p in parts[:3])
        return PartitionSlot(values["exchange"], values["coin"], dt.date.fromisoformat(values["date"]))
    except (ValueError, KeyError, StorageError):
        return None


class FileFormat(FormatStore):
    """Shared logic of the one-object-per-partition formats."""

    suffix: str

    @abstractmethod
    def serialize(self, table: pa.Table) -> bytes: ...

    @abstractmethod
    def deserialize(self, payload: bytes, data_type: DataType) -> pa.Table: ...

    def object_id(self, table: str, slot: PartitionSlot) -> str:
        return f"{slot_prefix(table, slot.exchange, slot.coin, slot.date)}/data.{self.suffix}"

    def _objects(self, table: str, prefix: str | None = None) -> dict[PartitionSlot, str]:
        found: dict[PartitionSlot, str] = {}
        for identifier in self.backend.list_items(prefix or table):
            if not identifier.endswith(f".{self.suffix}"):
                continue
            slot = _parse_object_path(table, identifier)
            if slot is not None:
                found[slot] = identifier
        return found

    def write(self, table: str, data_type: DataType, data: pa.Table, scope: WriteScope) -> WriteResult:
        self.backend.save_bytes(f"{table}/{FORMAT_MARKER}", self.name.encode())
        data = sort_rows(data, ["exchange", "coin", "timestamp"], single_instrument=False)  # checks first
        present = _slots_in(data)
        targets = set(present) | set(scope.slots)
        stale: set[PartitionSlot] = set()
        if scope.days or scope.instruments or scope.whole_table:
            stale = {s for s in self._objects(table) if scope.covers(s)}
        for slot in sorted(targets):
            rows = data.filter(_slot_mask(data, slot)) if data.num_rows else data
            if rows.num_rows:
                self.backend.save_bytes(self.object_id(table, slot), self.serialize(rows))
            else:
                self.backend.delete(self.object_id(table, slot))
        for slot in sorted(stale - set(present)):
            self.backend.delete(self.object_id(table, slot))
        return WriteResult.of_batch(data, uri=self.backend.get_uri_for_identifier(table), format=self.name,
                                    table=table, version=None, rows_per_partition=rows_per_partition(data, scope))

    def read(self, table: str, request: ReadRequest) -> pa.Table:
        if request.as_of_version is not None or request.as_of_timestamp is not None:
            raise NotFoundError(
                f"Time travel needs the Delta format; table {table!r} is stored as {self.name}."
            )
        wanted = self._selected_objects(table, request.scope)
        pieces = [self.deserialize(self.backend.load_bytes(ident), request.data_type) for ident in wanted]
        schema = storage_schema(request.data_type)
        if not pieces:
            data = schema.empty_table()
        else:
            try:
                data = pa.concat_tables(pieces, promote_options="permissive")
            except pa.ArrowInvalid as exc:
                raise CorruptTableError(f"Objects of table {table!r} disagree on their schema: {exc}") from None
        if request.row_filter is not None:
            try:
                data = ds.dataset(data).to_table(filter=request.row_filter)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise SchemaMismatchError(f"Cannot apply the filters to table {table!r}: {exc}") from None
        if request.columns is not None:
            missing = [c for c in request.columns if c not in data.column_names]
            if missing:
                raise SchemaMismatchError(f"Unknown columns {missing}; table {table!r} has {data.column_names}.")
            data = data.select(request.columns)
        return data

    def _selected_objects(self, table: str, scope: WriteScope | None) -> list[str]:
        if scope is None or scope.whole_table or scope.days:
            objects = self._objects(table)
            return [objects[s] for s in sorted(objects) if scope is None or scope.covers(s)]
        wanted: list[str] = []
        instruments = {(s.exchange, s.coin) for s in scope.slots} | set(scope.instruments)
        for exchange, coin in sorted(instruments):  # list only these instruments' folders
            objects = self._objects(table, slot_prefix(table, exchange, coin))
            wanted += [objects[s] for s in sorted(objects) if scope.covers(s)]
        return wanted

    def instruments(self, table: str) -> list[tuple[str, str]]:
        return sorted({(s.exchange, s.coin) for s in self._objects(table)})

    def list_dates(self, table: str, exchange: str, coin: str) -> list[dt.date]:
        return sorted({s.date for s in self._objects(table, slot_prefix(table, exchange, coin))})


class ParquetFormat(FileFormat):
    """One zstd-compressed Parquet file per exchange/coin/day."""

    name = "parquet"
    suffix = "parquet"

    def serialize(self, table: pa.Table) -> bytes:
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(table.drop_columns([MONTH_COLUMN]), sink, compression="zstd")
        return sink.getvalue()

    def deserialize(self, payload: bytes, data_type: DataType) -> pa.Table:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(payload))
        except (pa.ArrowInvalid, OSError) as exc:
            raise CorruptTableError(f"A Parquet object is unreadable: {exc}") from None
        return _with_month(table)


class JsonFormat(FileFormat):
    """One newline-delimited JSON file per exchange/coin/day (ISO-8601 UTC timestamps)."""

    name = "json"
    suffix = "json"

    def serialize(self, table: pa.Table) -> bytes:
        rows = table.drop_columns([MONTH_COLUMN]).to_pylist()
        lines = [json.dumps(row, default=_json_default, allow_nan=False) for row in rows]
        return ("\n".join(lines) + "\n").encode()

    def deserialize(self, payload: bytes, data_type: DataType) -> pa.Table:
        import pyarrow.json as pj

        schema = storage_schema(data_type)
        explicit = pa.schema(
            [f for f in schema if f.name not in (MONTH_COLUMN, DATE_COLUMN)]
            + [pa.field(DATE_COLUMN, pa.string())]
        )
        try:
            table = pj.read_json(
                io.BytesIO(payload),
                parse_options=pj.ParseOptions(explicit_schema=explicit, unexpected_field_behavior="infer"),
            )
        except (pa.ArrowInvalid, OSError) as exc:
            raise CorruptTableError(f"A JSON object is unreadable: {exc}") from None
        date_index = table.column_names.index(DATE_COLUMN)
        table = table.set_column(
            date_index, DATE_COLUMN, pc.cast(pc.cast(table.column("timestamp"), pa.timestamp("us", tz="UTC")), pa.date32())
        )
        return _with_month(table)


def _json_default(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"Cannot store {type(value).__name__} values as JSON.")


def _with_month(table: pa.Table) -> pa.Table:
    if MONTH_COLUMN in table.column_names:
        return table
    ts = table.column("timestamp")
    if ts.type != pa.timestamp("us", tz="UTC"):
        ts = pc.cast(ts, pa.timestamp("us", tz="UTC"))
        table = table.set_column(table.column_names.index("timestamp"), "timestamp", ts)
    if DATE_COLUMN in table.column_names and table.column(DATE_COLUMN).type != pa.date32():
        table = table.set_column(table.column_names.index(DATE_COLUMN), DATE_COLUMN, pc.cast(table.column(DATE_COLUMN), pa.date32()))
    return table.append_column(MONTH_COLUMN, pc.strftime(ts, format="%Y-%m"))


def _slots_in(data: pa.Table) -> list[PartitionSlot]:
    if data.num_rows == 0:
        return []
    keys = data.select(["exchange", "coin", DATE_COLUMN]).group_by(["exchange", "coin", DATE_COLUMN]).aggregate([])
    return [PartitionSlot(r["exchange"], r["coin"], r[DATE_COLUMN]) for r in keys.to_pylist()]


def _slot_mask(data: pa.Table, slot: PartitionSlot) -> pa.ChunkedArray:
    return pc.and_(
        pc.and_(pc.equal(data.column("exchange"), slot.exchange), pc.equal(data.column("coin"), slot.coin)),
        pc.equal(data.column(DATE_COLUMN), pa.scalar(slot.date, pa.date32())),
    )
