"""The one translation of delta-rs exceptions into the project's errors.

Used by the Delta format (reads, writes, opens) and by table maintenance, so that no
delta-rs exception leaves the storage core. Messages are built from a classification and
the table name, never from the raw delta-rs text: that text may quote a request URL
(with a SAS signature) or a local path. The backend is asked first, because an outage or a
refused credential often surfaces inside a generic delta-rs error.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cb_storage_dagster.domain.errors import (
    NotFoundError,
    SchemaMismatchError,
    StorageError,
    UnsupportedTableFeatureError,
    WriteConflictError,
)
from cb_storage_dagster.retry import conflict_reason

if TYPE_CHECKING:
    from cb_storage_dagster.storage.interfaces import IStorageBackend

# delta-rs (kernel) reports an unknown feature as a plain DeltaError:
# "Kernel error: Unsupported: Feature 'x' is not supported", and a feature its pyarrow
# reader lacks as DeltaProtocolError "... reader features: {'x'} but these are not yet supported".
_UNSUPPORTED_TEXT = re.compile(r"(?i)unsupported: feature|not yet supported|unsupported .*protocol")
_FEATURE_NAME = re.compile(r"'([A-Za-z][A-Za-z0-9_]{0,63})'")


def translate_delta_error(
    error: BaseException,
    *,
    table: str,
    action: str,
    backend: IStorageBackend | None = None,
) -> StorageError:
    """The project's error for ``error`` raised by delta-rs while doing ``action`` on ``table``.

    >>> translate_delta_error(RuntimeError("https://acct/x?sig=secret"), table="ohlcv", action="read")
    StorageError("Delta read of table 'ohlcv' failed: RuntimeError.")
    """
    if isinstance(error, StorageError):
        return error
    if backend is not None:
        mapped = backend.translate_error(error)
        if mapped is not None:
            return mapped
    from deltalake.exceptions import DeltaError, DeltaProtocolError, TableNotFoundError
    from deltalake.exceptions import SchemaMismatchError as DeltaSchemaMismatch

    if isinstance(error, TableNotFoundError):
        where = backend.describe() if backend is not None else "storage"
        return NotFoundError(f"No Delta table {table!r} in {where}.")
    if conflict_reason(error) is not None:
        return WriteConflictError(
            f"Could not commit to Delta table {table!r}: concurrent writers kept conflicting. "
            "Retry the write; if this persists, lower the number of parallel writers to the "
            "same partitions."
        )
    if isinstance(error, DeltaSchemaMismatch):
        return SchemaMismatchError(
            f"The data does not match the schema of Delta table {table!r}: the column types "
            "or names differ from the table's. Normalize the data to the canonical schema."
        )
    if isinstance(error, DeltaProtocolError) or (
        isinstance(error, DeltaError) and _UNSUPPORTED_TEXT.search(str(error))
    ):
        features = sorted(set(_FEATURE_NAME.findall(str(error))))
        named = f" ({', '.join(features)})" if features else ""
        return UnsupportedTableFeatureError(
            f"Delta table {table!r} uses a protocol version or table feature{named} that "
            f"neither this product's reader nor delta-rs can {action}. The table was left as "
            "it is: read it with the engine that wrote it, or upgrade deltalake."
        )
    return StorageError(f"Delta {action} of table {table!r} failed: {type(error).__name__}.")


__all__ = ["translate_delta_error"]
