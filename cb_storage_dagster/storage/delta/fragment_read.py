"""One Parquet fragment's rows in the table's schema.

A file whose stored Arrow schema uses view types (``string_view``: what delta-rs' merge and
some foreign writers such as Polars write) cannot be filtered by pyarrow's dataset scan
against the table's ``string`` schema (pyarrow 26: "no kernel matching (string,
string_view)"); such a file is read whole, cast to the table's schema, then filtered.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds


def has_view_types(fragment: ds.ParquetFileFragment) -> bool:
    """Whether the file's stored Arrow schema has a view-typed column (footer already read)."""
    return any(pa.types.is_string_view(field.type) or pa.types.is_binary_view(field.type)
               for field in fragment.physical_schema)


def read_fragment(
    fragment: ds.ParquetFileFragment, schema: pa.Schema, row_filter: ds.Expression | None, columns: list[str] | None
) -> pa.Table:
    """One file's rows matching ``row_filter``, projected, in ``schema``'s types (a file with
    view-typed columns is read, cast, then filtered: see the module docstring)."""
    if not has_view_types(fragment):
        return fragment.to_table(schema=schema, filter=row_filter, columns=columns, use_threads=False)
    physical = fragment.physical_schema
    as_stored = pa.schema([physical.field(f.name).with_nullable(f.nullable) if f.name in physical.names else f
                           for f in schema])  # partition columns come from the file's guarantee
    rows = fragment.to_table(schema=as_stored, use_threads=False).cast(schema)
    if row_filter is not None:
        rows = rows.filter(row_filter)
    return rows.select(columns) if columns is not None else rows


__all__ = ["has_view_types", "read_fragment"]
