"""Reading a scan's data files: cached Parquet footers, only the needed row groups, and
object-store fetches run concurrently.

Delta data files never change once written, so what a read learns about a file is kept:
:class:`FragmentCache` holds, per file (keyed by table URI, path and size), a pyarrow
Parquet fragment whose footer (row-group index and statistics) is already parsed, together
with the file's guarantee (its partition values and value ranges from the log). A warm read
then neither re-reads nor re-parses a footer, and pyarrow skips the row groups whose
statistics cannot match the filter without touching them.

Local files are read row group by row group from memory (:mod:`.row_groups`: no per-file
scanner, ``coin`` compared as a dictionary, sorted files cut by position, row groups picked
by coin and time from a cached index). Measured against pyarrow's dataset scan of the same
cached fragments, that is as fast or faster for every read shape tried (one instrument over
1-365 days, a few or every instrument of an exchange over a day to a month, the whole table;
both layouts, before and after maintenance): the scan pays a scanner per file and evaluates
the scope's filter row by row. The scan still reads a new process's first read of many rows'
worth of new files (:data:`NEW_FILES_INDEXED_MAX_ROWS`), which would otherwise index every row
group of every file before reading any (~1 ms per exchange-day file of 2,000 coins), reads of
more than :data:`DIRECT_READ_MAX_FILES` files, and files with view-typed columns
(:mod:`.fragment_read`). Reads of many row groups go in one run of files per core, and new
files' footers are parsed in parallel (pyarrow releases the GIL while it decodes and parses).
Files on an object store are each fetched by a thread of a bounded pool
(:data:`.fetch_pool.MAX_CONCURRENT_FETCHES`). A small file is fetched whole in one request and kept
(:mod:`.small_files`: a warm read of it costs no request); of a large one, the needed column
chunks are coalesced into one ranged request (``pre_buffer``), and the first read costs one
more request for its footer. A read so costs one or two round trips however many files it
touches instead of two per file one after another. Both use the filesystem the scan planner gives
(:func:`.scan._filesystem`: pyarrow's local filesystem, or delta-rs' object-store handler
with the backend's credentials).

>>> cache = FragmentCache()
>>> cache.cached_files
0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from cb_storage_dagster.storage.delta.cache import BoundedCache
from cb_storage_dagster.storage.delta.fetch_pool import map_concurrently, map_in_runs
from cb_storage_dagster.storage.delta.fragment_read import has_view_types, read_fragment
from cb_storage_dagster.storage.delta.mapped_file import MappedFile
from cb_storage_dagster.storage.delta.row_group_index import RowGroupIndex
from cb_storage_dagster.storage.delta.row_groups import FileRows, assemble, read_file
from cb_storage_dagster.storage.delta.row_window import RowWindow
from cb_storage_dagster.storage.delta.small_files import SmallFiles

FileKey = tuple[str, str, int]
"""(table URI, path in the table, size in bytes): a data file, which never changes."""

FRAGMENT_CACHE_ENTRIES = 16384
"""Data files whose parsed footer is kept, at most (and at most :data:`FRAGMENT_CACHE_BYTES`).
A read of more files than the cache holds would find none of them on its next run (least
recently used goes first): 1,024 entries made every read of one day of 2,000 instruments in the
instrument layout re-parse 2,000 footers."""
FRAGMENT_CACHE_BYTES = 256 * 1024 * 1024
"""Estimated memory of the kept footers, at most: :func:`_footer_bytes` (~22 KB for a file of
one instrument-day, ~1 MB for an exchange-day file of 2,000 coins)."""
ROW_GROUP_READS = True
"""Whether local reads may go row group by row group (:mod:`.row_groups`); off, every local
read is pyarrow's scan (the tests compare the two)."""
DIRECT_READ_MAX_FILES = 20000
"""Reads of more files go to pyarrow's scan. Read row group by row group in one thread per core
(:data:`PARALLEL_READ_MIN_GROUPS`), every read measured was as fast or faster than the scan
(session 12, instrument layout before maintenance, warm): every instrument x 1 day of 2,000
coins (2,000 files) 418 against 688 ms, every instrument x 5 days of 500 (2,500 files) 492
against 644 ms, the whole 500 x 20 table (10,000 files) 1.97 against 2.04 s."""
PARALLEL_READ_MIN_GROUPS = 64
"""Local files read row group by row group go in one run of files per core, each run at least
this many row groups (many small files, or a few compacted ones read in many groups)."""
PARALLEL_READ_CORES: int | None = None
"""Runs of one read at most (``None``: one per core of the machine)."""
NEW_FILES_INDEXED_MAX_ROWS = 1 << 23
"""A read of several files not seen before (a new process) that hold more rows than this in
all goes to pyarrow's scan, which prunes row groups by their statistics without building
an index of them (one instrument x 30 exchange-days of 2,000 coins, 86 M rows: ~90 ms against
~120 ms); a later read of the same files goes row group by row group."""
_FORMAT = ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=True))


