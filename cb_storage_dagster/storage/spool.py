"""ArrowSpool: chunks parked on local disk, so that a run can hold many without the memory.

A raw asset fetches an exchange-day block by block and only knows at the end which
instruments failed (and so which rows the write must leave alone). It appends each block to
a spool (one zstd-compressed Arrow IPC file in the temporary directory) and hands the
writer :meth:`ArrowSpool.chunks`, which reads the blocks back one at a time from the
file, as often as the writer needs. The file is deleted when the spool is closed or
garbage-collected.

Example:
    >>> import pyarrow as pa
    >>> spool = ArrowSpool()
    >>> spool.append(pa.table({"x": [1, 2]})); spool.append(pa.table({"x": [3]}))
    >>> [t.column("x").to_pylist() for t in spool.chunks()]
    [[1, 2], [3]]
    >>> spool.close()
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Iterator

import pyarrow as pa

__all__ = ["ArrowSpool"]


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


class ArrowSpool:
    """Arrow tables of one schema appended to a temporary IPC file and read back chunk by chunk.

    Tables appended after the first are cast to its schema (columns in its order); a table
    without one of its columns raises ``ValueError``. An empty table appends nothing.
    """

    def __init__(self, directory: str | None = None) -> None:
        handle, self.path = tempfile.mkstemp(prefix="cb-storage-spool-", suffix=".arrow", dir=directory)
        os.close(handle)
        self._finalizer = weakref.finalize(self, _remove, self.path)
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._schema: pa.Schema | None = None
        self._sink: pa.OSFile | None = None
        self.rows = 0
        self.batches = 0

    @property
    def schema(self) -> pa.Schema | None:
        return self._schema

    def append(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self._writer is None:
            self._schema = table.schema
            self._sink = pa.OSFile(self.path, "wb")
            self._writer = pa.ipc.new_file(self._sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd"))
        assert self._schema is not None
        table = table.select(self._schema.names).cast(self._schema)
        # One record batch per appended table: a chunk read back is the chunk written.
        for batch in table.combine_chunks().to_batches(max_chunksize=table.num_rows):
            self._writer.write_batch(batch)
        self.rows += table.num_rows
        self.batches += 1

    def _finish(self) -> None:
        if self._writer is not None:
            self._writer.close()
            assert self._sink is not None
            self._sink.close()
            self._writer = None

    def chunks(self) -> Iterator[pa.Table]:
        """The appended tables, read back one at a time (appending ends with the first read)."""
        self._finish()
        if self._schema is None:
            return
        # A plain file, not a memory map: mapped pages stay resident (and count as the
        # process's memory) until the map closes, i.e. the whole spool by the last chunk.
        with pa.OSFile(self.path, "rb") as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield pa.Table.from_batches([reader.get_batch(i)])

    def close(self) -> None:
        """Delete the file (also done when the spool is garbage-collected)."""
        self._finish()
        self._finalizer()
