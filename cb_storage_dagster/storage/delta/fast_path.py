"""What the fast Delta reader (:mod:`.scan`) implements, as one allow-list: reader protocol,
reader features, column mapping, partition layout and key column types. A table outside it
is read by delta-rs' DataFusion reader instead (:mod:`.read_sql`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from cb_storage_dagster.domain.schemas import DATE_COLUMN, MONTH_COLUMN
from cb_storage_dagster.storage.layout import LAYOUTS, partition_columns

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = ["FAST_PATH_COLUMN_TYPES", "FAST_PATH_LAYOUTS", "FAST_PATH_READER_FEATURES", "FAST_PATH_READER_VERSIONS",
           "fast_path_refusal"]

FAST_PATH_READER_VERSIONS = frozenset({1, 2, 3})
"""Reader protocol versions the fast path reads (2 and 3 only with the checks below)."""
FAST_PATH_READER_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"})
"""Reader features that change nothing in how a data file is read: a column type pyarrow
reads natively, a checkpoint format and a vacuum rule that delta-rs' log replay handles
(it refuses the table itself if it cannot). Anything else (``deletionVectors``: rows hidden
by a vector the add actions do not show; ``columnMapping``: physical column names;
``typeWidening``; ``variantType``; features of newer engines) goes to DataFusion."""
FAST_PATH_LAYOUTS = tuple(frozenset(partition_columns(layout)) for layout in LAYOUTS)  # type: ignore[arg-type]
"""Partition column sets the planner prunes: the ``instrument`` layout (partition values
exchange/coin/month, ``date`` min/max statistics) and the ``exchange`` layout (exchange/month
partitions, ``coin`` and ``date`` pruned by their min/max statistics)."""
FAST_PATH_COLUMN_TYPES: dict[str, tuple[pa.DataType, ...]] = {
    "exchange": (pa.string(), pa.large_string()),
    "coin": (pa.string(), pa.large_string()),
    MONTH_COLUMN: (pa.string(), pa.large_string()),
    DATE_COLUMN: (pa.date32(),),
    "timestamp": (pa.timestamp("us", tz="UTC"),),
}
"""The columns the planner compares with typed values, and the types it compares them as."""


def fast_path_refusal(delta_table: DeltaTable) -> str | None:
    """Why the fast path must not read ``delta_table``'s loaded version, or ``None`` if it
    implements everything the version needs (the one allow-list; see the module docstring).

    >>> import tempfile
    >>> from deltalake import DeltaTable, write_deltalake
    >>> path = tempfile.mkdtemp()
    >>> write_deltalake(path, pa.table({"exchange": ["binance"], "coin": ["BTC"]}), partition_by=["exchange"])
    >>> fast_path_refusal(DeltaTable(path))
    'partitioned by exchange'
    """
    protocol = delta_table.protocol()
    if protocol.min_reader_version not in FAST_PATH_READER_VERSIONS:
        return f"reader protocol version {protocol.min_reader_version}"
    unknown = sorted(set(protocol.reader_features or ()) - FAST_PATH_READER_FEATURES)
    if unknown:
        return "reader features not implemented: " + ", ".join(unknown)
    metadata = delta_table.metadata()
    mode = metadata.configuration.get("delta.columnMapping.mode") or "none"
    if protocol.min_reader_version >= 2 and mode != "none":
        return f"column mapping ({mode})"
    partitions = frozenset(metadata.partition_columns)
    if partitions not in FAST_PATH_LAYOUTS:
        return "partitioned by " + (", ".join(metadata.partition_columns) or "nothing")
    schema = pa.schema(delta_table.schema().to_arrow())
    for name, types in FAST_PATH_COLUMN_TYPES.items():
        if name not in schema.names:
            return f"no {name!r} column"
        if schema.field(name).type not in types:
            return f"column {name!r} is {schema.field(name).type}"
    return None
