"""Which format each table is stored in: found once (a ``_delta_log``, or our format
marker), remembered, and checked against what a read or write asks for."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping

from cb_storage_dagster.domain.errors import CorruptTableError, NotFoundError, UnsupportedFormatError
from cb_storage_dagster.storage.arguments import parse_format
from cb_storage_dagster.storage.delta.table_format import DeltaFormat
from cb_storage_dagster.storage.files import FORMAT_MARKER
from cb_storage_dagster.storage.format import FORMATS, FormatStore
from cb_storage_dagster.storage.interfaces import IStorageBackend


class TableFormats:
    """The format stores of one backend and the format of each table seen so far.

    Thread-safe: the cache only ever gains entries, under a lock.
    """

    def __init__(self, backend: IStorageBackend, stores: Mapping[str, FormatStore], default_format: str) -> None:
        self.backend = backend
        self.stores = dict(stores)
        self.default_format = default_format
        self._stored: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def delta(self) -> DeltaFormat:
        return self.stores["delta"]  # type: ignore[return-value]

    def stored_format(self, table: str, *, reading_since: float | None = None) -> str | None:
        """The format ``table`` is stored in, or ``None`` if it holds nothing yet.
        ``reading_since``: asked by a read that began then (a Delta table is then looked up
        through its file index, which the read goes on to use)."""
        cached = self._stored.get(table)
        if cached is not None:
            return cached
        found: str | None = None
        if self.delta.exists(table, reading_since=reading_since):
            found = "delta"
        else:
            try:
                marker = self.backend.load_bytes(f"{table}/{FORMAT_MARKER}").decode().strip()
                found = marker if marker in FORMATS else None
            except NotFoundError:
                found = None
        if found is not None:
            self.remember(table, found)
        else:
            self._refuse_foreign_objects(table)
        return found

    def remember(self, table: str, format_name: str) -> None:
        with self._lock:
            self._stored[table] = format_name

    def for_write(self, table: str, format_hint: str | None) -> FormatStore:
        """The store a write to ``table`` goes to (the hint, else the default); a table
        stored in another format raises :class:`UnsupportedFormatError`."""
        wanted = parse_format(format_hint) or self.default_format
        stored = self.stored_format(table)
        if stored is not None and stored != wanted:
            raise UnsupportedFormatError(
                f"Table {table!r} is stored as {stored}; it cannot also hold {wanted}. Write it "
                f"as {stored}, or use another table name for {wanted} data."
            )
        return self.stores[wanted]

    def for_read(
        self, table: str, format_hint: str | None, *, reading_since: float | None = None
    ) -> FormatStore | None:
        """The store ``table`` is read from (``None``: no such table and no hint);
        ``reading_since``: when the read began (see :meth:`stored_format`)."""
        hinted = parse_format(format_hint)
        stored = self.stored_format(table, reading_since=reading_since)
        if hinted is not None and stored is not None and hinted != stored:
            raise UnsupportedFormatError(
                f"Table {table!r} is stored as {stored}, not {hinted}; drop format_hint or pass {stored!r}."
            )
        name = stored or hinted
        return None if name is None else self.stores[name]

    def instruments(self, table: str) -> list[tuple[str, str]]:
        """The ``(exchange, coin)`` pairs stored in ``table`` (none if there is no table)."""
        store = self.for_read(table, None)
        return [] if store is None else store.instruments(table)

    def dates(self, table: str, exchange: str, coin: str) -> list[dt.date]:
        """The UTC days of one instrument stored in ``table`` (none if there is no table)."""
        store = self.for_read(table, None)
        return [] if store is None else store.list_dates(table, exchange, coin)

    def _refuse_foreign_objects(self, table: str) -> None:
        """A table folder that holds objects but no table of ours (no ``_delta_log``, no
        format marker) is someone else's data: reading it as "no rows" or writing a table
        over it would both be wrong, so nothing is done with it."""
        items = self.backend.list_items(table)
        nested = {i.split("/_delta_log/")[0] for i in items if "/_delta_log/" in i}
        nested |= {i.rsplit("/", 1)[0] for i in items if i.endswith(f"/{FORMAT_MARKER}")}
        foreign = [i for i in items if not any(i.startswith(f"{root}/") for root in nested)]
        if foreign:
            raise CorruptTableError(
                f"{table!r} in {self.backend.describe()} holds {len(foreign)} objects (e.g. "
                f"{foreign[0]!r}) but no Delta table and no {FORMAT_MARKER} marker: it is not a "
                "table of this storage layer. Nothing was read or written; move those objects "
                "aside, or use another table name."
            )