class FragmentCache:
    """Parquet fragments of data files with their footers parsed, bounded (least recently
    used first out). Thread-safe."""

    def __init__(self, *, max_entries: int = FRAGMENT_CACHE_ENTRIES, max_bytes: int = FRAGMENT_CACHE_BYTES) -> None:
        self._files: BoundedCache[FileKey, _CachedFile] = BoundedCache(
            max_entries=max_entries, weigh=_footer_bytes, max_weight=max_bytes)
        self._small_files = SmallFiles()
        self.unfiltered_files = 0
        """Files read without evaluating the row filter (every row selected; a statistic)."""
        self.direct_files = 0
        """Local files read row group by row group (:mod:`.row_groups`; a statistic)."""

    @property
    def cached_files(self) -> int:
        """Files whose parsed footer is kept."""
        return len(self._files)

    @property
    def mapped_files(self) -> int:
        """Cached local files kept memory-mapped (see :class:`_CachedFile`)."""
        return sum(1 for entry in self._files.values() if entry.mapped is not None)

    @property
    def kept_bytes(self) -> int:
        """Bytes of small remote files kept whole (:mod:`.small_files`)."""
        return self._small_files.held_bytes

    def fragments(
        self,
        keys: Sequence[FileKey],
        make: Callable[[list[int]], tuple[Any, list[str], list[ds.Expression]]],
    ) -> tuple[list[ds.ParquetFileFragment], list[bool]]:
        """The fragment of each of ``keys`` and, per fragment, whether it is new (its footer
        not read yet). ``make(positions)`` gives, for the files at ``positions`` of ``keys``
        missing from the cache, a filesystem, their paths on it and their guarantees."""
        entries = [self._files.get(key) for key in keys]
        found = [None if entry is None else entry.fragment for entry in entries]
        missing = [i for i, fragment in enumerate(found) if fragment is None]
        fresh = [False] * len(keys)
        if missing:
            filesystem, paths, guarantees = make(missing)
            for position, path, guarantee in zip(missing, paths, guarantees):
                found[position] = _FORMAT.make_fragment(path, filesystem=filesystem, partition_expression=guarantee)
                fresh[position] = True
        return found, fresh  # type: ignore[return-value]

    def remember(self, keys: Sequence[FileKey], fragments: Sequence[ds.ParquetFileFragment], fresh: Sequence[bool]) -> None:
        """Keep the new fragments, whose footers a read has just parsed."""
        for key, fragment, new in zip(keys, fragments, fresh):
            if new and self._files.get(key) is None:  # (a row-group read may have kept it already)
                self._files.put(key, _CachedFile.parsed(fragment))

    # -- reading ----------------------------------------------------------------------------
    def read(
        self,
        keys: Sequence[FileKey],
        make: Callable[[list[int]], tuple[Any, list[str], list[ds.Expression]]],
        *,
        schema: pa.Schema,
        row_filter: ds.Expression | None,
        columns: list[str] | None,
        remote: bool,
        whole: Sequence[bool] | None = None,
        keep_small_files: bool = True,
        window: RowWindow | None = None,
        own_filter: ds.Expression | None = None,
    ) -> pa.Table:
        """Rows of the files ``keys`` (in that order) that match ``row_filter``, projected.
        ``whole``: per file, whether every row of it matches (known from the log).
        ``keep_small_files``: serve and keep small remote files in memory, and local files
        open (:class:`_CachedFile`); off for reads of a past version, which must fetch (a
        vacuum may have removed its files, and a read of such a version fails as it does in
        any other process).
        ``window``: where the rows can be (:class:`.row_window.RowWindow`); local files are
        then read by :func:`.row_groups.read_file` (only the row groups the window needs);
        ``own_filter``: the caller's filters within ``row_filter`` (see there)."""
        fragments, fresh = self.fragments(keys, make)
        if whole is not None:
            self.unfiltered_files += sum(1 for every_row in whole if every_row) if remote or all(whole) else 0
        if remote:
            table = self._read_concurrently(keys, fragments, fresh, whole, schema, row_filter, columns,
                                            keep_small_files)
            fresh = [new and not SmallFiles.fetched_whole(key[2]) for key, new in zip(keys, fresh)]
        else:
            map_concurrently(_parse_footer, [fragment for fragment, new in zip(fragments, fresh) if new])
            if whole is not None and all(whole):
                row_filter = None  # every row of every file is selected: nothing to evaluate (~25% less)
            view_types = any(has_view_types(fragment) for fragment in fragments)
            direct = (None if window is None or view_types or not ROW_GROUP_READS
                      else self._direct_read(keys, fragments, fresh, window, keep_open=keep_small_files))
            if direct is not None:
                self.direct_files += len(keys)
                every = whole if whole is not None else [False] * len(keys)

                def read_run(run: list[tuple[ds.ParquetFileFragment, Any, bool]]) -> list[FileRows]:
                    return [part
                            for fragment, (index, groups, mapped), every_row in run
                            for part in read_file(fragment, index, groups, window, schema=schema,
                                                  own_filter=own_filter, columns=columns, mapped=mapped,
                                                  row_filter=None if every_row else row_filter)]

                # pyarrow decodes without the GIL: one run's Python overlaps another's decoding
                table = assemble(map_in_runs(read_run, list(zip(fragments, direct, every)),
                                             min_run=PARALLEL_READ_MIN_GROUPS, cores=PARALLEL_READ_CORES,
                                             weigh=lambda item: len(item[1][1])),
                                 schema, columns)
            elif view_types:
                table = pa.concat_tables([read_fragment(f, schema, row_filter, columns) for f in fragments])
            else:
                dataset = ds.FileSystemDataset(fragments, schema, _FORMAT, fragments[0].filesystem)
                table = dataset.to_table(filter=row_filter, columns=columns)
        self.remember(keys, fragments, fresh)
        return table

    def _direct_read(
        self, keys: Sequence[FileKey], fragments: Sequence[ds.ParquetFileFragment], fresh: Sequence[bool],
        window: RowWindow, *, keep_open: bool,
    ) -> list[tuple[RowGroupIndex, list[int], MappedFile | None]] | None:
        """Per file, the index of its row groups (built once, kept in its cache entry), the
        groups ``window`` needs and the file kept open to read them from, if any; ``None``
        (pyarrow's scan) for more than :data:`DIRECT_READ_MAX_FILES` files, or new files
        holding more than :data:`NEW_FILES_INDEXED_MAX_ROWS` rows. With ``keep_open``, a read
        of one instrument keeps each file open in its entry (:attr:`_CachedFile.mapped`) and
        any read uses a file kept so; without it (a past version), none is used or kept."""
        if len(keys) > DIRECT_READ_MAX_FILES:
            return None
        if len(keys) > 1 and any(fresh) and \
                sum(fragment.metadata.num_rows for fragment in fragments) > NEW_FILES_INDEXED_MAX_ROWS:
            return None
        selected = []
        for key, fragment in zip(keys, fragments):
            entry = self._files.get(key)
            if entry is None:
                entry = _CachedFile.parsed(fragment)
                self._files.put(key, entry)
            if entry.index is None:
                entry.index = RowGroupIndex.of(fragment.metadata)
            if keep_open and entry.mapped is None and window.coin is not None:
                entry.mapped = MappedFile(fragment.path, fragment.metadata,
                                          ds.get_partition_keys(fragment.partition_expression))
            selected.append((entry.index, entry.index.select(window), entry.mapped if keep_open else None))
        return selected

    def _read_concurrently(
        self,
        keys: Sequence[FileKey],
        fragments: list[ds.ParquetFileFragment],
        fresh: list[bool],
        whole: Sequence[bool] | None,
        schema: pa.Schema,
        row_filter: ds.Expression | None,
        columns: list[str] | None,
        keep_small_files: bool,
    ) -> pa.Table:
        def read_one(item: tuple[FileKey, ds.ParquetFileFragment, bool, bool]) -> pa.Table:
            key, fragment, new, every_row = item
            if SmallFiles.fetched_whole(key[2]):  # one request, or none once kept
                data = (self._small_files.get_or_fetch(key, lambda: _whole(fragment)) if keep_small_files
                        else _whole(fragment))
                fragment = _in_memory(fragment, data)
            elif new:
                fragment.ensure_complete_metadata()  # the footer: one request, then cached
            return read_fragment(fragment, schema, None if every_row else row_filter, columns)

        every = whole if whole is not None else [False] * len(keys)
        return pa.concat_tables(map_concurrently(read_one, list(zip(keys, fragments, fresh, every))))


