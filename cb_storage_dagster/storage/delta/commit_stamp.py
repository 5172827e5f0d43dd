"""The fingerprint of one Delta commit: what ties an object kept beside a table's log (the
file index, the instrument list) to the exact log it was computed from.

A table deleted and created again under the same name restarts its log at version 0, so a
version number alone cannot tell its commits from the old table's. The fingerprint is the
SHA-256 of the commit's first :data:`FINGERPRINT_BYTES`: those hold the commit's timestamp,
its files' random names or the table's random id, so two different commits do not share
them, and reading them is one small ranged read however large the commit (a compaction
commit of 2,000 instruments x 30 days lists 60,000 removed files, ~20 MB, which a digest of
the whole commit made every new process read and hash).

Stamps written before the fingerprint (``cb.commit_sha256``, a digest of the whole commit)
are still checked, the old way.

>>> import tempfile
>>> from cb_storage_dagster.storage import LocalFileBackend
>>> backend = LocalFileBackend(tempfile.mkdtemp())
>>> backend.save_bytes("t/_delta_log/00000000000000000000.json", b'{"commitInfo": {"timestamp": 1}}')
>>> stamp = commit_stamp(backend, "t", 0)
>>> matches(backend, "t", 0, {k.encode(): v.encode() for k, v in stamp.items()})
True
>>> commit_stamp(backend, "t", 1) is None
True
>>> stamp_of(backend.load_bytes("t/_delta_log/00000000000000000000.json")) == stamp
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from cb_storage_dagster.domain.errors import NotFoundError
from cb_storage_dagster.storage.delta.locations import commit_file
from cb_storage_dagster.storage.interfaces import IStorageBackend

FINGERPRINT_BYTES = 64 * 1024
STAMP_KEY = "cb.commit_fingerprint"
_WHOLE_COMMIT_KEY = b"cb.commit_sha256"


def fingerprint(backend: IStorageBackend, table: str, version: int) -> str | None:
    """The fingerprint of ``table``'s commit ``version``; ``None`` if it was cleaned up."""
    try:
        return hashlib.sha256(backend.load_head(f"{table}/{commit_file(version)}", FINGERPRINT_BYTES)).hexdigest()
    except NotFoundError:
        return None


def stamp_of(commit: bytes) -> dict[str, str]:
    """The stamp of a commit whose bytes (from the start, at least :data:`FINGERPRINT_BYTES`
    or all of them) the caller has read already: :func:`commit_stamp` without a read."""
    return {STAMP_KEY: hashlib.sha256(commit[:FINGERPRINT_BYTES]).hexdigest()}


def commit_stamp(backend: IStorageBackend, table: str, version: int) -> dict[str, str] | None:
    """The metadata entry that stamps an object as computed from commit ``version`` (``None``:
    the commit was cleaned up, so nothing can be stamped with it)."""
    found = fingerprint(backend, table, version)
    return None if found is None else {STAMP_KEY: found}


def matches(backend: IStorageBackend, table: str, version: int, metadata: Mapping[bytes, bytes]) -> bool:
    """Whether an object stamped with ``metadata`` was computed from ``table``'s commit
    ``version`` as it is now (a cleaned-up commit never matches)."""
    if STAMP_KEY.encode() in metadata:
        return fingerprint(backend, table, version) == metadata[STAMP_KEY.encode()].decode()
    if _WHOLE_COMMIT_KEY in metadata:
        try:
            whole = backend.load_bytes(f"{table}/{commit_file(version)}")
        except NotFoundError:
            return False
        return hashlib.sha256(whole).hexdigest() == metadata[_WHOLE_COMMIT_KEY].decode()
    return False


__all__ = ["FINGERPRINT_BYTES", "STAMP_KEY", "commit_stamp", "fingerprint", "matches", "stamp_of"]
