"""What a write returns: enough to build Dagster output metadata or a service log line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one committed write.

    Attributes:
        uri: Where the data lives (table URI for Delta, the table folder for Parquet/JSON).
        format: ``delta``, ``parquet`` or ``json``.
        table: The table name inside the storage root (e.g. ``ohlcv``).
        version: The Delta table version after the commit (``None`` for Parquet/JSON).
        row_count: Rows written in total.
        rows_per_partition: Rows per ``exchange/coin/date`` written (0 for a cleared one).
        schema: The Arrow schema of the written data.
        mode: ``replace`` (the partitions now hold exactly the data) or ``merge`` (the data
            was upserted; ``row_count`` and ``rows_per_partition`` count the batch).
        rows_inserted: rows a merge added (``None`` for a replace).
        rows_updated: stored rows a merge changed (``None`` for a replace); a merge of rows
            already stored identically inserts and updates nothing and creates no version.
    """

    uri: str
    format: str
    table: str
    version: int | None
    row_count: int
    rows_per_partition: dict[str, int] = field(default_factory=dict)
    schema: pa.Schema | None = None
    mode: str = "replace"
    rows_inserted: int | None = None
    rows_updated: int | None = None

    @classmethod
    def of_batch(
        cls,
        data: pa.Table,
        *,
        uri: str,
        format: str,
        table: str,
        version: int | None,
        rows_per_partition: dict[str, int],
        mode: str = "replace",
        rows_inserted: int | None = None,
        rows_updated: int | None = None,
    ) -> WriteResult:
        """The result of committing the batch ``data``: its row count and its schema.

        >>> import pyarrow as pa
        >>> result = WriteResult.of_batch(
        ...     pa.table({"coin": ["BTC", "BTC"]}), uri="/data/ohlcv", format="parquet", table="ohlcv",
        ...     version=None, rows_per_partition={"binance/BTC/2024-01-02": 2},
        ... )
        >>> result.row_count, result.schema.names, result.mode
        (2, ['coin'], 'replace')
        """
        return cls(
            uri=uri,
            format=format,
            table=table,
            version=version,
            row_count=data.num_rows,
            rows_per_partition=rows_per_partition,
            schema=data.schema,
            mode=mode,
            rows_inserted=rows_inserted,
            rows_updated=rows_updated,
        )
