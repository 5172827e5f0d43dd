"""The instruments of a Delta table at one version, stamped, so a new process lists them
without opening the table.

Opening a Delta table loads every active file's add action (~30 ms at 5,000 files, growing
with the files); ``list_coins`` needs only the ``(exchange, coin)`` pairs. So the answer is
kept beside the log, ``<table>/_cb_registry/instruments.parquet``, stamped with the version
it was computed at and that version's commit fingerprint (:mod:`.commit_stamp`). A listing
lists ``_delta_log`` (one LIST request), and uses the stored answer only when its version is
the latest commit and the fingerprint matches that commit (a table deleted and re-created up
to the same version has other commit bytes). Anything else (a newer commit by any writer, a
missing or garbage object, a log cleaned up past the stamp) means: open the table, compute
the pairs the usual way, store them stamped. The answer can therefore be old only for as long
as nobody looks: it is never used for a version it was not computed at.

Writers keep it current without opening anything more: after a replace committed as version
``V``, if the stored answer is stamped ``V - 1`` and every file the commit removed belonged to
instruments the commit wrote rows for, the answer at ``V`` is the old one plus the written
instruments. Otherwise (no stamp yet, a foreign commit in between, an instrument that may
have gone) they compute the list from the table they just committed to and store that.
Commits of other writers in between are replayed the same way where their added files name
their instruments (the instrument layout's partition values). A
writer remembers what it stored last: its next commit advances from that (still checked
against the log's commit ``V - 1``) without reading the stored object back, and reads commit
``V`` once for both its removes and its stamp (a daily run's writes of one instrument-day:
~3 ms less each).
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from cb_storage_dagster.domain.errors import NotFoundError, StorageError
from cb_storage_dagster.storage.delta.commit_stamp import commit_stamp, matches, stamp_of
from cb_storage_dagster.storage.interfaces import IStorageBackend

logger = logging.getLogger(__name__)

SNAPSHOT_OBJECT = "_cb_registry/instruments.parquet"
"""Where a table's stamped instrument list lives, relative to the table's folder."""
_COMMIT = re.compile(r"(?:^|/)(\d{20})\.json$")
_SCHEMA = pa.schema([("exchange", pa.string()), ("coin", pa.string())])

Pairs = list[tuple[str, str]]
REPLAYED_COMMITS = 16
"""A writer advances the stored list over at most this many commits (its own and others'
since the stored version); further behind, it computes the list in full."""


def commit_path(table: str, version: int) -> str:
    return f"{table}/_delta_log/{version:020d}.json"


class InstrumentSnapshots:
    """Stamped ``(exchange, coin)`` lists of the tables under one backend.

    >>> import tempfile
    >>> from cb_storage_dagster import LocalFileBackend
    >>> InstrumentSnapshots(LocalFileBackend(tempfile.mkdtemp())).lookup("ohlcv") is None
    True
    """

    def __init__(self, backend: IStorageBackend) -> None:
        self.backend = backend
        self._verified: dict[str, tuple[int, Pairs]] = {}  # a stamp checked once per process
        self._stored: dict[str, tuple[int, dict[bytes, bytes], Pairs]] = {}  # what this process stored last
        self._lock = threading.Lock()

    def latest_version(self, table: str) -> int | None:
        """The newest commit in the table's log (one LIST), ``None`` if there is none."""
        versions = [int(m.group(1)) for item in self.backend.list_items(f"{table}/_delta_log")
                    if (m := _COMMIT.search(item))]
        return max(versions) if versions else None

    def lookup(self, table: str) -> Pairs | None:
        """The stored pairs if they were computed at the latest version, else ``None``."""
        latest = self.latest_version(table)
        if latest is None:
            return None
        with self._lock:
            verified = self._verified.get(table)
        if verified is not None and verified[0] == latest:
            return verified[1]
        stored = self._load(table)
        if stored is None or stored[0] != latest or not matches(self.backend, table, latest, stored[1]):
            return None
        with self._lock:
            self._verified[table] = (latest, stored[2])
        return stored[2]

    def save(self, table: str, version: int, pairs: Iterable[tuple[str, str]], *,
             stamp: dict[str, str] | None = None) -> None:
        """Store ``pairs`` as the instruments of ``version`` (best effort: a failure only
        means the next listing opens the table). ``stamp``: the commit's stamp, where the
        caller has read the commit (:func:`.commit_stamp.stamp_of`)."""
        pairs = sorted(set(pairs))
        with self._lock:
            self._stored.pop(table, None)
        try:
            stamp = stamp or commit_stamp(self.backend, table, version)
            if stamp is None:
                return  # cleaned up: the stamp cannot be checked, so it is never trusted
            metadata = {"cb.version": str(version), **stamp}
            data = pa.table({"exchange": [e for e, _ in pairs], "coin": [c for _, c in pairs]}, schema=_SCHEMA)
            sink = io.BytesIO()
            pq.write_table(data.replace_schema_metadata(metadata), sink, compression="zstd")
            self.backend.save_bytes(f"{table}/{SNAPSHOT_OBJECT}", sink.getvalue())
        except StorageError as error:
            logger.warning("Instrument list of %r not stored for version %d (%s).", table, version,
                           type(error).__name__)
            return
        with self._lock:
            self._stored[table] = (version, {k.encode(): v.encode() for k, v in metadata.items()}, pairs)

    def advance(
        self,
        table: str,
        version: int,
        written: Iterable[tuple[str, str]],
        removed_pairs: Callable[[list[dict]], set[tuple[str, str]] | None],
        added_pairs: Callable[[list[dict]], set[tuple[str, str]] | None] = lambda adds: None,
    ) -> bool:
        """After a replace committed as ``version`` that wrote rows of ``written``: store the
        pairs of ``version`` if they follow from the stored ones of an earlier version.

        ``removed_pairs`` gives the instruments of a commit's ``remove`` actions (``None``:
        not known), so that an instrument whose last file went is never kept. Commits between
        the stored version and ``version`` (another writer's, at most :data:`REPLAYED_COMMITS`)
        are replayed where ``added_pairs`` gives the instruments of their ``add`` actions and
        each removed only files of instruments it added to. Returns whether it stored them
        (else the caller may store a list it computed in full)."""
        try:
            with self._lock:
                stored = self._stored.get(table)
            if stored is None or stored[0] >= version:
                stored = self._load(table)  # (stored by another process, or not at all)
            if stored is None or not version - REPLAYED_COMMITS <= stored[0] < version or \
                    not matches(self.backend, table, stored[0], stored[1]):
                return False
            pairs = set(stored[2])
            for between in range(stored[0] + 1, version + 1):
                raw = self.backend.load_bytes(commit_path(table, between))
                actions = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
                removes = [a["remove"] for a in actions if "remove" in a]
                added = set(written) if between == version else added_pairs([a["add"] for a in actions if "add" in a])
                gone = removed_pairs(removes) if removes else set()
                if added is None or gone is None or not gone <= added:
                    return False
                pairs |= added
            self.save(table, version, pairs, stamp=stamp_of(raw))
            return True
        except (StorageError, ValueError, KeyError) as error:
            logger.warning("Instrument list of %r not advanced to version %d (%s).", table, version,
                           type(error).__name__)
            return False

    # -- internals ------------------------------------------------------------------------
    def _load(self, table: str) -> tuple[int, dict[bytes, bytes], Pairs] | None:
        try:
            raw = self.backend.load_bytes(f"{table}/{SNAPSHOT_OBJECT}")
        except NotFoundError:
            return None
        try:
            data = pq.read_table(io.BytesIO(raw))
            meta = data.schema.metadata or {}
            version = int(meta[b"cb.version"])
            pairs = list(zip(data.column("exchange").to_pylist(), data.column("coin").to_pylist()))
        except (pa.ArrowException, KeyError, ValueError):
            return None  # unreadable: recomputed by the next listing
        return version, meta, pairs


__all__ = ["REPLAYED_COMMITS", "SNAPSHOT_OBJECT", "InstrumentSnapshots", "commit_path"]