@dataclass
class _CachedFile:
    """What a read keeps of one data file: its fragment (footer parsed) and, once a read went
    row group by row group, the index of its row groups; once a read of one instrument did,
    the local file kept open (``mapped``: memory-mapped, a reader on it; see
    :mod:`.mapped_file`). Reads of many instruments, which touch whole files, use a kept
    mapping but never make one (their pages would stay resident in the process until the
    entry is evicted)."""

    fragment: ds.ParquetFileFragment
    footer_bytes: int
    index: RowGroupIndex | None = None
    mapped: MappedFile | None = None

    @classmethod
    def parsed(cls, fragment: ds.ParquetFileFragment) -> _CachedFile:
        """The entry of a fragment whose footer a read has parsed (its size is read here: on
        an object store an unparsed footer would cost a request)."""
        return cls(fragment, fragment.metadata.serialized_size)


def _footer_bytes(entry: _CachedFile) -> int:
    """Memory a kept file costs, estimated from its footer's size: measured with pyarrow 26,
    ~8 bytes per serialized footer byte plus ~8 KB of objects (1.6 KB footer: 21.6 KB kept;
    41 KB: 312 KB)."""
    return 8 * entry.footer_bytes + 8192


def _parse_footer(fragment: ds.ParquetFileFragment) -> None:
    fragment.ensure_complete_metadata()  # pyarrow parses without the GIL: footers in parallel


def _whole(fragment: ds.ParquetFileFragment) -> pa.Buffer:
    """All bytes of the fragment's file (one ranged GET: the filesystem knows its size)."""
    with fragment.filesystem.open_input_file(fragment.path) as stream:
        return stream.read_buffer()


def _in_memory(fragment: ds.ParquetFileFragment, data: pa.Buffer) -> ds.ParquetFileFragment:
    """The fragment read from ``data``, with the same guarantee."""
    return _FORMAT.make_fragment(data, partition_expression=fragment.partition_expression)


__all__ = ["DIRECT_READ_MAX_FILES", "FRAGMENT_CACHE_BYTES", "FRAGMENT_CACHE_ENTRIES", "NEW_FILES_INDEXED_MAX_ROWS", "ROW_GROUP_READS", "FileKey", "FragmentCache"]
