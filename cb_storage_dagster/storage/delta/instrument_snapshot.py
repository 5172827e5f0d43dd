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
from cb_storage_dagster.storage.delta.commit_stamp import commit_stamp, matches
from cb_storage_dagster.storage.interfaces import IStorageBackend

logger = logging.getLogger(__name__)

SNAPSHOT_OBJECT = "_cb_registry/instruments.parquet"
"""Where a table's stamped instrument list lives, relative to the table's folder."""
_COMMIT = re.compile(r"(?:^|/)(\d{20})\.json$")
_SCHEMA = pa.schema([("exchange", pa.string()), ("coin", pa.string())])

Pairs = list[tuple[str, str]]


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

    def save(self, table: str, version: int, pairs: Iterable[tuple[str, str]]) -> None:
        """Store ``pairs`` as the instruments of ``version`` (best effort: a failure only
        means the next listing opens the table)."""
        pairs = sorted(set(pairs))
        try:
            stamp = commit_stamp(self.backend, table, version)
            if stamp is None:
                return  # cleaned up: the stamp cannot be checked, so it is never trusted
            data = pa.table({"exchange": [e for e, _ in pairs], "coin": [c for _, c in pairs]}, schema=_SCHEMA)
            data = data.replace_schema_metadata({"cb.version": str(version), **stamp})
            sink = io.BytesIO()
            pq.write_table(data, sink, compression="zstd")
            self.backend.save_bytes(f"{table}/{SNAPSHOT_OBJECT}", sink.getvalue())
        except StorageError as error:
            logger.warning("Instrument list of %r not stored for version %d (%s).", table, version,
                           type(error).__name__)

    def advance(
        self,
        table: str,
        version: int,
        written: Iterable[tuple[str, str]],
        removed_pairs: Callable[[list[dict]], set[tuple[str, str]] | None],
    ) -> bool:
        """After a replace committed as ``version`` that wrote rows of ``written``: store the
        pairs of ``version`` if they follow from the stored ones of ``version - 1``.

        ``removed_pairs`` gives the instruments of the commit's ``remove`` actions (``None``:
        not known), so that an instrument whose last file went is never kept. Returns whether
        it stored them (else the caller may store a list it computed in full)."""
        try:
            stored = self._load(table)
            if stored is None or stored[0] != version - 1 or not matches(self.backend, table, version - 1, stored[1]):
                return False
            commit = self.backend.load_bytes(commit_path(table, version)).decode()
            removes = [a["remove"] for a in map(json.loads, filter(str.strip, commit.splitlines())) if "remove" in a]
            written = set(written)
            gone = removed_pairs(removes) if removes else set()
            if gone is None or not gone <= written:
                return False
            self.save(table, version, set(stored[2]) | written)
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


__all__ = ["SNAPSHOT_OBJECT", "InstrumentSnapshots", "commit_path"]
