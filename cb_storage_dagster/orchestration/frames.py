"""Which frame type an asset hands to, and gets from, ``MarketDataIOManager``.

Outputs: a pandas DataFrame or a pyarrow Table go to the storage manager as they are; a
``polars.DataFrame`` is handed over as Arrow (no copy of the columns), a ``polars.LazyFrame`` is
collected first. Inputs: the read is one Arrow table, converted once to the type the asset
annotates its input with: ``pyarrow.Table`` (as read), ``polars.DataFrame`` (zero-copy from
Arrow), ``polars.LazyFrame`` (the same, lazy), anything else pandas.

Polars is optional (``pip install 'cb-storage-dagster[polars]'``) and never imported here
unless the asset's own code did (a Polars object or annotation can only exist then).

Example:
    >>> import pyarrow as pa
    >>> table = pa.table({"close": [1.0, 2.0]})
    >>> as_annotated(table, pa.Table) is table, type(as_annotated(table, None)).__name__
    (True, 'DataFrame')
"""

from __future__ import annotations

import sys
from typing import Any

import pyarrow as pa

from cb_storage_dagster.storage.frame_conversion import as_frame

__all__ = ["as_annotated", "to_storable"]


def _polars() -> Any:
    """The polars module if the process imported it, else ``None`` (no import cost)."""
    return sys.modules.get("polars")


def to_storable(obj: Any) -> Any:
    """``obj`` as something the storage manager takes: Polars frames become Arrow tables.

    >>> to_storable(None) is None
    True
    """
    polars = _polars()
    if polars is None:
        return obj
    if isinstance(obj, polars.LazyFrame):
        obj = obj.collect()
    if isinstance(obj, polars.DataFrame):
        return obj.to_arrow()
    return obj


def as_annotated(data: pa.Table, typing_type: Any) -> Any:
    """``data`` as the type an input is annotated with (see the module)."""
    if typing_type is pa.Table:
        return data
    polars = _polars()
    if polars is not None and typing_type in (polars.DataFrame, polars.LazyFrame):
        frame = polars.from_arrow(data)
        return frame.lazy() if typing_type is polars.LazyFrame else frame
    return as_frame(data)
