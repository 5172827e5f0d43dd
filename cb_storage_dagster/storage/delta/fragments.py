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
Files on an object store are fetched concurrently (:mod:`.remote_read`: one or two round
trips for a read however many files it touches, small files fetched whole and kept). Both use
the filesystem the scan planner gives (:func:`.scan._filesystem`: pyarrow's local filesystem,
or delta-rs' object-store handler with the backend's credentials).

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
from cb_storage_dagster.storage.delta.fetch_pool import map_concurrently
from cb_storage_dagster.storage.delta.fragment_read import has_view_types, read_fragment
from cb_storage_dagster.storage.delta.mapped_file import MappedFile
from cb_storage_dagster.storage.delta.positional_read import reads_coins_by_position
from cb_storage_dagster.storage.delta.remote_read import FileKey, read_remote
from cb_storage_dagster.storage.delta.row_group_index import RowGroupIndex
from cb_storage_dagster.storage.delta.row_groups import read_files
from cb_storage_dagster.storage.delta.row_window import RowWindow
from cb_storage_dagster.storage.delta.small_files import SmallFiles

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
this many row groups (many small files, or a few compacted ones read in many groups). Smaller
runs were measured (session 13, two cores): one instrument x 30 exchange-days of 2,000 coins,
30 groups of 16 Ki rows, in two runs 12.3 against 10.8 ms in one, each run's thread on the CPU
about half its time; decoding alone in two threads halves, but decoding on the pool ahead of
a thread that cuts and filters was slower still for every read shape tried."""
PARALLEL_READ_CORES: int | None = None
"""Runs of one read at most (``None``: one per core of the machine)."""
NEW_FILES_INDEXED_MAX_ROWS = 1 << 23
"""A read of several files not seen before (a new process) that hold more rows than this in
all goes to pyarrow's scan, which prunes row groups by their statistics without building
an index of them; a later read of the same files goes row group by row group. Reads of one
instrument from local files are exempt since they take rows by position
(:mod:`.positional_read`): one instrument x 30 exchange-days of 2,000 coins (86 M rows) in a
new process, median of 8, ~69 ms indexed and read by position against ~94 ms scanned (it was
~120 against ~90 ms when the indexed read decoded its row groups)."""
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

    def _lookup(
        self, keys: Sequence[FileKey], make: Callable[[list[int]], tuple[Any, list[str], list[ds.Expression]]],
    ) -> tuple[list[_CachedFile | None], list[ds.ParquetFileFragment], list[bool]]:
        """Per key: its cache entry (``None`` if new), its fragment, whether it is new."""
        entries = [self._files.get(key) for key in keys]
        found = [None if entry is None else entry.fragment for entry in entries]
        missing = [i for i, fragment in enumerate(found) if fragment is None]
        fresh = [False] * len(keys)
        if missing:
            filesystem, paths, guarantees = make(missing)
            for position, path, guarantee in zip(missing, paths, guarantees):
                found[position] = _FORMAT.make_fragment(path, filesystem=filesystem, partition_expression=guarantee)
                fresh[position] = True
        return entries, found, fresh  # type: ignore[return-value]

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
        entries, fragments, fresh = self._lookup(keys, make)
        if whole is not None:
            self.unfiltered_files += sum(1 for every_row in whole if every_row) if remote or all(whole) else 0
        if remote:
            table = read_remote(keys, fragments, fresh, whole, schema=schema, row_filter=row_filter, columns=columns,
                                small_files=self._small_files if keep_small_files else None)
            fresh = [new and not SmallFiles.fetched_whole(key[2]) for key, new in zip(keys, fresh)]
        else:
            map_concurrently(_parse_footer, [fragment for fragment, new in zip(fragments, fresh) if new], on_processor=True)
            kept = [entry if entry is not None else self._kept(key, fragment)
                    for key, entry, fragment in zip(keys, entries, fragments)]
            if whole is not None and all(whole):
                row_filter = None  # every row of every file is selected: nothing to evaluate (~25% less)
            view_types = any(entry.view_types for entry in kept)
            direct = (None if window is None or view_types or not ROW_GROUP_READS
                      else self._direct_read(kept, fresh, window, keep_open=keep_small_files))
            if direct is not None:
                self.direct_files += len(keys)
                every = whole if whole is not None else [False] * len(keys)
                table = read_files([(fragment, *selected, every_row)
                                    for fragment, selected, every_row in zip(fragments, direct, every)],
                                   window, schema=schema, row_filter=row_filter, own_filter=own_filter,
                                   columns=columns, min_run=PARALLEL_READ_MIN_GROUPS, cores=PARALLEL_READ_CORES)
            elif view_types:
                table = pa.concat_tables([read_fragment(f, schema, row_filter, columns) for f in fragments])
            else:
                dataset = ds.FileSystemDataset(fragments, schema, _FORMAT, fragments[0].filesystem)
                table = dataset.to_table(filter=row_filter, columns=columns)
        self.remember(keys, fragments, fresh)
        return table

    def _kept(self, key: FileKey, fragment: ds.ParquetFileFragment) -> _CachedFile:
        """The cache entry of a local file whose footer was just parsed (kept from now on)."""
        entry = self._files.get(key)  # (another thread may have kept it meanwhile)
        if entry is None:
            entry = _CachedFile.parsed(fragment)
            self._files.put(key, entry)
        return entry

    def _direct_read(
        self, entries: Sequence[_CachedFile], fresh: Sequence[bool], window: RowWindow, *, keep_open: bool,
    ) -> list[tuple[RowGroupIndex, list[int], MappedFile | None]] | None:
        """Per file, the index of its row groups (built once, kept in its cache entry), the
        groups ``window`` needs and the file kept open to read them from, if any; ``None``
        (pyarrow's scan) for more than :data:`DIRECT_READ_MAX_FILES` files, or new files
        holding more than :data:`NEW_FILES_INDEXED_MAX_ROWS` rows (but for a read of one
        instrument, or of a few, that keeps its files open). With ``keep_open``, a read of one
        instrument or of a few (:func:`.positional_read.reads_coins_by_position`) keeps each
        file open in its entry (:attr:`_CachedFile.mapped`), and a
        read of every instrument of an exchange keeps open the files of one instrument (the
        instrument layout's) it reads a second time: their rows are then taken by position
        (:mod:`.positional_read`). Mapping a file and locating its columns costs more than
        decoding a file the read wants whole (a first read of 2,000 instrument-day files that
        mapped them: ~750 against ~530 ms), so such a one-off cross-section pays nothing more;
        the read that maps costs ~450-600 against ~300-400 ms, and every later one ~130-190 ms.
        A file whose row groups hold rows outside the read's time range
        (:meth:`RowGroupIndex.spills_past`: a day of a compacted month) is mapped at the first
        read, which decoding those groups would cost more than. Any read uses a file kept so;
        without ``keep_open`` (a past version), none is used or kept."""
        if len(entries) > DIRECT_READ_MAX_FILES:
            return None
        positional = keep_open and reads_coins_by_position(window)  # (rows taken by position: nothing decoded)
        if not positional and len(entries) > 1 and any(fresh) and \
                sum(entry.fragment.metadata.num_rows for entry in entries) > NEW_FILES_INDEXED_MAX_ROWS:
            return None
        selected = []
        for entry in entries:
            fragment = entry.fragment
            read_before = entry.index is not None
            if entry.index is None:
                entry.index = RowGroupIndex.of(fragment.metadata)
            groups = entry.index.select(window)
            if keep_open and entry.mapped is None and (positional or (
                    window.coins is None and "coin" not in entry.index.columns
                    and (read_before or entry.index.spills_past(groups, window)))):
                entry.mapped = MappedFile(fragment.path, fragment.metadata,
                                          ds.get_partition_keys(fragment.partition_expression))
            selected.append((entry.index, groups, entry.mapped if keep_open else None))
        return selected


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
    view_types: bool
    """Whether the file stores a view-typed column (:func:`.fragment_read.has_view_types`)."""
    index: RowGroupIndex | None = None
    mapped: MappedFile | None = None

    @classmethod
    def parsed(cls, fragment: ds.ParquetFileFragment) -> _CachedFile:
        """The entry of a fragment whose footer a read has parsed (its size is read here: on
        an object store an unparsed footer would cost a request)."""
        return cls(fragment, fragment.metadata.serialized_size, has_view_types(fragment))


def _footer_bytes(entry: _CachedFile) -> int:
    """Memory a kept file costs, estimated from its footer's size: measured with pyarrow 26,
    ~8 bytes per serialized footer byte plus ~8 KB of objects (1.6 KB footer: 21.6 KB kept;
    41 KB: 312 KB)."""
    return 8 * entry.footer_bytes + 8192


def _parse_footer(fragment: ds.ParquetFileFragment) -> None:
    fragment.ensure_complete_metadata()  # pyarrow parses without the GIL: footers in parallel


__all__ = ["DIRECT_READ_MAX_FILES", "FRAGMENT_CACHE_BYTES", "FRAGMENT_CACHE_ENTRIES", "NEW_FILES_INDEXED_MAX_ROWS", "ROW_GROUP_READS", "FileKey", "FragmentCache"]
